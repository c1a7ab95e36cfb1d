// The prefix-cached chain (issue 16) against the uncached one, on random weights of a real size.
//   node --import tsx bench/chain.bench.ts [--model NAME] [--images N] [--shortlist K] [--flavors N] [--modes best,negative] [--step-only | --modes-only]
// NAME is a CLIP in the model cache (default: bench-b32, made once by
// `img2prompt models random --arch ViT-B-32 --seed 0 --name bench-b32`). Two parts:
//  1. one chain step: 2,048 "<prompt>, <flavor>" candidates embedded by encodeTexts (every candidate
//     in full, dynamic padding) and by encodeTextsSharingPrefix, alternating, 3 rounds, medians;
//  2. whole `interrogate --mode best` and `negative` on N Kaggle images (default 1) with chainCache
//     on and off: seconds per image, and whether both chose the same labels. The shortlist defaults to
//     256 here (the product's default is 2,048) so the uncached run ends in minutes on 2 cores; the
//     ratio per step is what part 1 measures at the full 2,048.
// The label lists are cut (flavors to 6,000 lines, or --flavors N) so the banks embed in about a minute; the chain's
// cost depends on the 2,048-label shortlist and the prompt length, not on the bank size.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClipModel } from '../src/clip/model.js';
import { interrogate, InterrogateEngine, type InterrogatedImage } from '../src/interrogate/interrogate.js';
import { describeMachine } from './machine.js';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const MODEL = opt('--model', 'bench-b32');
const IMAGES = Number(opt('--images', '1'));
const SHORTLIST = Number(opt('--shortlist', '256'));
const FLAVORS = Number(opt('--flavors', '6000'));
const MODES = opt('--modes', 'best,negative').split(',').map((m) => m.trim()) as ('best' | 'negative')[];
const ASSETS = path.resolve('..', 'shared', 'assets');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(`machine: ${describeMachine()}`);
console.log(`model: ${MODEL}`);

const flavors = fs.readFileSync(path.join(ASSETS, 'labels', 'flavors.txt'), 'utf8').split('\n').filter((l) => l.trim() !== '');

async function stepBench(): Promise<void> {
  const model = await ClipModel.open(MODEL, { towers: ['text'] });
  try {
    const prompt = 'a painting of an old lighthouse on a cliff in a storm, dramatic lighting, highly detailed, oil on canvas, by ivan aivazovsky';
    const texts = flavors.slice(0, 2048).map((f) => `${prompt}, ${f}`);
    const tokens = texts.reduce((s, t) => s + model.countTokens(t), 0);
    await model.encodeTextsSharingPrefix(texts.slice(0, 8)); // builds/opens the prefix graph outside the timing
    const full: number[] = [];
    const cached: number[] = [];
    let a: Float32Array = new Float32Array(0);
    let b: Float32Array = new Float32Array(0);
    for (let round = 0; round < 3; round++) {
      let t0 = performance.now();
      a = await model.encodeTexts(texts);
      full.push((performance.now() - t0) / 1000);
      t0 = performance.now();
      b = await model.encodeTextsSharingPrefix(texts);
      cached.push((performance.now() - t0) / 1000);
    }
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    console.log(`\none chain step, ${texts.length} candidates, ${(tokens / texts.length).toFixed(1)} tokens each on average (prompt ${model.countTokens(prompt)}):`);
    console.log(`| path | s (median of 3) | candidates/s |`);
    console.log(`|---|---:|---:|`);
    console.log(`| encodeTexts (every candidate in full) | ${median(full).toFixed(2)} | ${(texts.length / median(full)).toFixed(0)} |`);
    console.log(`| encodeTextsSharingPrefix | ${median(cached).toFixed(2)} | ${(texts.length / median(cached)).toFixed(0)} |`);
    console.log(`speed-up ${(median(full) / median(cached)).toFixed(2)}x; largest embedding difference ${diff.toExponential(2)}`);
  } finally {
    model.close();
  }
}

async function modeBench(): Promise<void> {
  const labelsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'img2prompt-chain-bench-'));
  try {
    for (const f of ['artists', 'mediums', 'movements', 'sites', 'negative']) fs.copyFileSync(path.join(ASSETS, 'labels', `${f}.txt`), path.join(labelsDir, `${f}.txt`));
    fs.writeFileSync(path.join(labelsDir, 'flavors.txt'), flavors.slice(0, FLAVORS).join('\n') + '\n');
    const imageDir = path.join(ASSETS, 'eval', 'kaggle-sample', 'images');
    const files = fs.readdirSync(imageDir).sort().slice(0, IMAGES).map((f) => path.join(imageDir, f));
    const engine = await InterrogateEngine.open({ model: MODEL, labelsDir, onNotice: () => {} });
    try {
      console.log(`\nwhole modes, ${files.length} image(s), ${Math.min(FLAVORS, flavors.length)} flavors, shortlist ${SHORTLIST}, chains of up to 32 labels:`);
      console.log('| mode | cache off s/image | cache on s/image | speed-up | cache off CPU s/image | cache on CPU s/image | CPU speed-up | same labels |');
      console.log('|---|---:|---:|---:|---:|---:|---:|---|');
      for (const mode of MODES) {
        const timed = async (chainCache: boolean) => {
          const t0 = performance.now();
          const c0 = process.cpuUsage();
          const out: InterrogatedImage[] = [];
          for await (const r of interrogate(files, { engine, mode, chainCache, shortlist: SHORTLIST })) out.push(r);
          const s = (performance.now() - t0) / 1000 / files.length;
          // CPU seconds of this process (ORT's threads included) as well as wall time: on a shared machine
          // the wall time of a half depends on what else ran then, its CPU time much less.
          const used = process.cpuUsage(c0);
          const cpu = (used.user + used.system) / 1e6 / files.length;
          // Progress on stderr, with the load: the halves are minutes apart on a shared machine.
          console.error(`${mode}, cache ${chainCache ? 'on' : 'off'}: ${s.toFixed(1)} s/image, ${cpu.toFixed(1)} CPU s/image (1-minute load ${os.loadavg()[0]!.toFixed(1)})`);
          return { out, s, cpu };
        };
        const on = await timed(true);
        const off = await timed(false);
        const same = JSON.stringify(on.out.map((r) => r.labels.map((l) => l.label))) === JSON.stringify(off.out.map((r) => r.labels.map((l) => l.label)));
        console.log(`| ${mode} | ${off.s.toFixed(1)} | ${on.s.toFixed(1)} | ${(off.s / on.s).toFixed(2)}x | ${off.cpu.toFixed(1)} | ${on.cpu.toFixed(1)} | ${(off.cpu / on.cpu).toFixed(2)}x | ${same ? 'yes' : 'NO'} |`);
      }
    } finally {
      engine.close();
    }
  } finally {
    fs.rmSync(labelsDir, { recursive: true, force: true });
  }
}

if (!args.includes('--modes-only')) await stepBench();
if (!args.includes('--step-only')) await modeBench();
