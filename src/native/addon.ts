import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { packageRoot } from '../util/package-root.js';

/** Shapes of what the C++ addon hands over; src/runtime wraps them in the public API. */
export interface NativeTensorInfo {
  name: string;
  type: string;
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

export interface NativeSession {
  readonly inputs: NativeTensorInfo[];
  readonly outputs: NativeTensorInfo[];
  readonly provider: string;
  readonly providerNote: string;
  readonly label: string;
  run(feeds: NativeFeed[], outputs: NativeOutputRequest[]): Promise<NativeTensor[]>;
  runSync(feeds: NativeFeed[], outputs: NativeOutputRequest[]): NativeTensor[];
  close(): void;
}

export interface NativeAddon {
  openSession(model: string | Uint8Array, options: { providers: string[]; intraOpThreads: number; optimization: string; spinWait: boolean }): Promise<NativeSession>;
  availableProviders(): string[];
  ortVersion(): string;
  /**
   * Sums `data` on `threads` threads (default: one per hardware thread), `passes` times, timing each
   * pass: the streaming-read bandwidth floor the top-k kernel is measured against (bench/topk.bench.ts).
   */
  streamRead(data: Float32Array, options?: { threads?: number; passes?: number }): Promise<{ sum: number; seconds: number[]; kernel: string }>;
}

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
  if (process.env.IMG2PROMPT_NATIVE) return process.env.IMG2PROMPT_NATIVE;
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
  addon = createRequire(import.meta.url)(file) as NativeAddon;
  return addon;
}

/** Directory of the libonnxruntime.so.1 the addon links against (onnxruntime-node's copy). */
export function ortLibraryDir(): string {
  const ortNode = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
  return path.join(ortNode, 'bin', 'napi-v6', process.platform, process.arch);
}
