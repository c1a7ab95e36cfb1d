import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { modelDir } from '../src/models/cache.js';
import { installRandomClip } from '../src/models/install-local.js';
import { ensureMiniLMOnnx } from '../models/graph/bert.js';
import { ensureClipOnnx, ensureClipTextPrefixOnnx } from '../src/clip/onnx-cache.js';
import { runCli } from './helpers/cli.js';
import { asset, KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';

/**
 * Built graphs carry the sha256 recorded when they were built: a graph changed afterwards is rebuilt
 * with a notice, never used; `models verify` re-hashes them; downloaded or imported files that changed
 * are refused, since nothing can rebuild them.
 */

const TOKENIZER = asset('tokenizers', 'clip', 'hf-openai-clip-vit-large-patch14');
const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** Flips 4 bytes in the middle of `file` and puts its mtime back, the way a careless edit or a bad copy might. */
function flipFourBytes(file: string): void {
  // touch -r keeps the nanoseconds that fs.utimes would round away.
  const times = path.join(work, 'times-ref');
  execFileSync('touch', ['-r', file, times]);
  const before = fs.statSync(file);
  const at = Math.floor(before.size / 2);
  const fd = fs.openSync(file, 'r+');
  const bytes = Buffer.alloc(4);
  fs.readSync(fd, bytes, 0, 4, at);
  for (let i = 0; i < 4; i++) bytes[i]! ^= 0xff;
  fs.writeSync(fd, bytes, 0, 4, at);
  fs.closeSync(fd);
  execFileSync('touch', ['-r', times, file]);
  expect(fs.statSync(file).mtimeMs).toBe(before.mtimeMs);
}

let work: string;
let home: string;
let savedHome: string | undefined;

beforeAll(async () => {
  work = tempDir();
  home = path.join(work, 'home');
  // A full copy of the installed MiniLM (its model.onnx built and recorded), then a tiny random CLIP.
  const minilm = modelDir('minilm');
  await ensureMiniLMOnnx(minilm);
  fs.cpSync(minilm, path.join(home, 'models', 'minilm'), { recursive: true });
  savedHome = process.env.IMG2PROMPT_HOME;
  process.env.IMG2PROMPT_HOME = home;
  await ensureMiniLMOnnx(modelDir('minilm'));
  await installRandomClip({ arch: 'tiny', seed: 5, name: 'tiny', tokenizerDir: TOKENIZER });
});

afterAll(() => {
  if (savedHome === undefined) delete process.env.IMG2PROMPT_HOME;
  else process.env.IMG2PROMPT_HOME = savedHome;
  fs.rmSync(work, { recursive: true, force: true });
});

describe('the built MiniLM graph', () => {
  const onnx = () => path.join(home, 'models', 'minilm', 'model.onnx');
  const embed = (out: string) => runCli(['embed', '--prompts', path.join(KAGGLE_SAMPLE, 'prompts.csv'), '-o', out], home);

  it('is rebuilt with a notice when its bytes changed after the build, and the submission is that of the intact graph', () => {
    const intact = sha256(onnx());
    const good = path.join(work, 'good.csv');
    expect(embed(good).code).toBe(0);

    flipFourBytes(onnx());
    const damaged = sha256(onnx());
    const again = path.join(work, 'again.csv');
    const r = embed(again);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `warning: ${onnx()}: sha256 ${damaged}, not the ${intact} recorded when it was built (changed or damaged since); rebuilding it from model.safetensors\n`,
    );
    expect(sha256(onnx())).toBe(intact);
    expect(fs.readFileSync(again, 'utf8')).toBe(fs.readFileSync(good, 'utf8'));
  });

  it('models verify re-hashes it: a damaged one is reported and rebuilt, even when its stamp still looks as recorded', () => {
    const intact = sha256(onnx());
    flipFourBytes(onnx());
    const damaged = sha256(onnx());
    // Damage the kernel never saw (bit rot): the recorded stamp is made to match the file's, so only a hash tells.
    const sidecarFile = path.join(home, 'models', 'minilm', 'model.onnx.json');
    const sidecar = JSON.parse(fs.readFileSync(sidecarFile, 'utf8'));
    const st = fs.statSync(onnx());
    Object.assign(sidecar.built[0], { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino });
    fs.writeFileSync(sidecarFile, JSON.stringify(sidecar));

    const r = runCli(['models', 'verify', 'minilm'], home);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      `minilm: ${onnx()}: sha256 ${damaged}, not the ${intact} recorded when it was built (changed or damaged since); rebuilding it from model.safetensors\n`,
    );
    // The copied cache may hold the fp16 graph too (built by other tests): it is verified as well.
    expect(r.stdout).toMatch(/^minilm: built files rebuilt and verified: model\.onnx(, model\.fp16\.onnx)?$/m);
    expect(sha256(onnx())).toBe(intact);

    const clean = runCli(['models', 'verify', 'minilm'], home);
    expect(clean.stdout).toMatch(/^minilm: 9 files verified \(\d+\.\d MB\) in .+\nminilm: built files verified: model\.onnx(, model\.fp16\.onnx)?\n$/);
  });
});

describe('the built CLIP graphs', () => {
  const dir = () => path.join(home, 'models', 'tiny');
  const images = path.join(KAGGLE_SAMPLE, 'images');
  const embedImages = (out: string) => runCli(['embed-images', images, '--model', 'tiny', '-o', out], home);

  it('a changed vision.onnx is rebuilt with a notice, and the embeddings are those of the intact graph', () => {
    const vision = path.join(dir(), 'vision.onnx');
    const intact = sha256(vision);
    const good = path.join(work, 'good.npy');
    expect(embedImages(good).code).toBe(0);

    flipFourBytes(vision);
    const damaged = sha256(vision);
    const again = path.join(work, 'again.npy');
    const r = embedImages(again);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `warning: ${vision}: sha256 ${damaged}, not the ${intact} recorded when it was built (changed or damaged since); rebuilding it from open_clip_model.safetensors\n`,
    );
    expect(sha256(vision)).toBe(intact);
    expect(sha256(again)).toBe(sha256(good));
  });

  it('models verify reports and rebuilds a damaged text.onnx', () => {
    const text = path.join(dir(), 'text.onnx');
    const intact = sha256(text);
    flipFourBytes(text);
    const r = runCli(['models', 'verify', 'tiny'], home);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^tiny: ${text.replace(/[.]/g, '\\.')}: sha256 [0-9a-f]{64}, not the ${intact} recorded when it was built`, 'm'));
    expect(r.stdout).toContain('tiny: built files rebuilt and verified: vision.onnx, text.onnx\n');
    expect(sha256(text)).toBe(intact);
  });

  it('the prefix-cached text graph is recorded too: rebuilt with a notice on open, re-hashed by models verify', async () => {
    const files = await ensureClipOnnx(dir());
    const prefix = (await ensureClipTextPrefixOnnx(dir(), files))!;
    expect(prefix).toBe(path.join(dir(), 'text-prefix.onnx'));
    const intact = sha256(prefix);

    flipFourBytes(prefix);
    const damaged = sha256(prefix);
    const notices: string[] = [];
    await ensureClipTextPrefixOnnx(dir(), files, { onRebuild: (m) => notices.push(m) });
    expect(notices).toEqual([
      `${prefix}: sha256 ${damaged}, not the ${intact} recorded when it was built (changed or damaged since); rebuilding it from open_clip_model.safetensors`,
    ]);
    expect(sha256(prefix)).toBe(intact);

    flipFourBytes(prefix);
    const r = runCli(['models', 'verify', 'tiny'], home);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`tiny: ${prefix}: sha256 `);
    expect(r.stdout).toContain('tiny: built files rebuilt and verified: vision.onnx, text.onnx, text-prefix.onnx\n');
    expect(sha256(prefix)).toBe(intact);
  });

  it('changed weights, which nothing can rebuild, are refused on open and by models verify, naming the file and how to reinstall', () => {
    const weights = path.join(dir(), 'open_clip_model.safetensors');
    const installed = sha256(weights);
    flipFourBytes(weights);
    const damaged = sha256(weights);
    const hint = 'install it again: `img2prompt models random --name tiny --force` with its --arch and --seed';

    const r = embedImages(path.join(work, 'refused.npy'));
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('img2prompt: '))).toEqual([
      `img2prompt: ${weights}: sha256 ${damaged}, not the ${installed} it was installed with (changed or damaged since); ${hint}`,
    ]);
    expect(fs.existsSync(path.join(work, 'refused.npy'))).toBe(false);

    const v = runCli(['models', 'verify', 'tiny'], home);
    expect(v.code).toBe(1);
    expect(v.stderr).toBe(`img2prompt: ${weights}: corrupt: sha256 ${damaged}, expected ${installed}; ${hint}\n`);
  });
});
