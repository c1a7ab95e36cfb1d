#!/usr/bin/env node
// Proves the packed package installs and predicts without a toolchain. Packs this checkout (`npm pack`,
// which puts the prebuilt addon in the tarball), then, with a PATH that holds only node, npm, npx and a
// few coreutils (no g++, cmake, make, apt-get, dpkg or python3), installs the tarball into an empty
// project, checks that nothing was built, runs `img2prompt models random` + `predict` + `validate` from
// the installed package on the Kaggle sample images, compares the submission bytes with the same run
// from this checkout, checks the package's `exports` map and type-checks the `@example` blocks of the
// installed declarations as a consumer would. Prints a transcript and writes <work>/report.json.
//
//   node scripts/check-packed-install.mjs [--work DIR] [--tarball FILE] [--keep]
//
// Needs: npm with registry access or a warm npm cache (the tarball's dependencies are installed with
// --prefer-offline), MiniLM in the model cache (`img2prompt models pull minilm`), and ../shared/assets.
// onnxruntime-node's optional CUDA download is skipped (ONNXRUNTIME_NODE_INSTALL=skip).
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const assets = path.resolve(repo, '..', 'shared', 'assets');
const args = process.argv.slice(2);
const argValue = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const work = path.resolve(argValue('--work') ?? fs.mkdtempSync(path.join(os.tmpdir(), 'img2prompt-pack-')));
const keep = args.includes('--keep') || argValue('--work') !== undefined;
const report = { work, steps: {} };
const started = Date.now();

function step(name) {
  console.log(`\n== ${name}`);
  report.steps[name] = { startedAt: (Date.now() - started) / 1000 };
}

function fail(message) {
  console.log(`FAIL: ${message}`);
  report.failure = message;
  fs.writeFileSync(path.join(work, 'report.json'), JSON.stringify(report, null, 2));
  process.exit(1);
}

function run(cmd, cmdArgs, { cwd = work, env, quiet = false } = {}) {
  const t = Date.now();
  const r = spawnSync(cmd, cmdArgs, { cwd, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const seconds = (Date.now() - t) / 1000;
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (!quiet) console.log(`$ ${path.basename(cmd)} ${cmdArgs.join(' ')}  [exit ${r.status}, ${seconds.toFixed(1)} s]`);
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', output, seconds, error: r.error };
}

const sha256 = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

function whichIn(dirs, tool) {
  return dirs.find((d) => {
    try {
      fs.accessSync(path.join(d, tool), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

fs.mkdirSync(work, { recursive: true });
console.log(`work folder: ${work}`);

// ---------------------------------------------------------------------------------------------
step('pack');
let tarball = argValue('--tarball') && path.resolve(argValue('--tarball'));
if (!tarball) {
  const r = run('npm', ['pack', '--pack-destination', work, '--json'], { cwd: repo });
  if (r.code !== 0) fail(`npm pack failed:\n${r.stderr.trim().split('\n').slice(-15).join('\n')}`);
  const packed = JSON.parse(r.stdout)[0];
  tarball = path.join(work, packed.filename);
  const prebuilt = packed.files.find((f) => f.path === 'prebuilds/linux-x64/img2prompt_native.node');
  Object.assign(report.steps.pack, { bytes: packed.size, unpackedBytes: packed.unpackedSize, entries: packed.entryCount, prebuiltBytes: prebuilt?.size ?? null });
  console.log(`${packed.filename}: ${packed.size} bytes (${packed.entryCount} files, ${packed.unpackedSize} unpacked); prebuilt addon ${prebuilt ? `${prebuilt.size} bytes` : 'MISSING'}`);
  if (!prebuilt) fail('the tarball has no prebuilds/linux-x64/img2prompt_native.node');
}
report.tarball = tarball;

// ---------------------------------------------------------------------------------------------
step('a PATH without a toolchain');
const bin = path.join(work, 'bin');
fs.rmSync(bin, { recursive: true, force: true });
fs.mkdirSync(bin);
const systemPath = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
const linked = [];
for (const tool of ['node', 'npm', 'npx', 'sh', 'env', 'cat', 'cp', 'ls', 'mkdir', 'mv', 'rm', 'ln', 'chmod', 'uname', 'head', 'tail', 'tr', 'dirname', 'basename']) {
  const dir = tool === 'node' ? path.dirname(process.execPath) : whichIn(systemPath, tool);
  if (!dir) continue;
  fs.symlinkSync(path.join(dir, tool), path.join(bin, tool));
  linked.push(tool);
}
if (!linked.includes('npm')) fail('npm not found on PATH');
const absent = ['g++', 'c++', 'gcc', 'cc', 'clang++', 'cmake', 'make', 'ninja', 'apt-get', 'dpkg', 'python3'];
const leaked = absent.filter((t) => whichIn([bin], t));
if (leaked.length) fail(`the bare PATH still finds ${leaked.join(', ')}`);
console.log(`PATH=${bin}: ${linked.join(' ')}`);
console.log(`not on it: ${absent.join(' ')}`);
const bareEnv = {
  PATH: bin,
  HOME: os.homedir(), // the user's npm cache
  LANG: process.env.LANG ?? 'C.UTF-8',
  ONNXRUNTIME_NODE_INSTALL: 'skip',
  npm_config_update_notifier: 'false',
  npm_config_fund: 'false',
  npm_config_audit: 'false',
  IMG2PROMPT_PROGRESS: '0',
};

// ---------------------------------------------------------------------------------------------
step('install the tarball into an empty project');
const app = path.join(work, 'app');
fs.rmSync(app, { recursive: true, force: true });
fs.mkdirSync(app);
fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2));
const install = run(path.join(bin, 'npm'), ['install', tarball, '--foreground-scripts', '--prefer-offline'], { cwd: app, env: bareEnv });
const installLines = install.output.split('\n').filter((l) => /img2prompt|added \d+ packages|ERR/.test(l));
installLines.forEach((l) => console.log(`  | ${l}`));
Object.assign(report.steps['install the tarball into an empty project'], { seconds: install.seconds, code: install.code, lines: installLines });
if (install.code !== 0) fail(`npm install failed:\n${install.output.trim().split('\n').slice(-20).join('\n')}`);
const installed = path.join(app, 'node_modules', 'img2prompt');
if (!/using the prebuilt addon/.test(install.output)) fail('the install script did not take the prebuilt addon');
if (fs.existsSync(path.join(installed, 'build'))) fail(`${installed}/build exists: something was compiled`);
console.log(`no build/ folder in ${path.relative(work, installed)}: nothing was compiled`);

// ---------------------------------------------------------------------------------------------
step('predict with the installed CLI');
const minilm = path.join(process.env.IMG2PROMPT_HOME || path.join(os.homedir(), '.cache', 'img2prompt'), 'models', 'minilm');
if (!fs.existsSync(minilm)) fail(`${minilm} is missing: run \`img2prompt models pull minilm\` first`);
const images = path.join(assets, 'eval', 'kaggle-sample', 'images');
const tokenizer = path.join(assets, 'tokenizers', 'clip', 'hf-openai-clip-vit-large-patch14');
const bank = path.join(assets, 'eval', 'prompts', 'krea-open-prompts-1k.prompts.txt');
for (const p of [images, tokenizer, bank]) if (!fs.existsSync(p)) fail(`${p} is missing (../shared/assets)`);

/** The same predict, run by `cli` (argv prefix) with its own model home; returns the output hashes. */
function predictWith(label, cli, cwd) {
  const home = path.join(work, `home-${label}`);
  fs.rmSync(home, { recursive: true, force: true });
  fs.mkdirSync(path.join(home, 'models'), { recursive: true });
  fs.symlinkSync(minilm, path.join(home, 'models', 'minilm'));
  const env = { ...bareEnv, IMG2PROMPT_HOME: home };
  const out = path.join(work, `out-${label}`);
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out);
  const cmd = (cliArgs) => run(cli[0], [...cli.slice(1), ...cliArgs], { cwd, env });
  const random = cmd(['models', 'random', '--arch', 'tiny', '--seed', '0', '--name', 'tiny', '--tokenizer', tokenizer]);
  if (random.code !== 0) fail(`${label}: models random failed:\n${random.output}`);
  const submission = path.join(out, 'submission.csv');
  const prompts = path.join(out, 'prompts.csv');
  const predict = cmd(['predict', images, '-o', submission, '--prompts-out', prompts, '--model', 'tiny', '--members', 'knn,map', '--prompts-bank', bank]);
  predict.stderr.trim().split('\n').slice(-3).forEach((l) => console.log(`  | ${l}`));
  if (predict.code !== 0) fail(`${label}: predict failed:\n${predict.output}`);
  const validate = cmd(['validate', submission, '--images', images]);
  console.log(`  | ${validate.output.trim().split('\n').slice(-1)[0]}`);
  if (validate.code !== 0) fail(`${label}: validate refused the submission:\n${validate.output}`);
  const result = { predictSeconds: predict.seconds, submission: sha256(submission), prompts: sha256(prompts), rows: fs.readFileSync(submission, 'utf8').trimEnd().split('\n').length - 1 };
  console.log(`  submission ${result.rows} rows, sha256 ${result.submission}; prompts sha256 ${result.prompts}`);
  return result;
}
const bareCli = path.join(app, 'node_modules', '.bin', 'img2prompt');
report.installed = predictWith('installed', [bareCli], app);

// ---------------------------------------------------------------------------------------------
step('the same predict from this checkout');
report.checkout = predictWith('checkout', [path.join(bin, 'node'), '--import', 'tsx', path.join(repo, 'src', 'cli', 'bin.ts')], repo);
if (report.checkout.submission !== report.installed.submission || report.checkout.prompts !== report.installed.prompts) {
  fail('the installed package and this checkout wrote different bytes');
}
console.log('same bytes from the installed package and from the checkout');

// ---------------------------------------------------------------------------------------------
step('exports map');
const probe = `
const front = await import('img2prompt');
const runtime = await import('img2prompt/runtime');
const missing = [
  ...['predict', 'interrogate', 'PredictEngine', 'InterrogateEngine', 'writeSubmission', 'readSubmission', 'Img2PromptError'].filter((n) => typeof front[n] !== 'function'),
  ...['Session', 'tensor', 'topk', 'bottomk'].filter((n) => typeof runtime[n] !== 'function'),
];
let deep = 'allowed';
await import('img2prompt/dist/src/rank/topk.js').catch((e) => { deep = e.code; });
console.log(JSON.stringify({ missing, sessionInFront: 'Session' in front, deep, ort: runtime.ortVersion() }));
`;
const exp = run(path.join(bin, 'node'), ['--input-type=module', '-e', probe], { cwd: app, env: bareEnv, quiet: true });
if (exp.code !== 0) fail(`importing the package failed:\n${exp.output}`);
report.exports = JSON.parse(exp.stdout.trim().split('\n').pop());
console.log(`  ${JSON.stringify(report.exports)}`);
if (report.exports.missing.length) fail(`the package lacks ${report.exports.missing.join(', ')}`);
if (report.exports.deep !== 'ERR_PACKAGE_PATH_NOT_EXPORTED') fail(`a deep import was ${report.exports.deep}, not refused`);

// ---------------------------------------------------------------------------------------------
step('types: the @example blocks and the internal knobs, as a consumer compiles them');
const typesDir = path.join(app, 'types');
fs.mkdirSync(typesDir, { recursive: true });
const examples = [];
for (const dts of ['predict/predict.d.ts', 'predict/engine.d.ts', 'interrogate/interrogate.d.ts', 'interrogate/engine.d.ts', 'submission/submission-csv.d.ts']) {
  const text = fs.readFileSync(path.join(installed, 'dist', 'src', dts), 'utf8');
  for (const m of text.matchAll(/@example\s*\n((?:\s*\*.*\n)*?)\s*\*\s*@throws/g)) {
    const code = m[1].split('\n').map((l) => l.replace(/^\s*\* ?/, '')).join('\n').replace(/```ts\n/, '').replace(/```\s*$/, '');
    const file = path.join(typesDir, `example-${examples.length + 1}.ts`);
    fs.writeFileSync(file, `${code}\nexport {};\n`);
    examples.push(path.relative(app, file));
  }
}
fs.writeFileSync(path.join(typesDir, 'internal.ts'), [
  "import type { TopKOptions } from 'img2prompt/runtime';",
  'export const ok: TopKOptions = { threads: 2, simd: false };',
  '// @ts-expect-error testing knobs are @internal, stripped from the published types',
  'export const hidden: TopKOptions = { forceThreads: 2 };',
  '',
].join('\n'));
fs.writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify({
  compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true, types: ['node'], typeRoots: [path.join(repo, 'node_modules', '@types')] },
  include: ['types/*.ts'],
}, null, 2));
const tsc = run(path.join(bin, 'node'), [path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app], { cwd: app, env: bareEnv });
report.types = { examples, code: tsc.code };
console.log(`  ${examples.length} @example blocks + the internal-knob check`);
if (examples.length < 5) fail(`expected 5 @example blocks in the installed declarations, found ${examples.length}`);
if (tsc.code !== 0) fail(`the consumer type-check failed:\n${tsc.output}`);

report.seconds = (Date.now() - started) / 1000;
fs.writeFileSync(path.join(work, 'report.json'), JSON.stringify(report, null, 2));
console.log(`\nOK in ${report.seconds.toFixed(0)} s: installed without a toolchain, predicted the same bytes as the checkout`);
if (!keep) fs.rmSync(work, { recursive: true, force: true });
