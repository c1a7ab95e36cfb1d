/**
 * Reader of PyTorch checkpoints written by torch.save (`pytorch_model.bin`, `open_clip_pytorch_model.bin`, `.pt`),
 * in both of its formats:
 * - the zip archive (torch ≥ 1.6): `<name>/data.pkl` is the pickled object, each tensor storage is the stored
 *   entry `<name>/data/<key>`, `<name>/byteorder` says the byte order;
 * - the legacy stream (`_use_new_zipfile_serialization=False`, torch < 1.6): a magic-number pickle, a protocol
 *   pickle, a system-info pickle, the object's pickle, the list of storage keys, then each storage as an int64
 *   element count and its bytes.
 *
 * The pickle goes through the restricted unpickler (pickle.ts) with an allowlist that can only rebuild tensors
 * and plain containers, so nothing in the file is ever run. Tensors come back as safetensors' in-memory shape
 * (SafetensorsFile), so every consumer of weights reads both formats through one path. Only the storages of the
 * state dict's tensors are read (a training checkpoint's optimizer state is skipped), each into a buffer of its
 * own; a tensor that is a contiguous view of its storage is a view into that buffer, any other is copied out.
 */
import { promises as fs } from 'node:fs';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { dtypeByteSize, readFully, tensorFromBytes, type SafeTensor, type SafetensorsDType, type SafetensorsFile } from './safetensors.js';
import { PickleCallable, PickleToken, PickleTruncatedError, pickledTypeName, unpickle, type PickleGlobalHandler, type UnpickleResult } from './pickle.js';
import { looksLikeZip, readZipDirectory, readZipEntry, type ZipEntry } from './zip-archive.js';

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

/** The legacy format's first pickle. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
/** A state dict's pickle is kilobytes; a data.pkl this large is not one. */
const MAX_PICKLE_BYTES = 256 * 1024 * 1024;

/** A storage named by the pickle: untyped bytes, read from the file later and only if a kept tensor uses it. */
class StorageRef {
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
class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly dtype: SafetensorsDType,
    readonly offset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
  ) {}
}

function count(v: unknown, what: string, file: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Img2PromptError(file, `corrupt checkpoint: ${what} is ${pickledTypeName(v)} ${String(v)}, not a non-negative integer`);
  return v;
}

function counts(v: unknown, what: string, file: string): number[] {
  if (!Array.isArray(v)) throw new Img2PromptError(file, `corrupt checkpoint: ${what} is ${pickledTypeName(v)}, not a tuple`);
  return v.map((x, i) => count(x, `${what}[${i}]`, file));
}

function isEmpty(v: unknown): boolean {
  return v === null || v === undefined || (v instanceof Map && v.size === 0) || (Array.isArray(v) && v.length === 0);
}

function tokenName(v: unknown, module: string): string | undefined {
  return v instanceof PickleToken && v.qualifiedName.startsWith(module) ? v.qualifiedName.slice(module.length) : undefined;
}

/** The element type a storage class token stands for (torch.UntypedStorage: bytes). */
function storageDtype(v: unknown, file: string): SafetensorsDType {
  const name = tokenName(v, 'torch.');
  if (name === 'UntypedStorage') return 'U8';
  const dtype = name === undefined ? undefined : STORAGE_TYPES[name];
  if (!dtype) throw new Img2PromptError(file, `corrupt checkpoint: ${pickledTypeName(v)} is not a storage type`);
  return dtype;
}

/**
 * _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks[, metadata]) and its older and
 * newer forms. Gradient flags and hooks do not change values; metadata might (conjugate/negative bits), so any
 * is refused.
 */
function rebuildTensor(args: readonly unknown[], form: 'v1' | 'v2' | 'v3', file: string): TensorRef {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof StorageRef)) throw new Img2PromptError(file, `corrupt checkpoint: a tensor over ${pickledTypeName(storage)}, not a storage`);
  let dtype = storage.dtype;
  let metadata: unknown;
  if (form === 'v3') {
    const name = tokenName(args[6], 'torch.');
    const d = name === undefined ? undefined : DTYPES[name];
    if (!d) throw new Img2PromptError(file, `unsupported tensor dtype ${pickledTypeName(args[6])}`);
    dtype = d;
    metadata = args[7];
  } else if (form === 'v2') {
    metadata = args[6];
  }
  if (!isEmpty(metadata)) throw new Img2PromptError(file, 'unsupported tensor metadata (a conjugate or negative view?); save plain tensors');
  const shape = counts(size, 'tensor size', file);
  const strides = counts(stride, 'tensor stride', file);
  if (strides.length !== shape.length) throw new Img2PromptError(file, `corrupt checkpoint: a tensor of ${shape.length} dimensions with ${strides.length} strides`);
  return new TensorRef(storage, dtype, count(offset, 'storage offset', file), shape, strides);
}

function tensorArg(v: unknown, what: string, file: string): TensorRef {
  if (!(v instanceof TensorRef)) throw new Img2PromptError(file, `corrupt checkpoint: ${what} of ${pickledTypeName(v)}, not a tensor`);
  return v;
}

/** Everything a torch.save'd state dict may name, and nothing else. */
function torchGlobals(file: string): Map<string, PickleGlobalHandler> {
  const globals = new Map<string, PickleGlobalHandler>([
    ['collections.OrderedDict', (args) => {
      if (args.length === 0) return new Map();
      if (args.length === 1 && Array.isArray(args[0]) && args[0].every((p) => Array.isArray(p) && p.length === 2)) {
        return new Map(args[0] as [unknown, unknown][]);
      }
      throw new Img2PromptError(file, 'corrupt checkpoint: OrderedDict with unexpected arguments');
    }],
    ['torch._utils._rebuild_tensor', (args) => rebuildTensor(args, 'v1', file)],
    ['torch._utils._rebuild_tensor_v2', (args) => rebuildTensor(args, 'v2', file)],
    ['torch._utils._rebuild_tensor_v3', (args) => rebuildTensor(args, 'v3', file)],
    // nn.Parameter (a state dict saved with keep_vars=True): the tensor is all that matters.
    ['torch._utils._rebuild_parameter', (args) => tensorArg(args[0], 'a parameter', file)],
    ['torch._utils._rebuild_parameter_with_state', (args) => {
      if (!isEmpty(args[3])) throw new Img2PromptError(file, 'unsupported parameter with Python state');
      return tensorArg(args[0], 'a parameter', file);
    }],
    // A tensor whose class is given separately: allowed when that class is Tensor or Parameter.
    ['torch._tensor._rebuild_from_type_v2', (args) => {
      const [func, type, inner, state] = args;
      if (!(func instanceof PickleCallable) || !Array.isArray(inner)) throw new Img2PromptError(file, 'corrupt checkpoint: bad _rebuild_from_type_v2 arguments');
      const cls = pickledTypeName(type);
      if (cls !== 'torch.Tensor' && cls !== 'torch.nn.parameter.Parameter') throw new Img2PromptError(file, `refusing to unpickle a tensor of class ${cls}`);
      if (!isEmpty(state)) throw new Img2PromptError(file, 'unsupported tensor with Python state');
      return tensorArg(func.call(inner), 'a rebuilt tensor', file);
    }],
    ['torch.Tensor', 'token'],
    ['torch.nn.parameter.Parameter', 'token'],
    ['torch.UntypedStorage', 'token'],
    // Protocol 2 spells bytes as _codecs.encode(text, 'latin1').
    ['_codecs.encode', (args) => {
      const [text, encoding] = args;
      if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) throw new Img2PromptError(file, 'corrupt checkpoint: unexpected _codecs.encode arguments');
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
function stateDictOf(root: unknown, file: string): Map<string, TensorRef> {
  let dict = root;
  if (dict instanceof Map && dict.get('state_dict') instanceof Map) dict = dict.get('state_dict');
  if (!(dict instanceof Map)) throw new Img2PromptError(file, `holds a ${pickledTypeName(dict)}, not a state dict (a dict of tensor names to tensors)`);
  const tensors = new Map<string, TensorRef>();
  for (const [k, v] of dict) if (typeof k === 'string' && v instanceof TensorRef) tensors.set(k, v);
  if (tensors.size === 0) {
    const keys = [...dict.keys()].slice(0, 8).map((k) => JSON.stringify(String(k)));
    throw new Img2PromptError(file, `no tensors in this checkpoint (its keys: ${keys.join(', ') || 'none'})`);
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
  const last = t.shape.reduce((a, d, i) => a + (d - 1) * t.stride[i]!, t.offset);
  if ((last + 1) * elementBytes > storage.length) {
    throw new Img2PromptError(file, `corrupt checkpoint: tensor "${name}" reaches byte ${(last + 1) * elementBytes} of a storage of ${storage.length} bytes`);
  }
  const dense = rowMajorStrides(t.shape);
  const contiguous = t.shape.every((d, i) => d === 1 || t.stride[i] === dense[i]);
  const bytes = contiguous
    ? storage.subarray(t.offset * elementBytes, (t.offset + numel) * elementBytes)
    : gather(storage, elementBytes, t, numel);
  return tensorFromBytes(name, t.dtype, t.shape, bytes);
}

/** The storages each kept tensor uses (for a legacy view, the storage it is a view of). */
function storageKeysOf(tensors: Map<string, TensorRef>): Map<string, StorageRef> {
  const out = new Map<string, StorageRef>();
  for (const t of tensors.values()) out.set(t.storage.view?.root ?? t.storage.key, t.storage);
  return out;
}

function assemble(file: string, tensors: Map<string, TensorRef>, bytesOf: (key: string) => Uint8Array): SafetensorsFile {
  const out = new Map<string, SafeTensor>();
  for (const [name, t] of tensors) {
    const s = t.storage;
    const root = bytesOf(s.view?.root ?? s.key);
    const bytes = s.view ? root.subarray(s.view.byteOffset, s.view.byteOffset + s.nbytes) : root;
    if (bytes.length !== s.nbytes) throw new Img2PromptError(file, `corrupt checkpoint: storage "${s.key}" holds ${bytes.length} bytes, its tensors need ${s.nbytes}`);
    out.set(name, materialize(name, t, bytes, file));
  }
  return { path: file, metadata: {}, tensors: out };
}

/** ('storage', storage class, key, location, element count) → the storage, one object per key. */
function zipPersistentLoad(file: string): (pid: unknown) => unknown {
  const seen = new Map<string, StorageRef>();
  return (pid) => {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || typeof pid[2] !== 'string') {
      throw new Img2PromptError(file, `corrupt checkpoint: unexpected persistent id ${pickledTypeName(pid)}`);
    }
    const key = pid[2];
    const dtype = storageDtype(pid[1], file);
    let s = seen.get(key);
    if (!s) {
      s = new StorageRef(key, dtype, count(pid[4], `storage "${key}" size`, file) * dtypeByteSize(dtype));
      seen.set(key, s);
    }
    return s;
  };
}

async function readZipCheckpoint(fh: fs.FileHandle, fileSize: number, file: string): Promise<SafetensorsFile> {
  const entries = await readZipDirectory(fh, fileSize, file);
  const pkl = [...entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n)) ?? [...entries.keys()].find((n) => n === 'data.pkl');
  const prefix = pkl ? pkl.slice(0, -'data.pkl'.length) : '';
  if ([...entries.keys()].some((n) => n.startsWith(`${prefix}code/`) || n === `${prefix}constants.pkl`)) {
    throw new Img2PromptError(
      file,
      'a TorchScript archive (torch.jit.save, like OpenAI\'s original CLIP .pt files), not a state dict: use the open_clip_pytorch_model.bin or safetensors release of the same weights',
    );
  }
  if (!pkl) throw new Img2PromptError(file, 'a zip archive, but not one written by torch.save (no data.pkl)');
  const order = entries.get(`${prefix}byteorder`);
  if (order) {
    const text = (await readZipEntry(fh, order, fileSize, file)).toString('latin1');
    if (text !== 'little') throw new Img2PromptError(file, `unsupported byte order "${text}" (only little-endian checkpoints are read)`);
  }
  const pklEntry = entries.get(pkl)!;
  if (pklEntry.size > MAX_PICKLE_BYTES) throw new Img2PromptError(file, `data.pkl is ${pklEntry.size} bytes, too large for a state dict`);
  const root = unpickle(await readZipEntry(fh, pklEntry, fileSize, file), {
    file,
    globals: torchGlobals(file),
    persistentLoad: zipPersistentLoad(file),
  }).value;
  const tensors = stateDictOf(root, file);
  const storages = new Map<string, Uint8Array>();
  for (const [key, s] of storageKeysOf(tensors)) {
    const entry: ZipEntry | undefined = entries.get(`${prefix}data/${key}`);
    if (!entry) throw new Img2PromptError(file, `truncated or corrupt checkpoint: storage data/${key} is missing`);
    if (entry.size !== s.nbytes) throw new Img2PromptError(file, `corrupt checkpoint: storage data/${key} holds ${entry.size} bytes, the pickle says ${s.nbytes}`);
    storages.set(key, await readZipEntry(fh, entry, fileSize, file));
  }
  return assemble(file, tensors, (key) => storages.get(key)!);
}

interface LegacyHead {
  root: unknown;
  /** Root storages by key, in the order their data follows the pickles. */
  keys: string[];
  roots: Map<string, StorageRef>;
  dataStart: number;
}

/** ('storage', class, root key, location, element count, view metadata | None): views are legacy-only. */
function legacyPersistentLoad(file: string, roots: Map<string, StorageRef>): (pid: unknown) => unknown {
  const views = new Map<string, StorageRef>();
  return (pid) => {
    if (Array.isArray(pid) && pid[0] === 'module') {
      throw new Img2PromptError(file, 'a pickled nn.Module (torch.save(model)), not a state dict: save model.state_dict() instead');
    }
    if (!Array.isArray(pid) || pid[0] !== 'storage' || typeof pid[2] !== 'string') {
      throw new Img2PromptError(file, `corrupt checkpoint: unexpected persistent id ${pickledTypeName(pid)}`);
    }
    const key = pid[2];
    const dtype = storageDtype(pid[1], file);
    const es = dtypeByteSize(dtype);
    let root = roots.get(key);
    if (!root) {
      root = new StorageRef(key, dtype, count(pid[4], `storage "${key}" size`, file) * es);
      roots.set(key, root);
    }
    const view = pid[5];
    if (isEmpty(view)) return root;
    if (!Array.isArray(view) || typeof view[0] !== 'string') throw new Img2PromptError(file, 'corrupt checkpoint: bad storage view');
    let s = views.get(view[0]);
    if (!s) {
      const offset = count(view[1], 'storage view offset', file) * es;
      s = new StorageRef(view[0], dtype, count(view[2], 'storage view size', file) * es, { root: key, byteOffset: offset });
      views.set(view[0], s);
    }
    return s;
  };
}

function parseLegacyHead(head: Uint8Array, file: string): LegacyHead {
  const plain = { file, globals: new Map<string, PickleGlobalHandler>() };
  let magic: UnpickleResult;
  try {
    magic = unpickle(head, plain);
  } catch (err) {
    if (err instanceof PickleTruncatedError) throw err;
    throw new Img2PromptError(file, 'not a PyTorch checkpoint: neither a torch.save zip archive nor its legacy format', { cause: err });
  }
  if (magic.value !== LEGACY_MAGIC) throw new Img2PromptError(file, 'not a PyTorch checkpoint: neither a torch.save zip archive nor its legacy format');
  const protocol = unpickle(head, plain, magic.end);
  if (protocol.value !== 1001) throw new Img2PromptError(file, `unsupported legacy torch.save protocol ${String(protocol.value)}`);
  const sysInfo = unpickle(head, plain, protocol.end);
  if (!(sysInfo.value instanceof Map) || sysInfo.value.get('little_endian') !== true) {
    throw new Img2PromptError(file, 'unsupported legacy checkpoint: not written on a little-endian machine');
  }
  const roots = new Map<string, StorageRef>();
  const main = unpickle(head, { file, globals: torchGlobals(file), persistentLoad: legacyPersistentLoad(file, roots) }, sysInfo.end);
  const keys = unpickle(head, plain, main.end);
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string')) throw new Img2PromptError(file, 'corrupt checkpoint: bad storage key list');
  return { root: main.value, keys: keys.value as string[], roots, dataStart: keys.end };
}

async function readLegacyCheckpoint(fh: fs.FileHandle, fileSize: number, file: string): Promise<SafetensorsFile> {
  // The pickles come first and their length is only known by parsing them: read a prefix, grow it if they run on.
  let head: LegacyHead | undefined;
  for (let length = Math.min(fileSize, 1 << 20); !head; length = Math.min(fileSize, length * 4)) {
    const bytes = Buffer.allocUnsafeSlow(length);
    await readFully(fh, bytes, 0, file);
    try {
      head = parseLegacyHead(bytes, file);
    } catch (err) {
      if (!(err instanceof PickleTruncatedError) || length >= Math.min(fileSize, MAX_PICKLE_BYTES)) throw err;
    }
  }
  const tensors = stateDictOf(head.root, file);
  const wanted = storageKeysOf(tensors);
  // Each storage's data sits after the previous one's: walk the key list for the offsets.
  const storages = new Map<string, Uint8Array>();
  let pos = head.dataStart;
  for (const key of head.keys) {
    const root = head.roots.get(key);
    if (!root) throw new Img2PromptError(file, `corrupt checkpoint: storage "${key}" is listed after the pickle but the pickle never names it`);
    const countBytes = new Uint8Array(8);
    await readFully(fh, countBytes, pos, file);
    const n = new DataView(countBytes.buffer).getBigInt64(0, true);
    if (n * BigInt(dtypeByteSize(root.dtype)) !== BigInt(root.nbytes)) {
      throw new Img2PromptError(file, `corrupt checkpoint: storage "${key}" holds ${n} elements, the pickle says ${root.nbytes / dtypeByteSize(root.dtype)}`);
    }
    if (pos + 8 + root.nbytes > fileSize) throw new Img2PromptError(file, `truncated: storage "${key}" ends past the end of the file`);
    if (wanted.has(key)) {
      const data = Buffer.allocUnsafeSlow(root.nbytes);
      await readFully(fh, data, pos + 8, file);
      storages.set(key, data);
    }
    pos += 8 + root.nbytes;
  }
  for (const key of wanted.keys()) if (!storages.has(key)) throw new Img2PromptError(file, `corrupt checkpoint: storage "${key}" has no data`);
  return assemble(file, tensors, (key) => storages.get(key)!);
}

/** The state dict of a torch.save file, as tensors in safetensors' in-memory shape. */
export async function readTorchCheckpoint(file: string): Promise<SafetensorsFile> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, 'r');
  } catch (err) {
    throw new Img2PromptError(file, `cannot open: ${errorMessage(err)}`, { cause: err });
  }
  try {
    const fileSize = (await fh.stat()).size;
    const head = new Uint8Array(Math.min(fileSize, 4));
    await readFully(fh, head, 0, file);
    if (looksLikeZip(head)) return await readZipCheckpoint(fh, fileSize, file);
    if (head[0] === 0x80) return await readLegacyCheckpoint(fh, fileSize, file);
    throw new Img2PromptError(file, 'not a PyTorch checkpoint: neither a torch.save zip archive nor its legacy format');
  } finally {
    await fh.close();
  }
}
