import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { ortLibraryDir } from '../native/addon.js';
import { ortVersion } from '../runtime/session.js';
import { modelHome } from '../models/cache.js';
import { downloadFile } from '../models/download.js';
import { hashFile } from '../models/sha256.js';
import type { PullEvent } from '../models/pull.js';
import { writeAtomically } from '../util/atomic-write.js';
import { Img2PromptError } from '../util/errors.js';
import { findProviderWheel, type WheelFile } from './pypi-wheel.js';
import { extractWheelMember, listWheelMembers, readWheelText } from './wheel-zip.js';
import type { ZipEntry } from '../models/zip-archive.js';
import type { AtomicFile } from '../util/atomic-write.js';
import { CUDA_PROVIDER_LIB, PROVIDER_LIBS, SHARED_PROVIDER_LIB, cudaReadiness, type CudaReadiness } from './readiness.js';
import { readOptions } from '../util/options.js';

/** Where the wheel keeps the provider libraries. */
const WHEEL_LIB_DIR = 'onnxruntime/capi/';

export interface GpuInstallOptions {
  /** Folder of libonnxruntime.so.1 to install beside (default: onnxruntime-node's, the one the addon loads). */
  ortDir?: string;
  /** onnxruntime-gpu version (default: the version of the loaded ONNX Runtime). */
  version?: string;
  /** Where the wheel is downloaded (resumably) and looked for first (default `$IMG2PROMPT_HOME/downloads`). */
  downloadDir?: string;
  /** Keep the 250 MB wheel after extracting (default: delete it). */
  keepWheel?: boolean;
  /** PyPI JSON API base (default IMG2PROMPT_PYPI_URL or https://pypi.org/pypi). */
  pypiBase?: string;
  onProgress?: (event: PullEvent) => void;
  /** Download tuning (tests use tiny delays). */
  retries?: number;
  retryDelayMs?: number;
}

export interface InstalledLibrary {
  path: string;
  size: number;
  sha256: string;
}

export interface GpuInstallResult {
  wheel: WheelFile;
  /** False when an already downloaded, verified wheel was used. */
  downloaded: boolean;
  libraries: InstalledLibrary[];
  readiness: CudaReadiness;
}

/** `<path>,sha256=<base64url>,<size>` lines of a wheel's RECORD → path → { sha256 hex, size }. */
export function parseWheelRecord(text: string): Map<string, { sha256: string; size: number }> {
  const out = new Map<string, { sha256: string; size: number }>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^([^,]+),sha256=([A-Za-z0-9_-]+),(\d+)$/.exec(line.trim());
    if (m) out.set(m[1]!, { sha256: Buffer.from(m[2]!, 'base64url').toString('hex'), size: Number(m[3]) });
  }
  return out;
}

/** The wheel in `dir` when it is already there whole (an earlier run, or a cache), else a fresh download. */
async function obtainWheel(wheel: WheelFile, dir: string, options: GpuInstallOptions): Promise<{ file: string; downloaded: boolean }> {
  const file = path.join(dir, wheel.filename);
  if (existsSync(file)) {
    const have = await hashFile(file);
    if (have.size === wheel.size && have.sha256 === wheel.sha256) return { file, downloaded: false };
    await fs.rm(file, { force: true }); // damaged or from another upload: fetch it again
  }
  await fs.mkdir(dir, { recursive: true });
  options.onProgress?.({ kind: 'stage', message: `downloading ${wheel.filename} (${(wheel.size / 1e6).toFixed(0)} MB)` });
  await downloadFile({
    url: wheel.url,
    dest: file,
    expectedSize: wheel.size,
    expectedSha256: wheel.sha256,
    retries: options.retries,
    retryDelayMs: options.retryDelayMs,
    onProgress: (received, total) => options.onProgress?.({ kind: 'bytes', file: wheel.filename, received, total }),
  });
  return { file, downloaded: true };
}

/** The wheel's member for `lib` and the size and hash its RECORD gives for it. */
function recordedMember(wheelFile: string, members: Map<string, ZipEntry>, record: Map<string, { sha256: string; size: number }>, lib: string) {
  const name = WHEEL_LIB_DIR + lib;
  const member = members.get(name);
  if (!member) throw new Img2PromptError(wheelFile, `the wheel has no ${name}`, { code: 'DOWNLOAD_FAILED' });
  const expected = record.get(name);
  if (!expected) throw new Img2PromptError(wheelFile, `the wheel's RECORD lists no hash for ${name}`, { code: 'DOWNLOAD_FAILED' });
  return { member, expected };
}

/**
 * Installs ORT's CUDA provider for the ONNX Runtime in use: finds the matching onnxruntime-gpu wheel
 * through PyPI's JSON API, downloads it (resumable, size and sha256 from PyPI checked), takes the two
 * provider libraries out of it, checks each against the wheel's RECORD and only then renames them
 * beside libonnxruntime.so.1, so a failure leaves the folder as it was. Then reports whether every
 * library they need resolves (see cudaReadiness).
 */
export async function installCudaProvider(options: GpuInstallOptions = {}): Promise<GpuInstallResult> {
  const o = readOptions(options, 'installCudaProvider()');
  options = {
    ortDir: o.string('ortDir', { nonEmpty: true }),
    version: o.string('version', { nonEmpty: true }),
    downloadDir: o.string('downloadDir', { nonEmpty: true }),
    keepWheel: o.bool('keepWheel'),
    pypiBase: o.string('pypiBase', { nonEmpty: true }),
    onProgress: o.func('onProgress'),
    retries: o.int('retries', { min: 0 }),
    retryDelayMs: o.number('retryDelayMs', { min: 0 }),
  };
  o.done();
  const ortDir = options.ortDir ?? ortLibraryDir();
  if (!existsSync(path.join(ortDir, 'libonnxruntime.so.1'))) {
    throw new Img2PromptError(ortDir, 'no libonnxruntime.so.1 here: the provider must go beside the ONNX Runtime library it is loaded by', { code: 'RUNTIME_FAILED' });
  }
  const version = options.version ?? ortVersion();
  options.onProgress?.({ kind: 'stage', message: `looking up onnxruntime-gpu ${version} on PyPI` });
  const wheel = await findProviderWheel(version, { base: options.pypiBase });
  const downloadDir = options.downloadDir ?? path.join(modelHome(), 'downloads');
  const { file, downloaded } = await obtainWheel(wheel, downloadDir, options);

  options.onProgress?.({ kind: 'stage', message: `extracting ${PROVIDER_LIBS.join(', ')} into ${ortDir}` });
  const members = await listWheelMembers(file);
  const recordName = [...members.keys()].find((n) => /^[^/]+\.dist-info\/RECORD$/.test(n));
  if (!recordName) throw new Img2PromptError(file, 'the wheel has no .dist-info/RECORD to check its files against', { code: 'DOWNLOAD_FAILED' });
  const record = parseWheelRecord(await readWheelText(file, members.get(recordName)!));
  const cuda = recordedMember(file, members, record, CUDA_PROVIDER_LIB);
  const shared = recordedMember(file, members, record, SHARED_PROVIDER_LIB);

  const libraries: InstalledLibrary[] = [];
  const extract = async (lib: string, entry: typeof cuda, out: AtomicFile) => {
    const got = await extractWheelMember(file, entry.member, (chunk) => out.write(chunk));
    if (got.size !== entry.expected.size || got.sha256 !== entry.expected.sha256) {
      throw new Img2PromptError(file, `${WHEEL_LIB_DIR}${lib} does not match the wheel's RECORD (sha256 ${got.sha256}, ${got.size} bytes)`, { code: 'DOWNLOAD_FAILED' });
    }
    await fs.chmod(out.tempPath, 0o755);
    libraries.push({ path: path.join(ortDir, lib), ...got });
  };
  // Both are written and checked before either is renamed; the CUDA library goes last, because its
  // presence is what tells sessions to try CUDA, and it cannot load without the shared one.
  await writeAtomically(path.join(ortDir, CUDA_PROVIDER_LIB), async (cudaOut) => {
    await extract(CUDA_PROVIDER_LIB, cuda, cudaOut);
    await writeAtomically(path.join(ortDir, SHARED_PROVIDER_LIB), (sharedOut) => extract(SHARED_PROVIDER_LIB, shared, sharedOut));
  });
  if (!options.keepWheel) await fs.rm(file, { force: true });
  return { wheel, downloaded, libraries, readiness: cudaReadiness({ ortDir }) };
}
