// CLIP speed on this machine with random weights of the real sizes (same FLOPs and bytes as the trained
// ViT-B/32 and ViT-L/14): images/s split into decode (sharp), preprocess (native transform) and
// inference (our Session), the pipelined encodeImages wall time, transformers.js running the very same
// vision.onnx, the FLOP floor from this machine's measured fp32 GEMM rate, and text-tower labels/s with
// dynamic against fixed-77 padding, beside transformers.js running the very same text.onnx on the same
// token ids. Prints markdown tables for bench/RESULTS.md.
//   node --import tsx bench/clip.bench.ts [--arch ViT-B-32,ViT-L-14] [--quick]
//     [--batches 1,8,32] [--labels 1024] [--images N] [--budget-ms 3000]
// Env: BENCH_THREADS (2); BENCH_PARTS (vision,text: which towers to measure; "text" alone skips decode,
// preprocessing, the vision tower and the pipeline); IMG2PROMPT_HOME (default <repo>/.cache/bench-home,
// where the random models are installed once and kept); BENCH_TEXT_ROUNDS (5: alternating rounds of the
// text-tower timings).
import { parseArgs } from 'node:util';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Bench } from 'tinybench';
import { ClipModel } from '../src/clip/model.js';
import { installRandomClip } from '../src/models/install-local.js';
import { modelDir, modelHome } from '../src/models/cache.js';
import { decodeImage, type DecodedImage } from '../src/image/decode.js';
import { ClipTransform } from '../src/image/clip-transform.js';
import { visionTokenCount, type ClipConfig } from '../src/clip/config.js';
import { architectureConfig } from '../src/clip/architectures.js';
import { describeMachine } from './machine.js';
import { maxAbsDiff } from '../test/reference/compare.js';
import { measureGemmRate } from './gemm.js';
import { openTransformersPeer, openTransformersTextPeer, type TransformersPeer, type TransformersTextPeer } from './transformers-peer.js';

// Read lazily by modelHome(), so setting it here, before any model is touched, is enough.
process.env.IMG2PROMPT_HOME ??= path.resolve('.cache', 'bench-home');

const { values: args } = parseArgs({
  options: {
    arch: { type: 'string' },
    quick: { type: 'boolean', default: false },
    batches: { type: 'string' },
    labels: { type: 'string' },
    images: { type: 'string' },
    'budget-ms': { type: 'string' },
  },
});
const QUICK = args.quick;
const ARCHS = (args.arch ?? (QUICK ? 'ViT-B-32' : 'ViT-B-32,ViT-L-14')).split(',').map((s) => s.trim());
const THREADS = Number(process.env.BENCH_THREADS ?? 2);
const PART_NAMES = ['vision', 'text'] as const;
type Part = (typeof PART_NAMES)[number];
const PARTS = new Set<Part>(
  (process.env.BENCH_PARTS ?? PART_NAMES.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      if (!(PART_NAMES as readonly string[]).includes(s)) throw new Error(`BENCH_PARTS: unknown part "${s}" (use ${PART_NAMES.join(', ')})`);
      return s as Part;
    }),
);
if (PARTS.size === 0) throw new Error(`BENCH_PARTS names no part (use ${PART_NAMES.join(', ')})`);
const VISION = PARTS.has('vision');
const TEXT = PARTS.has('text');
/** Time per measured task; a task whose single run is longer runs once. */
const BUDGET_MS = Number(args['budget-ms'] ?? (QUICK ? 800 : 3000));
/** Warm-up of freshly opened sessions, run in turn before their first measurement. */
const SETTLE_MS = QUICK ? 1500 : 3000;
const TEXT_BATCH = 64;
/** Alternating rounds of the text-tower timings (ours, then transformers.js), median reported. */
const TEXT_ROUNDS = Number(process.env.BENCH_TEXT_ROUNDS ?? 5);
const LABELS = Number(args.labels ?? (QUICK ? 256 : 1024));
const ASSETS = path.resolve('..', 'shared', 'assets');
const IMAGE_DIR = path.join(ASSETS, 'eval', 'kaggle-sample', 'images');
const FLAVORS = path.join(ASSETS, 'labels', 'flavors.txt');
const TOKENIZER_DIR = path.join(ASSETS, 'tokenizers', 'clip', 'hf-openai-clip-vit-large-patch14');
/** The batch loader's default concurrency (see src/image/batch-loader.ts), so stage numbers add up to the pipeline's. */
const LOADER_CONCURRENCY = Math.max(1, Math.min(4, os.availableParallelism()));

/**
 * Per architecture: batch sizes, and images/batch size of the pipelined run. A heavy model (ViT-L/14 is
 * ~160 GFLOP an image, seconds each on 2 cores) runs its big batches once and pipelines fewer images.
 */
function planFor(arch: string): { batches: number[]; pipelineImages: number; pipelineBatch: number } {
  const heavy = visionFlopsPerImage(architectureConfig(arch)) > 50e9;
  const batches = args.batches ? args.batches.split(',').map(Number) : QUICK ? (heavy ? [1] : [1, 8]) : [1, 8, 32];
  const pipelineImages = Number(args.images ?? (QUICK ? (heavy ? 4 : 16) : heavy ? 16 : 64));
  const pipelineBatch = Math.min(pipelineImages, heavy || QUICK ? 8 : 16);
  return { batches, pipelineImages, pipelineBatch };
}

// ---------------------------------------------------------------------------------------------------
// FLOP counts (multiply-add = 2 FLOPs). Only the matrix products: layer norms, softmax, GELU and the
// residual adds are a few percent at these widths.
// ---------------------------------------------------------------------------------------------------

/** One pre-LN transformer layer over `t` tokens of width `w`, MLP hidden `i`. */
function layerFlops(t: number, w: number, i: number): number {
  const projections = 4 * t * w * w; // Q, K, V and output
  const attention = 2 * t * t * w; // QKᵀ and attention · V
  const mlp = 2 * t * w * i;
  return 2 * (projections + attention + mlp);
}

function visionFlopsPerImage(config: ClipConfig): number {
  const v = config.vision;
  const t = visionTokenCount(v);
  const patchEmbed = 2 * (t - 1) * 3 * v.patchSize * v.patchSize * v.width;
  const projection = 2 * v.width * config.embedDim;
  return patchEmbed + v.layers * layerFlops(t, v.width, v.intermediate) + projection;
}

function textFlopsPerLabel(config: ClipConfig, seqLen: number): number {
  const t = config.text;
  return t.layers * layerFlops(seqLen, t.width, t.intermediate) + 2 * t.width * config.embedDim;
}

// ---------------------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------------------

interface Timing {
  /** Median milliseconds per call (the machine may be shared: load only ever slows a run down). */
  ms: number;
  runs: number;
  /** Share of the machine's CPU time other processes took while this was timed (NaN off Linux). */
  others: number;
}

/** Busy CPU seconds of the whole machine (Linux /proc/stat, steal included), this process's CPU seconds, wall seconds. */
interface CpuReading {
  busy: number;
  own: number;
  wall: number;
}

function readCpu(): CpuReading {
  const own = process.cpuUsage();
  let busy = NaN;
  try {
    // cpu user nice system idle iowait irq softirq steal ...; USER_HZ is 100 on Linux.
    const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    busy = (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!) / 100;
  } catch {
    // not Linux: the contamination column stays empty
  }
  return { busy, own: (own.user + own.system) / 1e6, wall: performance.now() / 1000 };
}

/** CPU seconds others used and wall seconds elapsed between two readings. */
function foreignSince(from: CpuReading): { cpu: number; wall: number } {
  const to = readCpu();
  return { cpu: Math.max(0, to.busy - from.busy - (to.own - from.own)), wall: to.wall - from.wall };
}

const CORES = os.availableParallelism();

interface Sampled {
  samples: number[];
  foreign: { cpu: number; wall: number };
}

/** tinybench samples (ms) of `fn` for about `budgetMs`, at least one run, no warm-up. */
async function samplesOf(name: string, fn: () => Promise<unknown>, budgetMs: number): Promise<Sampled> {
  const bench = new Bench({ time: budgetMs, iterations: 1, warmup: false, retainSamples: true });
  // async: true, or tinybench calls a plain arrow once to see if it returns a promise and leaves that
  // call running, un-awaited, on top of the first timed one.
  bench.add(name, fn, { async: true });
  const from = readCpu();
  await bench.run();
  const foreign = foreignSince(from);
  const r = bench.tasks[0]!.result as { latency?: { samples?: readonly number[] }; error?: unknown };
  if (!r.latency?.samples) throw new Error(`${name} failed: ${String(r.error)}`);
  return { samples: [...r.latency.samples], foreign };
}

function timingOf(parts: Sampled[]): Timing {
  const s = parts.flatMap((p) => p.samples).sort((a, b) => a - b);
  const mid = s.length >> 1;
  const cpu = parts.reduce((t, p) => t + p.foreign.cpu, 0);
  const wall = parts.reduce((t, p) => t + p.foreign.wall, 0);
  return { ms: s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2, runs: s.length, others: cpu / (wall * CORES) };
}

/** A warm-up call pays off unless one call is expected to outlast the budget (the session is then already warm from a smaller batch). */
const wantsWarmup = (expectedMs: number | undefined, budgetMs: number) => expectedMs === undefined || expectedMs < budgetMs;

/** Times `fn` with tinybench for about `budgetMs` (at least one run), after a warm-up call when that is cheap. */
async function measure(name: string, fn: () => Promise<unknown>, expectedMs?: number, budgetMs = BUDGET_MS): Promise<Timing> {
  if (wantsWarmup(expectedMs, budgetMs)) await fn();
  return timingOf([await samplesOf(name, fn, budgetMs)]);
}

/**
 * Times competitors side by side: in three alternating rounds when calls are short, so a load change
 * on a shared machine hits every side alike; once each when a single call takes most of the budget.
 */
async function measureSideBySide(name: string, fns: (() => Promise<unknown>)[], expectedMs: (number | undefined)[] = []): Promise<Timing[]> {
  const long = expectedMs.some((e) => e !== undefined && e * 6 > BUDGET_MS);
  const rounds = long ? 1 : 3;
  if (expectedMs.every((e) => e === undefined)) {
    // Freshly opened sessions often run slower for their first seconds (pages faulted in, pools
    // settling), longer than one warm-up call covers: warm them in turn for a while.
    const until = performance.now() + SETTLE_MS;
    do for (const fn of fns) await fn();
    while (performance.now() < until);
  } else {
    for (const [i, fn] of fns.entries()) if (wantsWarmup(expectedMs[i], BUDGET_MS)) await fn();
  }
  return alternate(name, fns, rounds, BUDGET_MS / rounds);
}

/** `rounds` rounds, each timing every fn in turn for `budgetMs` (at least one run): no warm-up. */
async function alternate(name: string, fns: (() => Promise<unknown>)[], rounds: number, budgetMs: number): Promise<Timing[]> {
  const parts = fns.map(() => [] as Sampled[]);
  for (let r = 0; r < rounds; r++) {
    for (const [i, fn] of fns.entries()) parts[i]!.push(await samplesOf(`${name} #${i}`, fn, budgetMs));
  }
  return parts.map(timingOf);
}

const peerRoot = () => path.join(modelHome(), 'transformers-peer');

/** Opens a transformers.js peer; when it cannot run our graph the bench goes on without it, saying why. */
async function openPeer<T>(graph: string, open: () => Promise<T>, describe: (peer: T) => string): Promise<{ peer: T | undefined; note: string }> {
  try {
    const peer = await open();
    return { peer, note: describe(peer) };
  } catch (err) {
    const note = `transformers.js could not run our ${graph}: ${err instanceof Error ? err.message : String(err)}`;
    console.error(note);
    return { peer: undefined, note };
  }
}

/** Runs task(0..n-1) with at most `concurrency` in flight, as the batch loader does. */
async function inPool(n: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
}

/** Deterministic shuffle (mulberry32), so every run encodes the same labels. */
function seededSample<T>(items: readonly T[], n: number, seed: number): T[] {
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const a = items.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a.slice(0, n);
}

const fmt = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '–');
const perSecond = (items: number, ms: number) => (items * 1000) / ms;

async function openRandomClip(arch: string, towers: ('vision' | 'text')[]): Promise<ClipModel> {
  const name = `random-${arch.toLowerCase()}`;
  if (!existsSync(path.join(modelDir(name), 'manifest.json'))) {
    console.error(`installing random ${arch} into ${modelDir(name)} (once)...`);
    await installRandomClip({ arch, seed: 1, name, tokenizerDir: TOKENIZER_DIR });
  }
  return ClipModel.open(name, { towers, sessionOptions: { providers: ['cpu'], intraOpThreads: THREADS } });
}

// ---------------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------------

const started = performance.now();
const startCpu = readCpu();
const imageFiles = VISION ? readdirSync(IMAGE_DIR).filter((f) => f.endsWith('.png')).sort().map((f) => path.join(IMAGE_DIR, f)) : [];
const filesFor = (n: number) => Array.from({ length: n }, (_, i) => imageFiles[i % imageFiles.length]!);
const decoded: DecodedImage[] = await Promise.all(imageFiles.map((f) => decodeImage(f)));

console.error('measuring the fp32 GEMM rate...');
const gemmTimeMs = QUICK ? 1000 : 2000;
const gemmStart = await measureGemmRate({ size: 1024, threads: THREADS, timeMs: gemmTimeMs });

// Decode and preprocess are timed once for all models: the ViTs here all take 224² with OpenAI's mean/std.
const allBatches = VISION ? [...new Set(ARCHS.flatMap((a) => planFor(a).batches))].sort((a, b) => a - b) : [];
const transform = new ClipTransform({ size: 224 });
const stageRows: { batch: number; decode: Timing; preprocess: Timing }[] = [];
for (const b of allBatches) {
  console.error(`decode / preprocess, batch ${b}...`);
  const files = filesFor(b);
  const decode = await measure(`decode ${b}`, () => inPool(b, LOADER_CONCURRENCY, async (i) => void (await decodeImage(files[i]!))));
  const out = new Float32Array(b * transform.floatsPerImage);
  const preprocess = await measure(`preprocess ${b}`, () => inPool(b, LOADER_CONCURRENCY, (i) => transform.into(decoded[i % decoded.length]!, out, i)));
  stageRows.push({ batch: b, decode, preprocess });
}

interface InferenceRow {
  arch: string;
  batch: number;
  ours: Timing;
  peer: Timing | undefined;
}
interface PipelineRow {
  arch: string;
  images: number;
  batch: number;
  wallMs: number;
  inferenceMs: number;
  others: number;
}
interface TextRow {
  arch: string;
  labels: number;
  dynamicMs: number;
  dynamicFlops: number;
  meanPaddedLen: number;
  fixedPerLabelMs: number;
  fixedRuns: number;
  others: [number, number];
  /** transformers.js on the same text.onnx and token ids, timed the same way; absent when it could not run. */
  peer?: {
    dynamicMs: number;
    fixedPerLabelMs: number;
    fixedRuns: number;
    others: [number, number];
    /** Max |Δ| of its (normalised) text_embeds against ours on the same labels, dynamic and fixed padding. */
    maxDiff: [number, number];
    inputNames: readonly string[];
  };
}
const inferenceRows: InferenceRow[] = [];
const pipelineRows: PipelineRow[] = [];
const textRows: TextRow[] = [];
const gflopsPerImage = new Map<string, number>();
const textConfigs = new Map<string, ClipConfig>();
let peerNote = '';
let textPeerNote = '';
let preprocessRow: { ours: Timing; theirs: Timing; maxDiff: number; meanDiff: number } | undefined;

const flavors = readFileSync(FLAVORS, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean);
const labels = seededSample(flavors, LABELS, 2024);

for (const arch of ARCHS) {
  const plan = planFor(arch);
  console.error(`${arch}: opening (random weights)...`);
  const clip = await openRandomClip(arch, [...(VISION ? (['vision'] as const) : []), ...(TEXT ? (['text'] as const) : [])]);
  gflopsPerImage.set(arch, visionFlopsPerImage(clip.config) / 1e9);
  textConfigs.set(arch, clip.config);

  if (VISION) {
    let peer: TransformersPeer | undefined;
    ({ peer, note: peerNote } = await openPeer(
      'vision.onnx',
      () => openTransformersPeer({ root: peerRoot(), name: clip.name, config: clip.config, visionOnnx: clip.files.vision, threads: THREADS }),
      (p) => `transformers.js ${p.version} (onnxruntime-node), CLIPVisionModelWithProjection on the same vision.onnx, intraOpNumThreads ${THREADS}`,
    ));

    const archTransform = new ClipTransform({ size: clip.imageSize, mean: clip.config.imageMean, std: clip.config.imageStd });
    // Both runtimes must compute the same thing, or the comparison means nothing.
    const maxB = Math.max(...plan.batches);
    const pixels = new Float32Array(maxB * archTransform.floatsPerImage);
    await inPool(maxB, LOADER_CONCURRENCY, (i) => archTransform.into(decoded[i % decoded.length]!, pixels, i));
    if (peer) {
      const a = await clip.encodePixels(pixels, 1);
      const d = maxAbsDiff(a, await peer.forward(pixels, 1));
      if (!(d < 1e-4)) throw new Error(`${arch}: transformers.js and our Session disagree on image_embeds (max |Δ| ${d})`);
    }

    let oursPerImage: number | undefined;
    let peerPerImage: number | undefined;
    for (const b of plan.batches) {
      console.error(`${arch}: inference, batch ${b}...`);
      const fns: (() => Promise<unknown>)[] = [() => clip.encodePixels(pixels, b)];
      if (peer) {
        const p = peer;
        fns.push(() => p.forward(pixels, b));
      }
      const [ours, theirs] = await measureSideBySide(`${arch} batch ${b}`, fns, [oursPerImage && oursPerImage * b, peerPerImage && peerPerImage * b]);
      oursPerImage = ours!.ms / b;
      if (theirs) peerPerImage = theirs.ms / b;
      inferenceRows.push({ arch, batch: b, ours: ours!, peer: theirs });
    }

    if (peer && !preprocessRow) {
      console.error('preprocessing: ours against transformers.js...');
      const one = new Float32Array(archTransform.floatsPerImage);
      let k = 0;
      let j = 0;
      const p = peer;
      const [ours, theirs] = await measureSideBySide('preprocess', [
        () => archTransform.into(decoded[k++ % decoded.length]!, one, 0),
        () => p.preprocess(decoded[j++ % decoded.length]!),
      ]);
      let maxDiff = 0;
      let sum = 0;
      for (let i = 0; i < decoded.length; i++) {
        const t = await peer.preprocess(decoded[i]!);
        await archTransform.into(decoded[i]!, one, 0);
        for (let x = 0; x < one.length; x++) {
          const d = Math.abs(one[x]! - t[x]!);
          maxDiff = Math.max(maxDiff, d);
          sum += d;
        }
      }
      preprocessRow = { ours: ours!, theirs: theirs!, maxDiff, meanDiff: sum / (decoded.length * archTransform.floatsPerImage) };
    }
    await peer?.dispose();

    console.error(`${arch}: pipelined encodeImages, ${plan.pipelineImages} images...`);
    const files = filesFor(plan.pipelineImages);
    let inferenceMs = 0;
    const wall = await measure(
      `pipeline ${arch}`,
      async () => {
        const r = await clip.encodeImages(files, { batchSize: plan.pipelineBatch });
        inferenceMs = r.inferenceSeconds * 1000;
      },
      Infinity, // the session is warm; one pass of many images is its own steady state
      0,
    );
    pipelineRows.push({ arch, images: plan.pipelineImages, batch: plan.pipelineBatch, wallMs: wall.ms, inferenceMs, others: wall.others });
  }

  if (TEXT) {
    console.error(`${arch}: text, ${labels.length} labels...`);
    // Padded lengths exactly as encodeTexts batches them: sorted by token count, each batch to its longest.
    const lens = labels.map((l) => clip.countTokens(l)).sort((a, b) => a - b);
    let dynamicFlops = 0;
    let paddedTokens = 0;
    for (let s = 0; s < lens.length; s += TEXT_BATCH) {
      const rows = lens.slice(s, s + TEXT_BATCH);
      const len = rows[rows.length - 1]!;
      dynamicFlops += rows.length * textFlopsPerLabel(clip.config, len);
      paddedTokens += rows.length * len;
    }

    let textPeer: TransformersTextPeer | undefined;
    ({ peer: textPeer, note: textPeerNote } = await openPeer(
      'text.onnx',
      () => openTransformersTextPeer({ root: peerRoot(), name: clip.name, config: clip.config, textOnnx: clip.files.text, tokenizer: clip.tokenizer!, threads: THREADS }),
      (p) =>
        `transformers.js ${p.version} (onnxruntime-node), CLIPTextModelWithProjection on the same text.onnx (inputs: ${p.inputNames.join(', ')}), fed our tokenizer's ids padded as encodeTexts pads them, intraOpNumThreads ${THREADS}`,
    ));
    const peerMaxDiff: [number, number] = [NaN, NaN];
    if (textPeer) {
      // Both runtimes must compute the same thing; one batch in each padding mode (also warms both sides).
      const sample = labels.slice(0, TEXT_BATCH);
      for (const [k, padding] of (['dynamic', 'fixed'] as const).entries()) {
        const a = await clip.encodeTexts(sample, { batchSize: TEXT_BATCH, padding });
        const d = maxAbsDiff(a, await textPeer.encodeTexts(sample, { batchSize: TEXT_BATCH, padding }));
        peerMaxDiff[k] = d;
        console.error(`${arch}: text_embeds, transformers.js against ours, ${padding} padding, ${sample.length} labels: max |Δ| ${d.toExponential(2)}`);
        if (!(d < 1e-4)) throw new Error(`${arch}: transformers.js and our Session disagree on text_embeds with ${padding} padding (max |Δ| ${d})`);
      }
    }

    // Ours and transformers.js timed in alternating rounds (one dynamic pass over the whole sample, then
    // one fixed-77 batch, per round and side), so a change of load on the machine hits both alike; the
    // median over the rounds is reported.
    await clip.encodeTexts(labels.slice(0, TEXT_BATCH), { batchSize: TEXT_BATCH }); // warm-up
    const p = textPeer;
    if (p) await p.encodeTexts(labels.slice(0, TEXT_BATCH), { batchSize: TEXT_BATCH, padding: 'dynamic' }); // warm-up
    const dynamicFns = [() => clip.encodeTexts(labels, { batchSize: TEXT_BATCH, padding: 'dynamic' })];
    if (p) dynamicFns.push(() => p.encodeTexts(labels, { batchSize: TEXT_BATCH, padding: 'dynamic' }));
    const [dynamic, peerDynamic] = (await alternate(`text dynamic ${arch}`, dynamicFns, TEXT_ROUNDS, 0)) as [Timing, Timing | undefined];
    // A fixed-77 batch costs the same whatever its labels, so a few batches give the whole set's rate.
    const chunks = Math.ceil(labels.length / TEXT_BATCH);
    const chunk = (c: number) => labels.slice((c % chunks) * TEXT_BATCH, (c % chunks) * TEXT_BATCH + TEXT_BATCH);
    let c = 0;
    let pc = 0;
    const fixedFns = [() => clip.encodeTexts(chunk(c++), { batchSize: TEXT_BATCH, padding: 'fixed' })];
    if (p) fixedFns.push(() => p.encodeTexts(chunk(pc++), { batchSize: TEXT_BATCH, padding: 'fixed' }));
    const [fixed, peerFixed] = (await alternate(`text fixed ${arch}`, fixedFns, TEXT_ROUNDS, 0)) as [Timing, Timing | undefined];
    const fixedBatch = Math.min(TEXT_BATCH, labels.length);
    textRows.push({
      arch,
      labels: labels.length,
      dynamicMs: dynamic.ms,
      dynamicFlops,
      meanPaddedLen: paddedTokens / lens.length,
      fixedPerLabelMs: fixed.ms / fixedBatch,
      fixedRuns: fixed.runs,
      others: [dynamic.others, fixed.others],
      ...(textPeer && peerDynamic && peerFixed
        ? {
            peer: {
              dynamicMs: peerDynamic.ms,
              fixedPerLabelMs: peerFixed.ms / fixedBatch,
              fixedRuns: peerFixed.runs,
              others: [peerDynamic.others, peerFixed.others] as [number, number],
              maxDiff: peerMaxDiff,
              inputNames: textPeer.inputNames,
            },
          }
        : {}),
    });
    await textPeer?.dispose();
  }
  clip.close();
}

// ---------------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------------

// Measured again at the end: on a busy machine the two differ, and the faster one is the machine's.
console.error('measuring the fp32 GEMM rate again...');
const gemmEnd = await measureGemmRate({ size: 1024, threads: THREADS, timeMs: gemmTimeMs });
const gemm = gemmEnd.gflops > gemmStart.gflops ? gemmEnd : gemmStart;
const floorImagesPerSecond = (arch: string) => gemm.gflops / gflopsPerImage.get(arch)!;
const runForeign = foreignSince(startCpu);
const pct = (share: number) => (Number.isFinite(share) ? `${Math.round(100 * share)}%` : '–');
console.log(`machine: ${describeMachine()}; intra-op threads ${THREADS}`);
console.log(
  `fp32 GEMM (MatMul ${gemm.m}³ through our Session, ${gemm.threads} threads): ${fmt(gemm.gflops)} GFLOP/s (start ${fmt(gemmStart.gflops)}, end ${fmt(gemmEnd.gflops)}; the floors use the faster)`,
);
if (VISION) console.log(`peer (vision): ${peerNote}`);
if (TEXT) console.log(`peer (text): ${textPeerNote}`);
console.log(
  `other processes took ${pct(runForeign.cpu / (runForeign.wall * CORES))} of the ${CORES} CPUs during this run ("others" columns: during that measurement; clean numbers need ~0%)`,
);
console.log(
  VISION
    ? `random weights of the real sizes; ${imageFiles.length} Kaggle PNGs (512×512) repeated to fill batches; decode/preprocess with ${LOADER_CONCURRENCY} in flight (the batch loader's default)`
    : `random weights of the real sizes; parts: ${[...PARTS].join(', ')}`,
);
if (VISION) {
  console.log();
  console.log('| batch | decode img/s (sharp) | preprocess img/s (native) |');
  console.log('|---:|---:|---:|');
  for (const r of stageRows) console.log(`| ${r.batch} | ${fmt(perSecond(r.batch, r.decode.ms))} | ${fmt(perSecond(r.batch, r.preprocess.ms))} |`);
  console.log();
  console.log('| model | GFLOP/img | batch | ours img/s | transformers.js img/s | ours / tjs | floor img/s | ours / floor | decode+pre+infer in series img/s | others (ours / tjs) |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of inferenceRows) {
    const ours = perSecond(r.batch, r.ours.ms);
    const theirs = r.peer ? perSecond(r.batch, r.peer.ms) : NaN;
    const floor = floorImagesPerSecond(r.arch);
    const stage = stageRows.find((s) => s.batch === r.batch)!;
    const serialMs = stage.decode.ms + stage.preprocess.ms + r.ours.ms;
    console.log(
      `| ${r.arch} | ${fmt(gflopsPerImage.get(r.arch)!)} | ${r.batch} | ${fmt(ours, 2)} | ${fmt(theirs, 2)} | ${fmt(ours / theirs, 3)} | ${fmt(floor, 2)} | ${fmt(ours / floor, 2)} | ${fmt(perSecond(r.batch, serialMs), 2)} | ${pct(r.ours.others)} / ${pct(r.peer?.others ?? NaN)} |`,
    );
  }
  console.log();
  console.log('| model | images | batch | encodeImages wall s | img/s (whole pipeline) | inference s | inference share of wall | others |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of pipelineRows) {
    console.log(
      `| ${r.arch} | ${r.images} | ${r.batch} | ${fmt(r.wallMs / 1000, 2)} | ${fmt(perSecond(r.images, r.wallMs), 2)} | ${fmt(r.inferenceMs / 1000, 2)} | ${fmt((100 * r.inferenceMs) / r.wallMs, 0)}% | ${pct(r.others)} |`,
    );
  }
  if (preprocessRow) {
    const p = preprocessRow;
    console.log();
    console.log('| preprocessing one decoded 512² image → 224² | ms/img | img/s |');
    console.log('|---|---:|---:|');
    console.log(`| ours (native, Pillow-exact bicubic) | ${fmt(p.ours.ms, 2)} | ${fmt(perSecond(1, p.ours.ms))} |`);
    console.log(`| transformers.js CLIPImageProcessor | ${fmt(p.theirs.ms, 2)} | ${fmt(perSecond(1, p.theirs.ms))} |`);
    console.log(`ours / transformers.js speed: ${fmt(p.theirs.ms / p.ours.ms, 2)}×; their pixels differ from ours (normalised units): max |Δ| ${fmt(p.maxDiff, 3)}, mean |Δ| ${fmt(p.meanDiff, 4)}`);
  }
}
if (TEXT) {
  console.log();
  console.log(
    `| model | labels | dynamic labels/s (mean padded tokens) | transformers.js dynamic labels/s | ours / tjs dynamic | fixed-77 labels/s | transformers.js fixed-77 labels/s | ours / tjs fixed | dynamic / fixed | floor dynamic | floor fixed | dynamic / floor | others (dyn / fixed; tjs dyn / tjs fixed) |`,
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of textRows) {
    const config = textConfigs.get(r.arch)!;
    const dyn = perSecond(r.labels, r.dynamicMs);
    const fixed = perSecond(1, r.fixedPerLabelMs);
    const peerDyn = r.peer ? perSecond(r.labels, r.peer.dynamicMs) : NaN;
    const peerFixed = r.peer ? perSecond(1, r.peer.fixedPerLabelMs) : NaN;
    const floorDyn = (gemm.gflops * 1e9 * r.labels) / r.dynamicFlops;
    const floorFixed = (gemm.gflops * 1e9) / textFlopsPerLabel(config, config.text.contextLength);
    console.log(
      `| ${r.arch} text | ${r.labels} | ${fmt(dyn)} (${fmt(r.meanPaddedLen)}) | ${fmt(peerDyn)} | ${fmt(dyn / peerDyn, 3)} | ${fmt(fixed)} | ${fmt(peerFixed)} | ${fmt(fixed / peerFixed, 3)} | ${fmt(dyn / fixed, 2)} | ${fmt(floorDyn)} | ${fmt(floorFixed)} | ${fmt(dyn / floorDyn, 2)} | ${pct(r.others[0])} / ${pct(r.others[1])}; ${pct(r.peer?.others[0] ?? NaN)} / ${pct(r.peer?.others[1] ?? NaN)} |`,
    );
  }
  for (const r of textRows) {
    if (!r.peer) continue;
    const [d, f] = r.peer.maxDiff;
    console.log(
      `${r.arch} text: transformers.js text_embeds against ours on the same ${Math.min(TEXT_BATCH, r.labels)} labels: max |Δ| ${d.toExponential(2)} (dynamic), ${f.toExponential(2)} (fixed-77); fixed-77 timed over ${r.fixedRuns} (ours) / ${r.peer.fixedRuns} (tjs) batches of ${TEXT_BATCH}, dynamic over ${TEXT_ROUNDS} passes each, in alternating rounds (medians)`,
    );
  }
}
console.log();
console.log(`(total bench time ${fmt((performance.now() - started) / 1000, 0)} s)`);
