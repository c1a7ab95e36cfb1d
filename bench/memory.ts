// Peak memory of the commands that read many images (issue 15, constant memory): each command runs as a
// process of its own under `/usr/bin/time -v` on N inputs (10k, 100k, 1M: symlinks under distinct names to
// a few small images, passed with --from), a random tiny CLIP (and a random tiny BLIP for caption), and its
// peak RSS and wall time per image are printed as a markdown table for bench/RESULTS.md.
//
//   node --import tsx bench/memory.ts [--sizes 10000,100000] [--commands predict,embed-images,interrogate,caption]
//        [--cli dist/src/cli/bin.js] [--work DIR] [--keep]
//
// --cli points at another build's CLI (e.g. an older commit's dist/) to measure before and after on the
// same inputs. Outputs are removed after each run (a 1M-image submission is about 8 GB); --keep keeps the
// work folder (the links and the model home) for a later call with --work.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { modelDir } from '../src/models/cache.js';
import { asset, KAGGLE_SAMPLE } from '../test/helpers/paths.js';
import { describeMachine } from './machine.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const sizes = arg('sizes', '10000,100000').split(',').map(Number);
const commands = arg('commands', 'predict,embed-images,interrogate,caption').split(',');
const cliPath = path.resolve(arg('cli', 'dist/src/cli/bin.js'));
const work = path.resolve(arg('work', fs.mkdtempSync(path.join(os.tmpdir(), 'img2prompt-memory-'))));
const keep = process.argv.includes('--keep');
const home = path.join(work, 'home');
const SOURCE_SIDE = 64;

function run(argv: string[], env: NodeJS.ProcessEnv = {}): { code: number; stderr: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', env: { ...process.env, IMG2PROMPT_HOME: home, IMG2PROMPT_PROGRESS: '0', ...env }, maxBuffer: 1 << 28 });
  return { code: r.status ?? 1, stderr: r.stderr ?? '' };
}

/** Model home: the real MiniLM (linked), a random tiny CLIP and BLIP, a 200-prompt bank and 40-line label lists. */
function setUpHome(): { bank: string; labels: string } {
  const bank = path.join(home, 'bank.txt');
  const labels = path.join(home, 'labels');
  if (fs.existsSync(bank)) return { bank, labels };
  const minilm = modelDir('minilm');
  fs.mkdirSync(path.join(home, 'models'), { recursive: true });
  fs.symlinkSync(minilm, path.join(home, 'models', 'minilm'));
  for (const argv of [
    ['models', 'random', '--arch', 'tiny', '--seed', '7', '--name', 'tiny', '--layout', 'open_clip', '--tokenizer', asset('tokenizers', 'clip', 'hf-openai-clip-vit-large-patch14')],
    ['models', 'random', '--arch', 'blip-tiny', '--seed', '3', '--name', 'blip-t', '--tokenizer', asset('tokenizers', 'minilm')],
  ]) {
    const r = run([process.execPath, cliPath, ...argv]);
    if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  }
  const lines = (file: string, n: number) => fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').slice(0, n);
  const corpus = asset('eval', 'prompts');
  fs.writeFileSync(bank, [...lines(path.join(corpus, 'songjein-gpt4-kaggle-style-prompts.txt'), 100), ...lines(path.join(corpus, 'krea-open-prompts-1k.prompts.txt'), 100)].join('\n') + '\n');
  fs.mkdirSync(labels);
  for (const f of ['artists', 'flavors', 'mediums', 'movements', 'sites', 'negative']) fs.writeFileSync(path.join(labels, `${f}.txt`), lines(asset('labels', `${f}.txt`), 40).join('\n') + '\n');
  return { bank, labels };
}

/** The 7 Kaggle sample images at 64×64: decoding stays cheap, so the run measures what the engine holds. */
async function sourceImages(): Promise<string[]> {
  const dir = path.join(work, 'sources');
  fs.mkdirSync(dir, { recursive: true });
  const out: string[] = [];
  for (const name of fs.readdirSync(path.join(KAGGLE_SAMPLE, 'images')).sort()) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) await sharp(path.join(KAGGLE_SAMPLE, 'images', name)).resize(SOURCE_SIDE, SOURCE_SIDE).png().toFile(file);
    out.push(file);
  }
  return out;
}

/** N symlinks under distinct names (`im<i>.png`, the ids) to the sources in turn, and the --from list naming them. */
function inputs(n: number, sources: string[]): string {
  const dir = path.join(work, `inputs-${n}`);
  const list = path.join(work, `inputs-${n}.txt`);
  if (fs.existsSync(list)) return list;
  fs.mkdirSync(dir, { recursive: true });
  const names: string[] = [];
  for (let i = 0; i < n; i++) {
    const file = path.join(dir, `im${String(i).padStart(7, '0')}.png`);
    if (!fs.existsSync(file)) fs.symlinkSync(sources[i % sources.length]!, file);
    names.push(file);
  }
  fs.writeFileSync(list, names.join('\n') + '\n');
  return list;
}

function commandLine(command: string, list: string, out: string, files: { bank: string; labels: string }): string[] {
  const from = ['--from', list];
  switch (command) {
    case 'predict':
      // knn and map: the interrogator member (one MiniLM pass per image, ~60 ms on 2 cores) would make a
      // 100k run last hours, and what it holds is per batch, as the other members'.
      return ['predict', ...from, '-o', path.join(out, 'sub.csv'), '--prompts-out', path.join(out, 'prompts.csv'), '--nearest-out', path.join(out, 'nearest.csv'), '--members', 'knn,map', '--model', 'tiny', '--prompts-bank', files.bank, '--labels-dir', files.labels];
    case 'embed-images':
      return ['embed-images', ...from, '--model', 'tiny', '-o', path.join(out, 'x.npy')];
    case 'interrogate':
      return ['interrogate', ...from, '--model', 'tiny', '--labels-dir', files.labels, '--mode', 'fast', '-o', path.join(out, 'prompts.csv')];
    case 'caption':
      return ['caption', ...from, '--model', 'blip-t', '--num-beams', '1', '--max-length', '8', '--min-length', '0', '-o', path.join(out, 'captions.csv')];
    default:
      throw new Error(`unknown command ${command}`);
  }
}

interface Measured {
  command: string;
  n: number;
  rssMiB: number;
  seconds: number;
}

/** One command on `n` inputs under /usr/bin/time -v: its peak RSS and wall time. */
function measure(command: string, n: number, list: string, files: { bank: string; labels: string }): Measured {
  const out = path.join(work, `out-${command}`);
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out);
  const r = run(['/usr/bin/time', '-v', process.execPath, cliPath, ...commandLine(command, list, out, files)]);
  fs.rmSync(out, { recursive: true, force: true });
  if (r.code !== 0) throw new Error(`${command} on ${n} inputs failed (${r.code}):\n${r.stderr.slice(-3000)}`);
  const kib = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1]);
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(r.stderr);
  if (!kib || !wall) throw new Error(`no /usr/bin/time report in:\n${r.stderr.slice(-2000)}`);
  const seconds = Number(wall[1] ?? 0) * 3600 + Number(wall[2]) * 60 + Number(wall[3]);
  return { command, n, rssMiB: kib / 1024, seconds };
}

const files = setUpHome();
const sources = await sourceImages();
console.log(`# ${describeMachine()}; load average at start ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}; CLI ${cliPath}`);
console.log('| command | inputs | peak RSS | vs smallest | wall | ms / image | load avg (1 min) after |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const command of commands) {
  // A first run in a fresh model home also embeds the prompt bank and the label lists into its cache:
  // a warm-up on 100 inputs does that, so every measured run starts from the same warm cache.
  measure(command, 100, inputs(100, sources), files);
  let first: Measured | undefined;
  for (const n of sizes) {
    const m = measure(command, n, inputs(n, sources), files);
    first ??= m;
    const ratio = m.rssMiB / first.rssMiB;
    console.log(`| ${command} | ${n.toLocaleString('en-US')} | ${m.rssMiB.toFixed(0)} MiB | ${ratio === 1 ? '—' : `${((ratio - 1) * 100).toFixed(1)} %`} | ${m.seconds.toFixed(0)} s | ${((m.seconds * 1000) / n).toFixed(2)} | ${os.loadavg()[0]!.toFixed(1)} |`);
  }
}
if (!keep) fs.rmSync(work, { recursive: true, force: true });
