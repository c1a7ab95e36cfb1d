/**
 * What a torch.save pickle may hold, and how its tensors come out. The allowlist (torchGlobals) can rebuild only
 * tensors (_rebuild_tensor_v2 and its older and newer forms, nn.Parameter), name storage classes and dtypes, and
 * make OrderedDicts; the restricted unpickler refuses every other global by name. A tensor is first only a
 * reference (storage key, offset, shape, strides): the file format (torch-checkpoint.ts) reads the storages of
 * the tensors that are kept, and `assemble` turns each into safetensors' in-memory shape, as a view of its storage
 * when it is contiguous and as a row-major copy otherwise.
 */
import { constants as bufferConstants } from 'node:buffer';
import { Img2PromptError } from '../util/errors.js';
import { dtypeByteSize, tensorFromBytes, type SafeTensor, type SafetensorsDType, type SafetensorsFile } from './safetensors.js';
import { PickleCallable, PickleToken, pickledTypeName, type PickleGlobalHandler } from './pickle.js';

/** torch's legacy storage classes, as the pickle names them, and the element type of each. */
const STORAGE_TYPES: Record<string, SafetensorsDType> = {
  DoubleStorage: 'F64',
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

/** torch dtypes that _rebuild_tensor_v3 (dtypes newer than the storage classes) may name. */
const DTYPES: Record<string, SafetensorsDType> = {
  float64: 'F64', double: 'F64', float32: 'F32', float: 'F32', float16: 'F16', half: 'F16', bfloat16: 'BF16',
  int64: 'I64', long: 'I64', int32: 'I32', int: 'I32', int16: 'I16', short: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL',
  uint16: 'U16', uint32: 'U32', uint64: 'U64', float8_e4m3fn: 'F8_E4M3', float8_e5m2: 'F8_E5M2',
};

/** A storage named by the pickle: untyped bytes, read from the file later and only if a kept tensor uses it. */
export class StorageRef {
  constructor(
    readonly key: string,
    /** Element type of its storage class (untyped storages: U8). */
    readonly dtype: SafetensorsDType,
    readonly nbytes: number,
    /** Legacy format: a view into another storage, at this byte offset. */
    readonly view?: { root: string; byteOffset: number },
  ) {}
}

/** A tensor as _rebuild_tensor_v2 describes it: offset and strides in elements of its dtype. */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly dtype: SafetensorsDType,
    readonly offset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
  ) {}
}

/** A pickled size, offset or count, checked to be a non-negative integer. */
export function pickledCount(v: unknown, what: string, file: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Img2PromptError(file, `corrupt checkpoint: ${what} is ${pickledTypeName(v)} ${String(v)}, not a non-negative integer`, { code: 'FILE_INVALID' });
  return v;
}

function counts(v: unknown, what: string, file: string): number[] {
  if (!Array.isArray(v)) throw new Img2PromptError(file, `corrupt checkpoint: ${what} is ${pickledTypeName(v)}, not a tuple`, { code: 'FILE_INVALID' });
  return v.map((x, i) => pickledCount(x, `${what}[${i}]`, file));
}

/** None, or an empty dict, list or tuple: hooks, state and metadata that change nothing. */
export function isPickledEmpty(v: unknown): boolean {
  return v === null || v === undefined || (v instanceof Map && v.size === 0) || (Array.isArray(v) && v.length === 0);
}

function tokenName(v: unknown, module: string): string | undefined {
  return v instanceof PickleToken && v.qualifiedName.startsWith(module) ? v.qualifiedName.slice(module.length) : undefined;
}

/** The element type a storage class token stands for (torch.UntypedStorage: bytes). */
export function storageDtype(v: unknown, file: string): SafetensorsDType {
  const name = tokenName(v, 'torch.');
  if (name === 'UntypedStorage') return 'U8';
  const dtype = name === undefined ? undefined : STORAGE_TYPES[name];
  if (!dtype) throw new Img2PromptError(file, `corrupt checkpoint: ${pickledTypeName(v)} is not a storage type`, { code: 'FILE_INVALID' });
  return dtype;
}

/**
 * _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks[, metadata]) and its older and
 * newer forms. Gradient flags and hooks do not change values; metadata might (conjugate/negative bits), so any
 * is refused.
 */
function rebuildTensor(args: readonly unknown[], form: 'v1' | 'v2' | 'v3', file: string): TensorRef {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof StorageRef)) throw new Img2PromptError(file, `corrupt checkpoint: a tensor over ${pickledTypeName(storage)}, not a storage`, { code: 'FILE_INVALID' });
  let dtype = storage.dtype;
  let metadata: unknown;
  if (form === 'v3') {
    const name = tokenName(args[6], 'torch.');
    const d = name === undefined ? undefined : DTYPES[name];
    if (!d) throw new Img2PromptError(file, `unsupported tensor dtype ${pickledTypeName(args[6])}`, { code: 'FILE_INVALID' });
    dtype = d;
    metadata = args[7];
  } else if (form === 'v2') {
    metadata = args[6];
  }
  if (!isPickledEmpty(metadata)) throw new Img2PromptError(file, 'unsupported tensor metadata (a conjugate or negative view?); save plain tensors', { code: 'FILE_INVALID' });
  const shape = counts(size, 'tensor size', file);
  const strides = counts(stride, 'tensor stride', file);
  if (strides.length !== shape.length) throw new Img2PromptError(file, `corrupt checkpoint: a tensor of ${shape.length} dimensions with ${strides.length} strides`, { code: 'FILE_INVALID' });
  return new TensorRef(storage, dtype, pickledCount(offset, 'storage offset', file), shape, strides);
}

function tensorArg(v: unknown, what: string, file: string): TensorRef {
  if (!(v instanceof TensorRef)) throw new Img2PromptError(file, `corrupt checkpoint: ${what} of ${pickledTypeName(v)}, not a tensor`, { code: 'FILE_INVALID' });
  return v;
}

/** Everything a torch.save'd state dict may name, and nothing else. */
export function torchGlobals(file: string): Map<string, PickleGlobalHandler> {
  const globals = new Map<string, PickleGlobalHandler>([
    ['collections.OrderedDict', (args) => {
      if (args.length === 0) return new Map();
      if (args.length === 1 && Array.isArray(args[0]) && args[0].every((p) => Array.isArray(p) && p.length === 2)) {
        return new Map(args[0] as [unknown, unknown][]);
      }
      throw new Img2PromptError(file, 'corrupt checkpoint: OrderedDict with unexpected arguments', { code: 'FILE_INVALID' });
    }],
    ['torch._utils._rebuild_tensor', (args) => rebuildTensor(args, 'v1', file)],
    ['torch._utils._rebuild_tensor_v2', (args) => rebuildTensor(args, 'v2', file)],
    ['torch._utils._rebuild_tensor_v3', (args) => rebuildTensor(args, 'v3', file)],
    // nn.Parameter (a state dict saved with keep_vars=True): the tensor is all that matters.
    ['torch._utils._rebuild_parameter', (args) => tensorArg(args[0], 'a parameter', file)],
    ['torch._utils._rebuild_parameter_with_state', (args) => {
      if (!isPickledEmpty(args[3])) throw new Img2PromptError(file, 'unsupported parameter with Python state', { code: 'FILE_INVALID' });
      return tensorArg(args[0], 'a parameter', file);
    }],
    // A tensor whose class is given separately: allowed when that class is Tensor or Parameter.
    ['torch._tensor._rebuild_from_type_v2', (args) => {
      const [func, type, inner, state] = args;
      if (!(func instanceof PickleCallable) || !Array.isArray(inner)) throw new Img2PromptError(file, 'corrupt checkpoint: bad _rebuild_from_type_v2 arguments', { code: 'FILE_INVALID' });
      const cls = pickledTypeName(type);
      if (cls !== 'torch.Tensor' && cls !== 'torch.nn.parameter.Parameter') throw new Img2PromptError(file, `refusing to unpickle a tensor of class ${cls}`, { code: 'FILE_INVALID' });
      if (!isPickledEmpty(state)) throw new Img2PromptError(file, 'unsupported tensor with Python state', { code: 'FILE_INVALID' });
      return tensorArg(func.call(inner), 'a rebuilt tensor', file);
    }],
    ['torch.Tensor', 'token'],
    ['torch.nn.parameter.Parameter', 'token'],
    ['torch.UntypedStorage', 'token'],
    // Protocol 2 spells bytes as _codecs.encode(text, 'latin1').
    ['_codecs.encode', (args) => {
      const [text, encoding] = args;
      if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) throw new Img2PromptError(file, 'corrupt checkpoint: unexpected _codecs.encode arguments', { code: 'FILE_INVALID' });
      return new Uint8Array(Buffer.from(text, 'latin1'));
    }],
  ]);
  for (const name of Object.keys(STORAGE_TYPES)) globals.set(`torch.${name}`, 'token');
  for (const name of Object.keys(DTYPES)) globals.set(`torch.${name}`, 'token');
  return globals;
}

/**
 * The state dict in what the pickle held: the object itself, or its "state_dict" entry (open_clip's training
 * checkpoints); entries that are not tensors are left out, and a "module." prefix on every name (a model wrapped
 * for distributed training) is dropped, as open_clip does.
 */
export function stateDictOf(root: unknown, file: string): Map<string, TensorRef> {
  let dict = root;
  if (dict instanceof Map && dict.get('state_dict') instanceof Map) dict = dict.get('state_dict');
  if (!(dict instanceof Map)) throw new Img2PromptError(file, `holds a ${pickledTypeName(dict)}, not a state dict (a dict of tensor names to tensors)`, { code: 'FILE_INVALID' });
  const tensors = new Map<string, TensorRef>();
  for (const [k, v] of dict) if (typeof k === 'string' && v instanceof TensorRef) tensors.set(k, v);
  if (tensors.size === 0) {
    const keys = [...dict.keys()].slice(0, 8).map((k) => JSON.stringify(String(k)));
    throw new Img2PromptError(file, `no tensors in this checkpoint (its keys: ${keys.join(', ') || 'none'})`, { code: 'FILE_INVALID' });
  }
  const names = [...tensors.keys()];
  if (!names.every((n) => n.startsWith('module.'))) return tensors;
  return new Map(names.map((n) => [n.slice('module.'.length), tensors.get(n)!]));
}

function rowMajorStrides(shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    out[i] = s;
    s *= shape[i]!;
  }
  return out;
}

/** A strided view copied out into row-major order, element by element in units of the element size. */
function gather(src: Uint8Array, elementBytes: number, t: TensorRef, numel: number): Uint8Array {
  const out = new Uint8Array(numel * elementBytes);
  const unit = (b: Uint8Array): { [i: number]: number | bigint } =>
    elementBytes === 8 ? new BigUint64Array(b.buffer, b.byteOffset, b.length / 8)
      : elementBytes === 4 ? new Uint32Array(b.buffer, b.byteOffset, b.length / 4)
        : elementBytes === 2 ? new Uint16Array(b.buffer, b.byteOffset, b.length / 2)
          : b;
  // Storage buffers start at offset 0 and views at multiples of the element size, so the unit views line up.
  const from = unit(src);
  const to = unit(out);
  const rank = t.shape.length;
  const index = new Array<number>(rank).fill(0);
  let at = t.offset;
  for (let o = 0; o < numel; o++) {
    to[o] = from[at]!;
    for (let d = rank - 1; d >= 0; d--) {
      index[d]!++;
      at += t.stride[d]!;
      if (index[d]! < t.shape[d]!) break;
      at -= t.stride[d]! * t.shape[d]!;
      index[d] = 0;
    }
  }
  return out;
}

/** One tensor's bytes out of its storage's: a view when it is contiguous, else a row-major copy. */
function materialize(name: string, t: TensorRef, storage: Uint8Array, file: string): SafeTensor {
  const elementBytes = dtypeByteSize(t.dtype);
  const numel = t.shape.reduce((a, d) => a * d, 1);
  if (numel === 0) return tensorFromBytes(name, t.dtype, t.shape, new Uint8Array(0));
  // Zero strides let a tiny storage claim any shape: refuse one that could not be held, before copying it out.
  if (!Number.isSafeInteger(numel * elementBytes) || numel * elementBytes > bufferConstants.MAX_LENGTH) {
    throw new Img2PromptError(file, `tensor "${name}" of shape [${t.shape.join(',')}] is too large to hold`, { code: 'FILE_INVALID' });
  }
  const last = t.shape.reduce((a, d, i) => a + (d - 1) * t.stride[i]!, t.offset);
  if ((last + 1) * elementBytes > storage.length) {
    throw new Img2PromptError(file, `corrupt checkpoint: tensor "${name}" reaches byte ${(last + 1) * elementBytes} of a storage of ${storage.length} bytes`, { code: 'FILE_INVALID' });
  }
  const dense = rowMajorStrides(t.shape);
  const contiguous = t.shape.every((d, i) => d === 1 || t.stride[i] === dense[i]);
  const bytes = contiguous
    ? storage.subarray(t.offset * elementBytes, (t.offset + numel) * elementBytes)
    : gather(storage, elementBytes, t, numel);
  return tensorFromBytes(name, t.dtype, t.shape, bytes);
}

/** Keys of the storages the kept tensors read from the file (for a legacy view, the storage it is a view of). */
export function rootStorageKeys(tensors: Map<string, TensorRef>): Set<string> {
  return new Set([...tensors.values()].map((t) => t.storage.view?.root ?? t.storage.key));
}

/** The kept tensors out of their storages' bytes (`bytesOf` a root storage key). */
export function assemble(file: string, tensors: Map<string, TensorRef>, bytesOf: (key: string) => Uint8Array): SafetensorsFile {
  const out = new Map<string, SafeTensor>();
  for (const [name, t] of tensors) {
    const s = t.storage;
    const root = bytesOf(s.view?.root ?? s.key);
    const bytes = s.view ? root.subarray(s.view.byteOffset, s.view.byteOffset + s.nbytes) : root;
    if (bytes.length !== s.nbytes) throw new Img2PromptError(file, `corrupt checkpoint: storage "${s.key}" holds ${bytes.length} bytes, its tensors need ${s.nbytes}`, { code: 'FILE_INVALID' });
    out.set(name, materialize(name, t, bytes, file));
  }
  return { path: file, metadata: {}, tensors: out };
}
