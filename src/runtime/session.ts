import fs from 'node:fs';
import path from 'node:path';
import { native, ortLibraryDir, type NativeFeed, type NativeOutputRequest, type NativeSession, type NativeTensor } from '../native/addon.js';
import { Img2PromptError } from '../util/errors.js';
import { notice } from '../util/notices.js';
import { cudaStatus } from './cuda-status.js';
import { CUDA_PROVIDER_LIB } from '../gpu/readiness.js';
import { prepareOrtEnvironment } from './ort-environment.js';
import { readOptions } from '../util/options.js';
import { PROVIDERS_VARIABLE, providersVariable } from '../config.js';

export type TensorType = 'float32' | 'float16' | 'float64' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool';
export type TensorData = Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array | Int8Array | Uint8Array;

export interface Tensor {
  type: TensorType;
  data: TensorData;
  dims: readonly number[];
}

export interface TensorInfo {
  name: string;
  type: TensorType | string;
  /** Fixed sizes as numbers; free dimensions by their symbolic name (or '?'). */
  dims: (number | string)[];
}

export type ExecutionProvider = 'cuda' | 'cpu';

export interface SessionOptions {
  /**
   * Providers in order of preference. Default: IMG2PROMPT_PROVIDERS, else CUDA first when it is usable
   * here (cudaStatus), then CPU. CUDA listed without the CPU is an error where CUDA cannot be used.
   */
  providers?: ExecutionProvider[];
  /** Threads inside one operator; 0 (default) lets ORT use one per physical core. */
  intraOpThreads?: number;
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Let ORT's intra-op workers busy-wait between operators (default true: lower latency, more CPU). */
  spinWait?: boolean;
}

export interface RunOptions {
  /** Outputs to compute (default: all). */
  outputNames?: string[];
  /** Caller-owned buffers to write outputs into (their shape must be the output's exact shape). */
  into?: Record<string, { data: TensorData; dims: readonly number[] }>;
}

const ARRAY_OF: Record<TensorType, new (...args: never[]) => TensorData> = {
  float32: Float32Array,
  float16: Uint16Array,
  float64: Float64Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

/** A tensor over `data` (not copied), after checking that the array kind and length fit. */
export function tensor(type: TensorType, data: TensorData, dims: readonly number[]): Tensor {
  const kind = ARRAY_OF[type];
  if (!kind) throw new TypeError(`unknown tensor type '${type}'`);
  if (!(data instanceof kind)) throw new TypeError(`a ${type} tensor needs a ${kind.name}, got ${data?.constructor?.name}`);
  for (const d of dims) if (!Number.isInteger(d) || d < 0) throw new RangeError(`dims must be non-negative integers, got [${dims}]`);
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new RangeError(`dims [${dims}] need ${count} elements, the array has ${data.length}`);
  return { type, data, dims };
}

/** True when ORT's CUDA provider library sits next to libonnxruntime (whether it can load is cudaStatus's question). */
export function cudaProviderInstalled(): boolean {
  return fs.existsSync(path.join(ortLibraryDir(), CUDA_PROVIDER_LIB));
}

/** The providers a session tries by default: IMG2PROMPT_PROVIDERS when set, else CUDA first when it is usable here. */
export function defaultProviders(): ExecutionProvider[] {
  const forced = providersVariable();
  if (forced !== undefined) {
    const list = forced.split(',').map((p) => p.trim());
    for (const p of list) {
      if (p !== 'cuda' && p !== 'cpu') throw new Img2PromptError(undefined, `${PROVIDERS_VARIABLE}=${forced}: unknown execution provider '${p}' (use cuda and/or cpu)`);
    }
    return list as ExecutionProvider[];
  }
  return cudaStatus().usable ? ['cuda', 'cpu'] : ['cpu'];
}

/** Notes already given as notices: a run opens several sessions, and one line says it. */
const noted = new Set<string>();

function noteOnce(message: string): void {
  if (noted.has(message)) return;
  noted.add(message);
  notice(message);
}

/**
 * The providers to hand the native session, and why CUDA was dropped from them: asked for but not
 * usable here, it is dropped where the CPU is listed too (with a note), and refused where CUDA alone
 * was asked for, so nothing runs on the CPU silently.
 */
function usableProviders(providers: ExecutionProvider[], fromVariable: boolean): { providers: ExecutionProvider[]; note: string } {
  if (!providers.includes('cuda')) return { providers, note: '' };
  const cuda = cudaStatus();
  if (cuda.usable) return { providers, note: '' };
  const asked = fromVariable ? ` (${PROVIDERS_VARIABLE}=${providersVariable()})` : '';
  if (!providers.includes('cpu')) {
    throw new Img2PromptError(undefined, `CUDA was asked for${asked} but cannot be used here: ${cuda.reason}; list cpu too to fall back to it (e.g. ${PROVIDERS_VARIABLE}=cuda,cpu)`, { code: 'RUNTIME_FAILED' });
  }
  return { providers: providers.filter((p) => p !== 'cuda'), note: `CUDA was asked for${asked} but cannot be used here: ${cuda.reason}; running on the CPU` };
}

/**
 * An ONNX Runtime session in the native addon. Inputs are read in place from the caller's
 * TypedArrays; runs happen off the JS thread; outputs come back as TypedArrays over ORT's memory.
 */
export class Session {
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  /** The provider the session runs on. */
  readonly provider: ExecutionProvider;
  /** Why a preferred provider was not used ('' when none was skipped); also given as a notice (src/util/notices.ts). */
  readonly providerNote: string;
  readonly modelPath: string | undefined;
  #native: NativeSession | undefined;

  private constructor(nativeSession: NativeSession, modelPath: string | undefined, note: string) {
    this.#native = nativeSession;
    this.inputs = nativeSession.inputs as TensorInfo[];
    this.outputs = nativeSession.outputs as TensorInfo[];
    this.provider = nativeSession.provider as ExecutionProvider;
    this.providerNote = note || nativeSession.providerNote;
    this.modelPath = modelPath;
  }

  static async open(model: string | Uint8Array, options: SessionOptions = {}): Promise<Session> {
    const o = readOptions(options, 'Session.open()');
    const given = o.subsetOf('providers', ['cuda', 'cpu'], { allowRepeats: true });
    const threads = o.int('intraOpThreads', { min: 0 }) ?? 0;
    const optimization = o.oneOf('optimization', ['disabled', 'basic', 'extended', 'all']) ?? 'all';
    const spinWait = o.bool('spinWait') ?? true;
    o.done();
    const { providers, note } = usableProviders(given ?? defaultProviders(), given === undefined);
    let modelPath: string | undefined;
    if (typeof model === 'string') {
      modelPath = path.resolve(model);
      if (!fs.existsSync(modelPath)) throw new Img2PromptError(modelPath, 'model file not found', { code: 'FILE_UNREADABLE' });
    } else if (!(model instanceof Uint8Array)) {
      throw new TypeError('model must be a file path or a Uint8Array');
    }
    prepareOrtEnvironment();
    try {
      const s = await native().openSession(modelPath ?? (model as Uint8Array), { providers, intraOpThreads: threads, optimization, spinWait });
      const session = new Session(s, modelPath, note);
      if (session.providerNote !== '') noteOnce(session.providerNote);
      return session;
    } catch (err) {
      // The native message is ORT's reason alone; the model is named here, in the one-line `<file>: <reason>` form.
      throw new Img2PromptError(modelPath ?? '<model buffer>', `cannot load model: ${err instanceof Error ? err.message : String(err)}`, { code: 'RUNTIME_FAILED', cause: err });
    }
  }

  /** Runs the model off the JS thread (the event loop stays free); inputs are read in place. */
  async run(feeds: Record<string, Tensor>, options: RunOptions = {}): Promise<Record<string, Tensor>> {
    const s = this.#live();
    const [list, requests] = this.checkedRequests(feeds, options);
    try {
      return toTensors(await s.run(list, requests));
    } catch (err) {
      throw this.runError(err);
    }
  }

  /**
   * Runs the model on the calling thread: no thread hop (about 0.05–0.1 ms less per call, which
   * matters for tiny batches), but the event loop waits for the whole inference.
   */
  runSync(feeds: Record<string, Tensor>, options: RunOptions = {}): Record<string, Tensor> {
    const s = this.#live();
    const [list, requests] = this.checkedRequests(feeds, options);
    try {
      return toTensors(s.runSync(list, requests));
    } catch (err) {
      throw this.runError(err);
    }
  }

  /**
   * @internal Checks feeds and output requests against the model's signature; the addon trusts what
   * passes. `partial`: the feeds may name only some inputs (an IoBinding keeps the others bound).
   */
  checkedRequests(feeds: Record<string, Tensor>, options: RunOptions, partial = false): [NativeFeed[], NativeOutputRequest[]] {
    const label = this.modelPath ?? '<model buffer>';
    const list = Object.entries(feeds).map(([name, t]) => {
      const info = this.inputs.find((i) => i.name === name);
      if (!info) throw new Img2PromptError(label, `model has no input '${name}' (inputs: ${this.inputs.map((i) => i.name).join(', ')})`);
      if (!t || t.type !== info.type) throw new Img2PromptError(label, `input '${name}' must be ${info.type}, got ${t?.type}`);
      checkShape(info, t.dims, label, `input '${name}'`);
      return { name, data: t.data, dims: t.dims };
    });
    if (!partial) for (const i of this.inputs) if (!(i.name in feeds)) throw new Img2PromptError(label, `missing input '${i.name}'`);
    const names = options.outputNames ?? this.outputs.map((o) => o.name);
    const requests = names.map((name) => {
      const info = this.outputs.find((o) => o.name === name);
      if (!info) throw new Img2PromptError(label, `model has no output '${name}' (outputs: ${this.outputs.map((o) => o.name).join(', ')})`);
      const into = options.into?.[name];
      if (!into) return { name };
      const what = `output buffer for '${name}'`;
      try {
        tensor(info.type as TensorType, into.data, into.dims);
      } catch (err) {
        throw new Img2PromptError(label, `${what}: ${(err as Error).message}`);
      }
      checkShape(info, into.dims, label, what);
      return { name, data: into.data, dims: into.dims };
    });
    return [list, requests];
  }

  /** @internal The native message is ORT's reason alone; the model is named here, in the one-line `<file>: <reason>` form. */
  runError(err: unknown): Img2PromptError {
    return new Img2PromptError(this.modelPath ?? '<model buffer>', err instanceof Error ? err.message : String(err), { code: 'RUNTIME_FAILED', cause: err });
  }

  /** Frees the model; runs already in flight finish first. */
  close(): void {
    this.#native?.close();
    this.#native = undefined;
  }

  /** @internal The addon's session, for runtime/io-binding.ts; throws once closed. */
  nativeSession(): NativeSession {
    return this.#live();
  }

  #live(): NativeSession {
    if (!this.#native) throw new Img2PromptError(this.modelPath, 'session is closed');
    return this.#native;
  }
}

/** `dims` against the signature's: the same rank, and every fixed dimension equal (free ones take any size). */
function checkShape(info: TensorInfo, dims: readonly number[], label: string, what: string): void {
  // A signature without dims is a tensor of unknown rank (or a scalar): anything but a scalar is taken.
  if (info.dims.length === 0 && dims.length > 0) return;
  const expected = `[${info.dims.join(',')}]`;
  if (dims.length !== info.dims.length) {
    throw new Img2PromptError(label, `${what}: expected rank ${info.dims.length} ${expected}, got dims [${dims.join(',')}]`);
  }
  info.dims.forEach((d, i) => {
    if (typeof d === 'number' && d >= 0 && d !== dims[i]) {
      throw new Img2PromptError(label, `${what}: dimension ${i} must be ${d}, got dims [${dims.join(',')}]`);
    }
  });
}

/** @internal The addon's outputs by name. */
export function toTensors(out: NativeTensor[]): Record<string, Tensor> {
  const result: Record<string, Tensor> = {};
  for (const o of out) result[o.name] = { type: o.type as TensorType, data: o.data as TensorData, dims: o.dims };
  return result;
}

export function availableProviders(): string[] {
  return native().availableProviders();
}

export function ortVersion(): string {
  return native().ortVersion();
}
