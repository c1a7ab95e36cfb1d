// Images/s from image files (decode + CLIP preprocessing + vision tower, the pipelined encodeImages) against
// the decode-only rate of the same machine (decode + preprocessing into pixel batches, no tower) and the
// tower-only rate, at libuv's default pool and at the pool the CLI sizes (issue 16: on 16 cores the default
// 4 threads held files to 354 img/s against a 5,174 img/s tower).
//   node --import tsx bench/decode.bench.ts [--model NAME] [--images N] [--batch B]
// NAME: a CLIP in the model cache (default bench-b32, made by `img2prompt models random --arch ViT-B-32
// --seed 0 --name bench-b32`). N files: the Kaggle sample PNGs (512×512) repeated (default 96; the page
// cache holds them, so this is decode, not disk). Each configuration runs in its own process, because
// libuv sizes its pool once, at first use:
//   default: UV_THREADPOOL_SIZE unset (4 threads), decodes in flight min(4, cores) — the old CLI;
//   sized:   the CLI's pool (cores + 4, cli/threadpool.cts), decodes in flight one per core.
// On a GPU machine the tower is fast and the decode rate is the bound: files/s should reach ≥ 90 % of it.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ClipModel } from '../src/clip/model.js';
import { defaultDecodeConcurrency, loadBatches } from '../src/image/batch-loader.js';
import { threadpoolSizeVariable } from '../src/config.js';
import { describeMachine } from './machine.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'bench-b32' },
    images: { type: 'string', default: '96' },
    batch: { type: 'string', default: '32' },
    child: { type: 'string' },
  },
});
const IMAGES = Number(args.images);
const BATCH = Number(args.batch);
const ASSETS = path.resolve('..', 'shared', 'assets');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Rates {
  pool: number;
  inFlight: number;
  decode: number;
  tower: number;
  files: number;
}

/** One configuration, in this process: its pool is whatever UV_THREADPOOL_SIZE said at start. */
async function measure(): Promise<Rates> {
  const dir = path.join(ASSETS, 'eval', 'kaggle-sample', 'images');
  const pngs = fs.readdirSync(dir).sort().map((f) => path.join(dir, f));
  const files = Array.from({ length: IMAGES }, (_, i) => pngs[i % pngs.length]!);
  const model = await ClipModel.open(args.model!, { towers: ['vision'] });
  try {
    const inFlight = defaultDecodeConcurrency();
    const decodeOnce = async () => {
      const t0 = performance.now();
      let n = 0;
      for await (const b of loadBatches(files, { ...model.imageTransform, batchSize: BATCH, concurrency: inFlight })) n += b.ids.length;
      if (n !== files.length) throw new Error(`decoded ${n} of ${files.length}`);
      return files.length / ((performance.now() - t0) / 1000);
    };
    const pixels = new Float32Array(BATCH * 3 * model.imageSize ** 2).map((_, i) => Math.sin(i));
    const towerOnce = async () => {
      const t0 = performance.now();
      await model.encodePixels(pixels, BATCH);
      return BATCH / ((performance.now() - t0) / 1000);
    };
    const filesOnce = async () => {
      const t0 = performance.now();
      const out = await model.encodeImages(files, { batchSize: BATCH, concurrency: inFlight });
      if (out.ids.length !== files.length) throw new Error(`encoded ${out.ids.length} of ${files.length}`);
      return files.length / ((performance.now() - t0) / 1000);
    };
    await decodeOnce();
    await towerOnce(); // warm-up: first runs allocate
    const decode: number[] = [];
    const tower: number[] = [];
    const fromFiles: number[] = [];
    for (let round = 0; round < 3; round++) {
      decode.push(await decodeOnce());
      tower.push(await towerOnce());
      fromFiles.push(await filesOnce());
    }
    return { pool: threadpoolSizeVariable(), inFlight, decode: median(decode), tower: median(tower), files: median(fromFiles) };
  } finally {
    model.close();
  }
}

if (args.child) {
  process.stdout.write(`RATES ${JSON.stringify(await measure())}\n`);
} else {
  console.log(`machine: ${describeMachine()}; model ${args.model}; ${IMAGES} files (512×512 PNG), batch ${BATCH}; medians of 3 rounds`);
  const script = fileURLToPath(import.meta.url);
  const sized = String(Math.min(1024, os.availableParallelism() + 4)); // as cli/threadpool.cts
  const rows: string[] = [];
  for (const [name, pool] of [['default', undefined], ['sized', sized]] as const) {
    const env = { ...process.env };
    delete env.UV_THREADPOOL_SIZE;
    if (pool) env.UV_THREADPOOL_SIZE = pool;
    const passOn = ['--model', args.model!, '--images', String(IMAGES), '--batch', String(BATCH), '--child', name];
    const child = spawnSync(process.execPath, [...process.execArgv, script, ...passOn], { env, encoding: 'utf8' });
    const line = /^RATES (.*)$/m.exec(child.stdout)?.[1];
    if (child.status !== 0 || !line) throw new Error(`${name}: ${child.stderr}`);
    const r = JSON.parse(line) as Rates;
    const bound = Math.min(r.decode, r.tower);
    rows.push(`| ${name} | ${r.pool} | ${r.inFlight} | ${r.decode.toFixed(1)} | ${r.tower.toFixed(1)} | ${r.files.toFixed(1)} | ${((100 * r.files) / r.decode).toFixed(0)} % | ${((100 * r.files) / bound).toFixed(0)} % |`);
    console.error(`${name} done (1-minute load ${os.loadavg()[0]!.toFixed(1)})`);
  }
  console.log('| pool | libuv threads | decodes in flight | decode-only img/s | tower-only img/s | from files img/s | files / decode | files / min(decode, tower) |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(r);
}
