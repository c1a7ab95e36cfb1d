import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { packageRoot } from '../util/package-root.js';
import { nativeAddonVariable } from '../config.js';

/**
 * Everything the C++ addon (native/*.cc) exports, declared once; src/ reaches the addon only through
 * `native()`. The TypeScript wrappers check user input with full messages first (runtime/session.ts,
 * rank/topk.ts, image/clip-transform.ts); the C++ side keeps only guards that stop a wrong call from
 * touching memory it was not given, with one terse message (`<function>: invalid <what>`).
 */

export interface NativeTensorInfo {
  name: string;
  type: string;
  /** Fixed sizes as numbers; free dimensions by their symbolic name (or '?'). */
  dims: (number | string)[];
}

export interface NativeTensor {
  name: string;
  type: string;
  dims: number[];
  data: ArrayBufferView;
}

export interface NativeOutputRequest {
  name: string;
  data?: ArrayBufferView;
  dims?: readonly number[];
}

export interface NativeFeed {
  name: string;
  data: ArrayBufferView;
  dims: readonly number[];
}

/** openSession's options; a wrong-typed one throws a TypeError. */
export interface NativeSessionOptions {
  providers: readonly ('cuda' | 'cpu')[];
  intraOpThreads: number;
  optimization: 'disabled' | 'basic' | 'extended' | 'all';
  spinWait: boolean;
}

/** native/session.cc `Session`: made by openSession() only. */
export interface NativeSession {
  readonly inputs: NativeTensorInfo[];
  readonly outputs: NativeTensorInfo[];
  readonly provider: string;
  readonly providerNote: string;
  run(feeds: NativeFeed[], outputs: NativeOutputRequest[]): Promise<NativeTensor[]>;
  runSync(feeds: NativeFeed[], outputs: NativeOutputRequest[]): NativeTensor[];
  close(): void;
}

/**
 * native/io_binding.cc `IoBinding`: made by createIoBinding() only. An input stays bound until bound
 * again (ORT copies it, when bound, to the device that consumes it); outputs are bound per run.
 */
export interface NativeIoBinding {
  bindInputs(feeds: NativeFeed[]): Promise<void>;
  /** Binds `feeds` (they stay bound), runs with every bound input; at least one output. */
  run(feeds: NativeFeed[], outputs: NativeOutputRequest[]): Promise<NativeTensor[]>;
  close(): void;
}

/** Options of the similarity kernel (native/topk_binding.cc). */
export interface NativeTopKOptions {
  /** Worker threads, 0 to 1024; 0 or unset: one per hardware thread (small jobs use fewer). */
  threads?: number;
  /** false: the portable scalar kernel. */
  simd?: boolean;
  /** @internal Testing knob (see TopKOptions): exactly this many workers, 1 to 1024. */
  forceThreads?: number;
  /** @internal Testing knob (see TopKOptions): bank rows per block, 1 to 2^24. */
  blockRows?: number;
}

/** Where a processor's Resize(N) + CenterCrop(N) put an image. */
export interface ClipGeometry {
  resizedWidth: number;
  resizedHeight: number;
  left: number;
  top: number;
}

/** Which Pillow's pass order to reproduce for the 'open_clip' resize (see native/clip_preprocess.h). */
export type PillowPassOrder = 'pillow13' | 'pillow12.2' | 'pillow12.1';

/**
 * The rules the CLIP preprocessing kernel applies (native/clip_preprocess.h ClipRules, plus the input's
 * channels); image/image-processor.ts derives them from a processor and an image.
 */
export interface NativeClipRules {
  channels: 3 | 4;
  resampler: 'pillow-bicubic' | 'pillow-nearest' | 'torch-bicubic';
  passOrder: PillowPassOrder;
  crop: 'half-to-even' | 'floor' | 'none';
  alpha: 'drop' | 'onto-white' | 'premultiplied';
  normalisation: 'to-tensor' | 'fused';
}

export interface NativeAddon {
  openSession(model: string | Uint8Array, options: NativeSessionOptions): Promise<NativeSession>;
  /** An ORT IoBinding over an open session (it keeps the session alive). */
  createIoBinding(session: NativeSession): NativeIoBinding;
  /** ORT's own provider names, e.g. 'CPUExecutionProvider'. */
  availableProviders(): string[];
  ortVersion(): string;
  /** Creates ORT's process-wide environment now (it is otherwise created by the first session). */
  initEnvironment(): void;
  /**
   * Best k (k > rows: all) bank rows per query by dot product, best first (`least`: lowest first), ties
   * to the lower row; queries [rows x queryDim], bank [rows x bankDim] float32 or float16 bits. Reads
   * both arrays in place off the JS thread. `threads`: the OS threads that scored blocks.
   */
  topk(queries: Float32Array, queryDim: number, bank: Float32Array | Uint16Array, bankDim: number, k: number,
    options?: NativeTopKOptions & { least?: boolean }): Promise<{ indices: Int32Array; scores: Float32Array; k: number; threads: number }>;
  /** Every query-row score, [queries x bank rows] row-major. */
  scoresAll(queries: Float32Array, queryDim: number, bank: Float32Array | Uint16Array, bankDim: number,
    options?: NativeTopKOptions): Promise<Float32Array>;
  /** The kernel the top-k runs on this CPU ('avx2-fma-f16c' or 'scalar'). */
  topkKernel(): string;
  /** CLIP preprocessing of 8-bit pixels (HWC, `rules.channels`) into slot `slot` of `out` ([B, 3, size, size]); see image/clip-transform.ts. */
  clipPreprocess(pixels: Uint8Array, width: number, height: number, size: number, mean: Float32Array, std: Float32Array,
    out: Float32Array, slot: number, rules?: NativeClipRules): Promise<void>;
  clipGeometry(width: number, height: number, size: number, crop?: NativeClipRules['crop']): ClipGeometry;
  /**
   * Sums `data` on `threads` threads (default: one per hardware thread), `passes` times, timing each
   * pass: the streaming-read bandwidth floor the top-k kernel is measured against (bench/topk.bench.ts).
   */
  streamRead(data: Float32Array, options?: { threads?: number; passes?: number }): Promise<{ sum: number; seconds: number[]; kernel: string }>;
}

/** The functions NativeAddon declares, checked at load so that an addon built from older sources is named as such. */
const FUNCTIONS = [
  'openSession', 'createIoBinding', 'availableProviders', 'ortVersion', 'initEnvironment', 'topk', 'scoresAll', 'topkKernel', 'clipPreprocess', 'clipGeometry', 'streamRead',
] as const satisfies readonly (keyof NativeAddon)[];

let addon: NativeAddon | undefined;

/**
 * The addon `npm pack` ships (scripts/pack-prebuilt.mjs), used when `npm install` found it loads here
 * (scripts/install-native.mjs) and so built nothing.
 */
export function prebuiltAddonPath(): string {
  return path.join(packageRoot(), 'prebuilds', `${process.platform}-${process.arch}`, 'img2prompt_native.node');
}

/**
 * Path of the addon: IMG2PROMPT_NATIVE when set (e.g. an ASan build), else the one built from source
 * in build/Release when there is one, else the prebuilt one.
 */
export function addonPath(): string {
  const chosen = nativeAddonVariable();
  if (chosen !== undefined) return chosen;
  const built = path.join(packageRoot(), 'build', 'Release', 'img2prompt_native.node');
  return fs.existsSync(built) || !fs.existsSync(prebuiltAddonPath()) ? built : prebuiltAddonPath();
}

/** The native addon, loaded once. */
export function native(): NativeAddon {
  if (addon) return addon;
  const file = addonPath();
  if (!fs.existsSync(file)) {
    throw new Error(`${file}: native addon not built; run \`npm rebuild img2prompt\` (in a checkout: \`npm run build:native\`) in ${packageRoot()}`);
  }
  const loaded = createRequire(import.meta.url)(file) as Record<string, unknown>;
  const missing = FUNCTIONS.filter((name) => typeof loaded[name] !== 'function');
  if (missing.length > 0) {
    throw new Error(`${file}: built from older sources (it has no ${missing.join(', ')}); rebuild it with \`npm run build:native\``);
  }
  addon = loaded as unknown as NativeAddon;
  return addon;
}

/** Directory of the libonnxruntime.so.1 the addon links against (onnxruntime-node's copy). */
export function ortLibraryDir(): string {
  const ortNode = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
  return path.join(ortNode, 'bin', 'napi-v6', process.platform, process.arch);
}
