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
 * and plain containers (torch-tensors.ts), so nothing in the file is ever run. Tensors come back as safetensors'
 * in-memory shape (SafetensorsFile), so every consumer of weights reads both formats through one path. Only the
 * storages of the state dict's tensors are read (a training checkpoint's optimizer state is skipped), each into a
 * buffer of its own.
 */
import { promises as fs } from 'node:fs';
import { Img2PromptError } from '../util/errors.js';
import { dtypeByteSize, readFully, type SafetensorsFile } from './safetensors.js';
import { PickleTruncatedError, pickledTypeName, unpickle, type PickleGlobalHandler, type UnpickleResult } from './pickle.js';
import { StorageRef, assemble, isPickledEmpty, pickledCount, rootStorageKeys, stateDictOf, storageDtype, torchGlobals } from './torch-tensors.js';
import { looksLikeZip, readZipDirectory, readZipEntry, type ZipEntry } from './zip-archive.js';
import { openToRead } from '../util/open-to-read.js';

/** The legacy format's first pickle. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
/** A state dict's pickle is kilobytes; a data.pkl this large is not one. */
const MAX_PICKLE_BYTES = 256 * 1024 * 1024;

/** ('storage', storage class, key, location, element count) → the storage, one object per key in `seen`. */
function zipPersistentLoad(file: string, seen: Map<string, StorageRef>): (pid: unknown) => unknown {
  return (pid) => {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || typeof pid[2] !== 'string') {
      throw new Img2PromptError(file, `corrupt checkpoint: unexpected persistent id ${pickledTypeName(pid)}`, { code: 'FILE_INVALID' });
    }
    const key = pid[2];
    const dtype = storageDtype(pid[1], file);
    let s = seen.get(key);
    if (!s) {
      s = new StorageRef(key, dtype, pickledCount(pid[4], `storage "${key}" size`, file) * dtypeByteSize(dtype));
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
      'a TorchScript archive (torch.jit.save, like OpenAI\'s original CLIP .pt files), not a state dict: use the open_clip_pytorch_model.bin or safetensors release of the same weights', { code: 'FILE_INVALID' },
    );
  }
  if (!pkl) throw new Img2PromptError(file, 'a zip archive, but not one written by torch.save (no data.pkl)', { code: 'FILE_INVALID' });
  const order = entries.get(`${prefix}byteorder`);
  if (order) {
    const text = (await readZipEntry(fh, order, fileSize, file)).toString('latin1');
    if (text !== 'little') throw new Img2PromptError(file, `unsupported byte order "${text}" (only little-endian checkpoints are read)`, { code: 'FILE_INVALID' });
  }
  const pklEntry = entries.get(pkl)!;
  if (pklEntry.size > MAX_PICKLE_BYTES) throw new Img2PromptError(file, `data.pkl is ${pklEntry.size} bytes, too large for a state dict`, { code: 'FILE_INVALID' });
  const named = new Map<string, StorageRef>();
  const root = unpickle(await readZipEntry(fh, pklEntry, fileSize, file), {
    file,
    globals: torchGlobals(file),
    persistentLoad: zipPersistentLoad(file, named),
  }).value;
  const tensors = stateDictOf(root, file);
  const storages = new Map<string, Uint8Array>();
  for (const key of rootStorageKeys(tensors)) {
    const s = named.get(key)!;
    const entry: ZipEntry | undefined = entries.get(`${prefix}data/${key}`);
    if (!entry) throw new Img2PromptError(file, `truncated or corrupt checkpoint: storage data/${key} is missing`, { code: 'FILE_INVALID' });
    if (entry.size !== s.nbytes) throw new Img2PromptError(file, `corrupt checkpoint: storage data/${key} holds ${entry.size} bytes, the pickle says ${s.nbytes}`, { code: 'FILE_INVALID' });
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
      throw new Img2PromptError(file, 'a pickled nn.Module (torch.save(model)), not a state dict: save model.state_dict() instead', { code: 'FILE_INVALID' });
    }
    if (!Array.isArray(pid) || pid[0] !== 'storage' || typeof pid[2] !== 'string') {
      throw new Img2PromptError(file, `corrupt checkpoint: unexpected persistent id ${pickledTypeName(pid)}`, { code: 'FILE_INVALID' });
    }
    const key = pid[2];
    const dtype = storageDtype(pid[1], file);
    const es = dtypeByteSize(dtype);
    let root = roots.get(key);
    if (!root) {
      root = new StorageRef(key, dtype, pickledCount(pid[4], `storage "${key}" size`, file) * es);
      roots.set(key, root);
    }
    const view = pid[5];
    if (isPickledEmpty(view)) return root;
    if (!Array.isArray(view) || typeof view[0] !== 'string') throw new Img2PromptError(file, 'corrupt checkpoint: bad storage view', { code: 'FILE_INVALID' });
    let s = views.get(view[0]);
    if (!s) {
      const offset = pickledCount(view[1], 'storage view offset', file) * es;
      s = new StorageRef(view[0], dtype, pickledCount(view[2], 'storage view size', file) * es, { root: key, byteOffset: offset });
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
    throw new Img2PromptError(file, 'not a PyTorch checkpoint: neither a torch.save zip archive nor its legacy format', { code: 'FILE_INVALID', cause: err });
  }
  if (magic.value !== LEGACY_MAGIC) throw new Img2PromptError(file, 'not a PyTorch checkpoint: neither a torch.save zip archive nor its legacy format', { code: 'FILE_INVALID' });
  const protocol = unpickle(head, plain, magic.end);
  if (protocol.value !== 1001) throw new Img2PromptError(file, `unsupported legacy torch.save protocol ${String(protocol.value)}`, { code: 'FILE_INVALID' });
  const sysInfo = unpickle(head, plain, protocol.end);
  if (!(sysInfo.value instanceof Map) || sysInfo.value.get('little_endian') !== true) {
    throw new Img2PromptError(file, 'unsupported legacy checkpoint: not written on a little-endian machine', { code: 'FILE_INVALID' });
  }
  const roots = new Map<string, StorageRef>();
  const main = unpickle(head, { file, globals: torchGlobals(file), persistentLoad: legacyPersistentLoad(file, roots) }, sysInfo.end);
  const keys = unpickle(head, plain, main.end);
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string')) throw new Img2PromptError(file, 'corrupt checkpoint: bad storage key list', { code: 'FILE_INVALID' });
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
  const wanted = rootStorageKeys(tensors);
  // Each storage's data sits after the previous one's: walk the key list for the offsets.
  const storages = new Map<string, Uint8Array>();
  let pos = head.dataStart;
  for (const key of head.keys) {
    const root = head.roots.get(key);
    if (!root) throw new Img2PromptError(file, `corrupt checkpoint: storage "${key}" is listed after the pickle but the pickle never names it`, { code: 'FILE_INVALID' });
    const countBytes = new Uint8Array(8);
    await readFully(fh, countBytes, pos, file);
    const n = new DataView(countBytes.buffer).getBigInt64(0, true);
    if (n * BigInt(dtypeByteSize(root.dtype)) !== BigInt(root.nbytes)) {
      throw new Img2PromptError(file, `corrupt checkpoint: storage "${key}" holds ${n} elements, the pickle says ${root.nbytes / dtypeByteSize(root.dtype)}`, { code: 'FILE_INVALID' });
    }
    if (pos + 8 + root.nbytes > fileSize) throw new Img2PromptError(file, `truncated: storage "${key}" ends past the end of the file`, { code: 'FILE_INVALID' });
    if (wanted.has(key)) {
      const data = Buffer.allocUnsafeSlow(root.nbytes);
      await readFully(fh, data, pos + 8, file);
      storages.set(key, data);
    }
    pos += 8 + root.nbytes;
  }
  for (const key of wanted) if (!storages.has(key)) throw new Img2PromptError(file, `corrupt checkpoint: storage "${key}" has no data`, { code: 'FILE_INVALID' });
  return assemble(file, tensors, (key) => storages.get(key)!);
}

/** The state dict of a torch.save file, as tensors in safetensors' in-memory shape. */
export async function readTorchCheckpoint(file: string): Promise<SafetensorsFile> {
  const fh = await openToRead(file, 'the checkpoint');
  try {
    const fileSize = (await fh.stat()).size;
    const head = new Uint8Array(Math.min(fileSize, 4));
    await readFully(fh, head, 0, file);
    if (looksLikeZip(head)) return await readZipCheckpoint(fh, fileSize, file);
    if (head[0] === 0x80) return await readLegacyCheckpoint(fh, fileSize, file);
    throw new Img2PromptError(file, 'not a PyTorch checkpoint: neither a torch.save zip archive nor its legacy format', { code: 'FILE_INVALID' });
  } finally {
    await fh.close();
  }
}
