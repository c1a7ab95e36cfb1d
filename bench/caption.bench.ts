// Captions per second of the engine's captioner against Hugging Face transformers on torch CPU, on the
// same random weights, images and generation settings, in the same run (bench/caption_peer.py).
//   node --import tsx bench/caption.bench.ts [--models blip-base,blip-large] [--images 8] [--settings 1x1,1x8,8x1,8x8]
//       [--max-length 32] [--min-length 5] [--python /work/venv/bin/python]
// A setting BxK is batch B images with K beams. The random checkpoints (seed 0, Hugging Face layout)
// are written once into $IMG2PROMPT_HOME/bench-captioners/<arch>; images are the Kaggle sample's,
// repeated to --images. Both sides are timed from image files to token ids after one warm-up batch;
// the table also says whether both produced the same token ids.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Captioner } from '../src/caption/captioner.js';
import { captionArchitectureConfig } from '../src/caption/architectures.js';
import { writeRandomCaptionCheckpoint } from '../src/caption/random-checkpoint.js';
import { modelHome } from '../src/models/cache.js';
import { describeMachine } from './machine.js';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const MODELS = opt('--models', 'blip-base,blip-large').split(',');
const IMAGES = Number(opt('--images', '8'));
const SETTINGS = opt('--settings', '1x1,1x8,8x1,8x8').split(',').map((s) => s.split('x').map(Number) as [number, number]);
const MAX_LENGTH = Number(opt('--max-length', '32'));
const MIN_LENGTH = Number(opt('--min-length', '5'));
const PYTHON = opt('--python', process.env.IMG2PROMPT_PYTHON ?? 'python3');
const ASSETS = path.resolve('..', 'shared', 'assets');

const kaggle = fs.readdirSync(path.join(ASSETS, 'eval', 'kaggle-sample', 'images')).sort().map((f) => path.join(ASSETS, 'eval', 'kaggle-sample', 'images', f));
const files = Array.from({ length: IMAGES }, (_, i) => kaggle[i % kaggle.length]!);

async function checkpoint(arch: string): Promise<string> {
  const dir = path.join(modelHome(), 'bench-captioners', arch);
  if (!fs.existsSync(path.join(dir, 'config.json'))) {
    console.log(`writing random ${arch} weights to ${dir} ...`);
    await writeRandomCaptionCheckpoint(dir, captionArchitectureConfig(arch), 0, path.join(ASSETS, 'tokenizers', 'minilm'));
  }
  return dir;
}

async function ours(captioner: Captioner, batch: number, beams: number): Promise<{ seconds: number; tokens: number[][] }> {
  const options = { numBeams: beams, maxLength: MAX_LENGTH, minLength: MIN_LENGTH, batchSize: batch };
  for await (const _ of captioner.run(files.slice(0, batch), options)) void _; // warm-up
  const tokens: number[][] = [];
  const t0 = performance.now();
  for await (const r of captioner.run(files, options)) tokens.push(r.tokens!);
  return { seconds: (performance.now() - t0) / 1000, tokens };
}

function peer(dir: string, batch: number, beams: number): { seconds: number; tokens: number[][]; threads: number } {
  const payload = JSON.stringify({ dir, files, batch, beams, max_length: MAX_LENGTH, min_length: MIN_LENGTH });
  const r = spawnSync(PYTHON, [path.join('bench', 'caption_peer.py'), payload], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`caption_peer.py failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

console.log(`machine: ${describeMachine()}`);
console.log(`load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log(`${IMAGES} images, max_length ${MAX_LENGTH}, min_length ${MIN_LENGTH}\n`);
const rows: string[] = [];
for (const arch of MODELS) {
  const dir = await checkpoint(arch);
  const captioner = await Captioner.open(dir);
  for (const [batch, beams] of SETTINGS) {
    const a = await ours(captioner, batch, beams);
    const b = peer(dir, batch, beams);
    const same = a.tokens.filter((t, i) => JSON.stringify(t) === JSON.stringify(b.tokens[i])).length;
    const row = `| ${arch} | ${batch} | ${beams} | ${(IMAGES / a.seconds).toFixed(3)} | ${(IMAGES / b.seconds).toFixed(3)} | ${(b.seconds / a.seconds).toFixed(2)}× | ${same}/${IMAGES} | ${os.loadavg()[0]!.toFixed(1)} |`;
    console.log(row);
    rows.push(row);
  }
  captioner.close();
}
console.log('\n| model | batch | beams | engine captions/s | transformers captions/s | ratio | same ids | load (1 min) |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) console.log(r);
