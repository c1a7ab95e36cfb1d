// The CUDA checks and a short GPU bench, for a GPU machine with neither Node's toolchain nor vitest nor
// internet: scripts/device-check.sh bundles this file (esbuild, one .mjs) with the production install
// and runs it there. Random weights of the real sizes throughout (no real CLIP weights can travel).
//   node device/gpu-check.mjs ASSETS_DIR OUT_DIR [--budget-s 330] [--smoke]
// --smoke: 512 flavors, 200 label lines, batch 4 and no L-14 in the vision bench (a run-through on a
// CPU-only machine, where the CUDA checks fail by design).
// Checks (each one a pass/fail row, like the tests' CUDA branches):
//   - sessions land on CUDA; ClipModel picks fp16 there by itself
//   - ViT-B-32 image (7 Kaggle images) and text (1,000 label lines) embeddings: CUDA fp32 vs CPU fp32
//     (cosine ≥ 0.99999) and CUDA fp16 vs CPU fp32 (cosine ≥ 0.9995)
//   - a MiniLM-shaped BERT (all-MiniLM-L6-v2's sizes, random weights): the same three ways
//   - the ONNX bank ranker on CUDA returns the native kernel's top-10 over 100,970 flavor embeddings
//   - the IoBinding ranker (bank bound once, in device memory) gives a hand-computed top-k and bottom-k on
//     CUDA, call after call on the one binding
// Bench: vision img/s at batch 64 fp32 vs fp16 (B-32, then L-14 while the budget lasts), text
// labels/s over all 100,970 flavors, one-query and 64-query top-10 ms, B-32 images/s from PNG files
// against the decode-only rate (device-check.sh sizes libuv's pool as the CLI does). Writes device-check.json and
// device-check.md to OUT_DIR; exits 1 when a check failed.
import fs from 'node:fs';
import path from 'node:path';
import { ClipModel } from '../../src/clip/model.js';
import { installRandomClip } from '../../src/models/install-local.js';
import { gaussianArray } from '../../src/clip/random-checkpoint.js';
import { buildBertSentenceGraph, type BertConfig } from '../../models/graph/bert.js';
import type { SafeTensor, SafetensorsFile } from '../../src/models/safetensors.js';
import { MiniLMTokenizer } from '../../src/text/minilm-tokenizer.js';
import { Session, availableProviders, ortVersion, tensor, type ExecutionProvider } from '../../src/runtime/session.js';
import type { Precision } from '../../src/runtime/precision.js';
import { cudaReadiness } from '../../src/gpu/readiness.js';
import { OnnxBankRanker, openBankRanker } from '../../src/rank/bank-ranker.js';
import { defaultDecodeConcurrency, loadBatches } from '../../src/image/batch-loader.js';
import { threadpoolSizeVariable } from '../../src/config.js';

const [assetsDir, outDir] = process.argv.slice(2);
if (!assetsDir || !outDir) throw new Error('usage: gpu-check.mjs ASSETS_DIR OUT_DIR [--budget-s N]');
const budgetArg = process.argv.indexOf('--budget-s');
const BUDGET_S = budgetArg > 0 ? Number(process.argv[budgetArg + 1]) : 330;
const SMOKE = process.argv.includes('--smoke');
const started = performance.now();
const elapsed = () => (performance.now() - started) / 1000;
process.env.IMG2PROMPT_HOME ??= path.join(path.dirname(outDir), 'device-home');

interface Check {
  name: string;
  pass: boolean;
  detail: string;
}
const checks: Check[] = [];
const bench: Record<string, number | string> = {};
const notes: string[] = [];

function check(name: string, pass: boolean, detail: string): void {
  checks.push({ name, pass, detail });
  console.log(`${pass ? 'PASS' : 'FAIL'} ${name}: ${detail}`);
}

function rowCosines(a: Float32Array, b: Float32Array, dim: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < a.length / dim; r++) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let j = 0; j < dim; j++) {
      dot += a[r * dim + j]! * b[r * dim + j]!;
      na += a[r * dim + j]! ** 2;
      nb += b[r * dim + j]! ** 2;
    }
    out.push(dot / Math.sqrt(na * nb));
  }
  return out;
}

function maxAbs(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Compares one embedding set against the CPU fp32 one: min cosine against its bound, and the largest difference. */
function compare(name: string, got: Float32Array, want: Float32Array, dim: number, minCos: number): void {
  const cos = Math.min(...rowCosines(got, want, dim));
  check(name, got.length === want.length && cos >= minCos, `min cosine ${cos.toFixed(7)} (≥ ${minCos}), max |diff| ${maxAbs(got, want).toExponential(2)}, ${got.length / dim} rows`);
}

const lines = (file: string, n = Infinity) => fs.readFileSync(path.join(assetsDir, file), 'utf8').split('\n').map((l) => l.trim()).filter(Boolean).slice(0, n);
const imageDir = path.join(assetsDir, 'images');
const images = fs.readdirSync(imageDir).sort().map((f) => path.join(imageDir, f));
const parityTexts = SMOKE ? lines('artists.txt', 200) : [...lines('mediums.txt', 95), ...lines('artists.txt', 405), ...lines('flavors.txt', 500)];
const flavors = lines('flavors.txt', SMOKE ? 512 : Infinity);
const cpu: ExecutionProvider[] = ['cpu'];
const cuda: ExecutionProvider[] = ['cuda', 'cpu'];

async function openClip(name: string, providers: ExecutionProvider[], precision?: Precision, towers?: ('vision' | 'text')[]): Promise<ClipModel> {
  return ClipModel.open(name, { sessionOptions: { providers }, precision, towers });
}

async function installRandom(arch: string, name: string): Promise<void> {
  const t0 = performance.now();
  await installRandomClip({ arch, seed: 3, name, layout: 'open_clip', tokenizerDir: path.join(assetsDir, 'clip-tokenizer') });
  notes.push(`${arch} random weights written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

/** Images per second of the vision tower alone at `batch` (random pixels; a few warm-up runs first). */
async function visionRate(model: ClipModel, batch: number, seconds = 2): Promise<number> {
  const n = model.imageSize;
  const pixels = gaussianArray(1, 'pixels', batch * 3 * n * n, 1);
  for (let i = 0; i < (SMOKE ? 1 : 3); i++) await model.encodePixels(pixels, batch);
  let runs = 0;
  const t0 = performance.now();
  while (runs < (SMOKE ? 1 : 5) || performance.now() - t0 < seconds * 1000) {
    await model.encodePixels(pixels, batch);
    runs++;
  }
  return (runs * batch) / ((performance.now() - t0) / 1000);
}

async function clipChecks(): Promise<Float32Array<ArrayBufferLike>> {
  await installRandom('ViT-B-32', 'b32');
  const ref = await openClip('b32', cpu, 'fp32');
  const refImages = (await ref.encodeImages(images)).embeds;
  const refTexts = await ref.encodeTexts(parityTexts);
  ref.close();
  for (const precision of ['fp32', 'fp16'] as const) {
    const model = await openClip('b32', cuda, precision);
    check(`B-32 ${precision} session on CUDA`, model.provider === 'cuda', `provider ${model.provider}, precision ${model.precision}`);
    const minCos = precision === 'fp32' ? 0.99999 : 0.9995;
    compare(`B-32 ${precision} CUDA vs fp32 CPU, 7 Kaggle images`, (await model.encodeImages(images)).embeds, refImages, model.dim, minCos);
    compare(`B-32 ${precision} CUDA vs fp32 CPU, ${parityTexts.length} label lines`, await model.encodeTexts(parityTexts), refTexts, model.dim, minCos);
    model.close();
  }
  const auto = await openClip('b32', cuda);
  check('ClipModel picks fp16 by itself on CUDA', auto.provider === 'cuda' && auto.precision === 'fp16', `provider ${auto.provider}, precision ${auto.precision}`);
  // Text labels/s over the whole flavor bank, dynamic padding, batch 64 (the interrogator's setting).
  let bank: Float32Array<ArrayBufferLike> = new Float32Array(0);
  for (const precision of ['fp32', 'fp16'] as const) {
    const model = precision === 'fp16' ? auto : await openClip('b32', cuda, 'fp32', ['text']);
    await model.encodeTexts(flavors.slice(0, SMOKE ? 64 : 512)); // warm-up
    const t0 = performance.now();
    const emb = await model.encodeTexts(flavors);
    bench[`B-32 text ${precision} labels/s (${flavors.length} flavors)`] = Math.round(flavors.length / ((performance.now() - t0) / 1000));
    if (precision === 'fp32') bank = emb;
    model.close();
  }
  return bank;
}

/** A MiniLM-shaped BERT with random weights (the real ones are 90 MB, too big to travel). */
function randomMiniLM(): { cfg: BertConfig; st: SafetensorsFile } {
  const cfg: BertConfig = { hiddenSize: 384, heads: 12, layers: 6, intermediateSize: 1536, layerNormEps: 1e-12, maxPositions: 512, vocabSize: 30522, typeVocabSize: 2 };
  const tensors = new Map<string, SafeTensor>();
  const add = (name: string, shape: number[], std: number, mean = 0) => {
    const data = gaussianArray(5, name, shape.reduce((a, b) => a * b, 1), std, mean);
    tensors.set(name, { name, dtype: 'F32', shape, bytes: new Uint8Array(data.buffer), data });
  };
  const H = cfg.hiddenSize;
  add('embeddings.word_embeddings.weight', [cfg.vocabSize, H], 0.02);
  add('embeddings.position_embeddings.weight', [cfg.maxPositions, H], 0.02);
  add('embeddings.token_type_embeddings.weight', [cfg.typeVocabSize, H], 0.02);
  const ln = (p: string) => {
    add(`${p}.weight`, [H], 0.05, 1);
    add(`${p}.bias`, [H], 0.02);
  };
  ln('embeddings.LayerNorm');
  for (let l = 0; l < cfg.layers; l++) {
    const p = `encoder.layer.${l}.`;
    for (const [name, out, inF] of [['attention.self.query', H, H], ['attention.self.key', H, H], ['attention.self.value', H, H], ['attention.output.dense', H, H], ['intermediate.dense', cfg.intermediateSize, H], ['output.dense', H, cfg.intermediateSize]] as const) {
      add(`${p}${name}.weight`, [out, inF], 0.02 * Math.sqrt(384 / inF) * 2);
      add(`${p}${name}.bias`, [out], 0.02);
    }
    ln(`${p}attention.output.LayerNorm`);
    ln(`${p}output.LayerNorm`);
  }
  return { cfg, st: { path: '<random MiniLM>', metadata: {}, tensors } };
}

async function miniLMChecks(): Promise<void> {
  const { cfg, st } = randomMiniLM();
  const tokenizer = await MiniLMTokenizer.load(path.join(assetsDir, 'minilm-tokenizer'));
  const texts = [...lines('kaggle-prompts.txt'), ...parityTexts];
  const embed = async (precision: Precision, providers: ExecutionProvider[]) => {
    const session = await Session.open(buildBertSentenceGraph(cfg, st, precision), { providers });
    const out = new Float32Array(texts.length * cfg.hiddenSize);
    for (let start = 0; start < texts.length; start += 64) {
      const seqs = texts.slice(start, start + 64).map((t) => tokenizer.encode(t));
      const len = Math.max(...seqs.map((s) => s.length));
      const ids = new BigInt64Array(seqs.length * len);
      const mask = new BigInt64Array(seqs.length * len);
      seqs.forEach((s, r) => s.forEach((id, j) => {
        ids[r * len + j] = BigInt(id);
        mask[r * len + j] = 1n;
      }));
      const dims = [seqs.length, len];
      const res = await session.run({ input_ids: tensor('int64', ids, dims), attention_mask: tensor('int64', mask, dims) }, { outputNames: ['sentence_embedding'] });
      out.set(res.sentence_embedding!.data as Float32Array, start * cfg.hiddenSize);
    }
    const provider = session.provider;
    session.close();
    return { out, provider };
  };
  const ref = await embed('fp32', cpu);
  for (const precision of ['fp32', 'fp16'] as const) {
    const got = await embed(precision, cuda);
    check(`MiniLM-shaped ${precision} session on CUDA`, got.provider === 'cuda', `provider ${got.provider}`);
    compare(`MiniLM-shaped ${precision} CUDA vs fp32 CPU, 7 Kaggle prompts + ${parityTexts.length} label lines`, got.out, ref.out, cfg.hiddenSize, precision === 'fp32' ? 0.99999 : 0.9995);
  }
}

async function rankerChecks(bankData: Float32Array): Promise<void> {
  const dim = 512;
  const rows = bankData.length / dim;
  const bank = { data: bankData, dims: [rows, dim] as [number, number] };
  const queries = gaussianArray(9, 'queries', 64 * dim, 1);
  for (let r = 0; r < 64; r++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += queries[r * dim + j]! ** 2;
    for (let j = 0; j < dim; j++) queries[r * dim + j]! /= Math.sqrt(s);
  }
  const q = { data: queries, dims: [64, dim] as [number, number] };
  const gpu = await openBankRanker(bank, cuda);
  const native = await openBankRanker(bank, cpu);
  check('bank ranker runs on CUDA', gpu.engine === 'cuda', `engine ${gpu.engine}`);
  const a = await gpu.rank(q, 10);
  const b = await native.rank(q, 10);
  let sameIndices = 0;
  let scoreDiff = 0;
  for (let i = 0; i < a.indices.length; i++) {
    if (a.indices[i] === b.indices[i]) sameIndices++;
    scoreDiff = Math.max(scoreDiff, Math.abs(a.scores[i]! - b.scores[i]!));
  }
  // Equal indices, or (for exact ties) equal scores at the positions that differ.
  check(`GPU bank ranker top-10 = native kernel's (64 queries × ${rows} rows)`, sameIndices === a.indices.length || scoreDiff < 1e-5, `${sameIndices}/${a.indices.length} indices equal, max score diff ${scoreDiff.toExponential(2)}`);
  for (const [label, n] of [['1 query', 1], ['64 queries', 64]] as const) {
    const sub = { data: queries.subarray(0, n * dim), dims: [n, dim] as [number, number] };
    for (const ranker of [gpu, native]) {
      const engine = ranker === native ? 'native kernel' : `ONNX graph on ${ranker.engine}`;
      for (let i = 0; i < 5; i++) await ranker.rank(sub, 10);
      const times: number[] = [];
      for (let i = 0; i < 50; i++) {
        const t0 = performance.now();
        await ranker.rank(sub, 10);
        times.push(performance.now() - t0);
      }
      times.sort((x, y) => x - y);
      bench[`top-10 over ${rows} × ${dim}, ${label}, ${engine} (median ms)`] = Number(times[25]!.toFixed(3));
    }
  }
  gpu.close();
  native.close();
}

/** The bound-bank ranker on CUDA against top-k worked out by hand (as test/rank-bank-ranker.test.ts on the CPU). */
async function boundRankerCheck(): Promise<void> {
  const bank = { data: Float32Array.of(1, 0, 0, 0, 1, 0, 0.6, 0.8, 0, 0, 0.6, 0.8, -1, 0, 0), dims: [5, 3] as [number, number] };
  const q = { data: Float32Array.of(0.8, 0.6, 0, -0.6, 0, 0.8), dims: [2, 3] as [number, number] };
  const ranker = await OnnxBankRanker.open(bank, cuda);
  const got: string[] = [];
  for (let round = 0; round < 3; round++) {
    got.push(Array.from((await ranker.rank(q, 3)).indices).join(','), Array.from((await ranker.rank(q, 3, { least: true })).indices).join(','));
  }
  const want = ['2,0,1,3,4,1', '4,3,1,0,2,1'];
  check('IoBinding bank ranker on CUDA: hand-computed top-3 and bottom-3, 3 rounds on one binding', ranker.engine === 'cuda' && got.every((g, i) => g === want[i % 2]),
    `engine ${ranker.engine}; got ${got.slice(0, 2).join(' / ')}`);
  ranker.close();
}

/** B-32 (fp16 on CUDA) images/s from PNG files against decode-only (decode + preprocessing, no tower). */
async function decodeBench(): Promise<void> {
  const files = Array.from({ length: SMOKE ? 16 : 448 }, (_, i) => images[i % images.length]!);
  const model = await openClip('b32', cuda, undefined, ['vision']);
  const batch = SMOKE ? 4 : 64;
  const inFlight = defaultDecodeConcurrency();
  const rate = async (work: () => Promise<unknown>) => {
    await work(); // warm-up
    const t0 = performance.now();
    await work();
    return files.length / ((performance.now() - t0) / 1000);
  };
  const decode = await rate(async () => {
    for await (const b of loadBatches(files, { ...model.imageTransform, batchSize: batch, concurrency: inFlight })) void b;
  });
  const fromFiles = await rate(() => model.encodeImages(files, { batchSize: batch, concurrency: inFlight }));
  const where = `${model.provider} ${model.precision}, libuv pool ${threadpoolSizeVariable()}, ${inFlight} decodes in flight`;
  bench[`B-32 decode-only img/s (${files.length} PNG files, ${where})`] = Math.round(decode);
  bench[`B-32 from PNG files img/s (same)`] = Math.round(fromFiles);
  bench['from files / decode-only'] = `${((100 * fromFiles) / decode).toFixed(0)} %`;
  model.close();
}

async function visionBench(): Promise<void> {
  for (const [arch, name] of [['ViT-B-32', 'b32'], ['ViT-L-14', 'l14']] as const) {
    // L-14's random weights and graphs take a minute or two to make: only when the budget allows.
    if (arch === 'ViT-L-14') {
      if (SMOKE || elapsed() > BUDGET_S * 0.45) {
        notes.push(`ViT-L-14 skipped: ${elapsed().toFixed(0)} s of the ${BUDGET_S} s budget used`);
        return;
      }
      await installRandom(arch, name);
    }
    for (const precision of ['fp32', 'fp16'] as const) {
      const model = await openClip(name, cuda, precision, ['vision']);
      const batch = SMOKE ? 4 : 64;
      bench[`${arch} vision ${precision} img/s (batch ${batch}, ${model.provider})`] = Math.round(await visionRate(model, batch, SMOKE ? 0 : 2));
      model.close();
    }
  }
}

async function main(): Promise<void> {
  fs.mkdirSync(outDir, { recursive: true });
  const readiness = cudaReadiness();
  console.log(`ORT ${ortVersion()}, providers ${availableProviders().join(', ')}; CUDA usable: ${readiness.usable ? 'yes' : readiness.problems.join('; ')}`);
  check('cudaReadiness() says CUDA is usable', readiness.usable, readiness.usable ? `devices ${readiness.devices.join(', ')}` : readiness.problems.join('; '));
  const steps: [string, () => Promise<unknown>][] = [];
  let bank: Float32Array | undefined;
  steps.push(['CLIP checks', async () => (bank = await clipChecks())]);
  steps.push(['MiniLM checks', miniLMChecks]);
  steps.push(['bank ranker', async () => bank && rankerChecks(bank)]);
  steps.push(['bound ranker', boundRankerCheck]);
  steps.push(['decode bench', decodeBench]);
  steps.push(['vision bench', visionBench]);
  for (const [name, step] of steps) {
    const t0 = performance.now();
    try {
      await step();
    } catch (err) {
      check(`${name} ran`, false, (err as Error).stack ?? String(err));
    }
    notes.push(`${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const result = { ort: ortVersion(), readiness, checks, bench, notes, seconds: Number(elapsed().toFixed(1)) };
  fs.writeFileSync(path.join(outDir, 'device-check.json'), JSON.stringify(result, null, 2) + '\n');
  const md = [
    `# Device check (${new Date().toISOString()}, ${result.seconds} s)`,
    '',
    '| check | result | detail |',
    '|---|---|---|',
    ...checks.map((c) => `| ${c.name} | ${c.pass ? 'pass' : '**FAIL**'} | ${c.detail.split('\n')[0]} |`),
    '',
    '| bench (random weights of the real sizes) | value |',
    '|---|---:|',
    ...Object.entries(bench).map(([k, v]) => `| ${k} | ${v} |`),
    '',
    ...notes.map((n) => `- ${n}`),
    '',
  ].join('\n');
  fs.writeFileSync(path.join(outDir, 'device-check.md'), md);
  console.log(md);
  process.exitCode = checks.every((c) => c.pass) ? 0 : 1;
}

await main();
