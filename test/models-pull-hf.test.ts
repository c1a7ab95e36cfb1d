import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startFixtureServer, type FixtureServer } from './helpers/http-server.js';
import { pullModel, verifyModel, type PullEvent } from '../src/models/pull.js';
import { modelDir, modelsRoot, readInstallRecord } from '../src/models/cache.js';
import { DownloadInterruptedError } from '../src/models/download.js';
import type { ModelManifest } from '../src/models/manifest.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

// Small stand-ins for a model: a "weights" file big enough to be cut mid-way, and two JSON files,
// one in a subfolder like MiniLM's 1_Pooling/config.json.
const weights = randomBytes(300_000);
const config = Buffer.from('{"hidden_size": 8}\n');
const pooling = Buffer.from('{"pooling_mode_mean_tokens": true}\n');
const FILES: Record<string, Buffer> = { 'config.json': config, '1_Pooling/config.json': pooling, 'model.safetensors': weights };
const REPO = 'test-org/tiny-model';
const routeOf = (file: string, revision = 'main') => `/${REPO}/resolve/${revision}/${file}`;

function manifest(overrides: Partial<Record<string, { sha256?: string | null; size?: number | null }>> = {}): ModelManifest {
  return {
    name: 'tiny',
    description: 'fixture',
    modelId: REPO,
    license: 'MIT',
    files: Object.entries(FILES).map(([p, b]) => ({
      path: p,
      size: overrides[p]?.size !== undefined ? (overrides[p]!.size as number | null) : b.length,
      sha256: overrides[p]?.sha256 !== undefined ? (overrides[p]!.sha256 as string | null) : sha(b),
    })),
    // The endpoint must be overridden by IMG2PROMPT_HF_ENDPOINT; .invalid never resolves.
    sources: { hf: { repo: REPO, revision: 'main', endpoint: 'https://hub.invalid' } },
  };
}

let server: FixtureServer;
let home: string;
const savedEnv = { ...process.env };
const fast = { retries: 3, retryDelayMs: 5 };

function serveAll(revision = 'main') {
  for (const [p, b] of Object.entries(FILES)) server.route(routeOf(p, revision), { body: b });
}

async function leftovers(): Promise<string[]> {
  return (await fs.readdir(modelsRoot()).catch(() => [] as string[])).filter((e) => e.startsWith('.'));
}

beforeEach(async () => {
  home = await fs.mkdtemp(path.join(os.tmpdir(), 'img2prompt-hf-'));
  server = await startFixtureServer();
  process.env.IMG2PROMPT_HOME = home;
  process.env.IMG2PROMPT_HF_ENDPOINT = server.url;
  delete process.env.HF_ENDPOINT;
});

afterEach(async () => {
  await server.close();
  process.env = { ...savedEnv };
  await fs.rm(home, { recursive: true, force: true });
});

describe('pullModel --source hf', () => {
  it('downloads, verifies and installs every file, then skips a second pull', async () => {
    serveAll();
    const events: PullEvent[] = [];
    const result = await pullModel('tiny', { source: 'hf', manifest: manifest(), onProgress: (e) => events.push(e), ...fast });
    expect(result.status).toBe('installed');
    expect(result.dir).toBe(path.join(home, 'models', 'tiny'));
    for (const [p, b] of Object.entries(FILES)) {
      expect(sha(await fs.readFile(path.join(result.dir, p)))).toBe(sha(b));
      expect(server.requestsFor(routeOf(p))).toEqual([{ path: routeOf(p), range: undefined, status: 200, sent: b.length }]);
    }
    const record = await readInstallRecord(result.dir);
    expect(record).toMatchObject({ name: 'tiny', source: 'hf', random: false, revision: 'main', modelId: REPO });
    expect(record.origin).toBe(`${server.url}/${REPO}/resolve/main/`);
    expect(record.files).toEqual(Object.entries(FILES).map(([p, b]) => ({ path: p, size: b.length, sha256: sha(b), pinned: true })));

    const bytes = events.filter((e) => e.kind === 'bytes');
    const total = weights.length + config.length + pooling.length;
    expect(bytes.at(-1)).toMatchObject({ received: total, total });
    expect(await leftovers()).toEqual([]);

    const before = server.requests.length;
    const again = await pullModel('tiny', { source: 'hf', manifest: manifest(), ...fast });
    expect(again.status).toBe('already-installed');
    expect(server.requests.length).toBe(before);
    await expect(verifyModel('tiny')).resolves.toMatchObject({ files: 3, bytes: total });
  });

  it('resumes with a Range request after the connection drops mid-file', async () => {
    serveAll();
    server.route(routeOf('model.safetensors'), { body: weights, plan: [{ drop: 123_457 }] });
    await pullModel('tiny', { source: 'hf', manifest: manifest(), ...fast });
    const reqs = server.requestsFor(routeOf('model.safetensors'));
    expect(reqs).toEqual([
      { path: routeOf('model.safetensors'), range: undefined, status: 200, sent: 123_457 },
      { path: routeOf('model.safetensors'), range: 'bytes=123457-', status: 206, sent: weights.length - 123_457 },
    ]);
    expect(sha(await fs.readFile(path.join(modelDir('tiny'), 'model.safetensors')))).toBe(sha(weights));
  });

  it('keeps Range across a redirect (the hub sends LFS files to a CDN)', async () => {
    serveAll();
    server.route(routeOf('model.safetensors'), { body: Buffer.alloc(0), redirectTo: '/cdn/blob-1' });
    server.route('/cdn/blob-1', { body: weights, plan: [{ drop: 50_000 }] });
    await pullModel('tiny', { source: 'hf', manifest: manifest(), ...fast });
    expect(server.requestsFor('/cdn/blob-1').map((r) => r.range)).toEqual([undefined, 'bytes=50000-']);
    expect(server.requestsFor(routeOf('model.safetensors')).map((r) => r.range)).toEqual([undefined, 'bytes=50000-']);
    expect(sha(await fs.readFile(path.join(modelDir('tiny'), 'model.safetensors')))).toBe(sha(weights));
  });

  it('restarts from byte 0 when the server ignores Range', async () => {
    serveAll();
    server.route(routeOf('model.safetensors'), { body: weights, ignoreRange: true, plan: [{ drop: 200_000 }] });
    const events: PullEvent[] = [];
    await pullModel('tiny', { source: 'hf', manifest: manifest(), onProgress: (e) => events.push(e), ...fast });
    const reqs = server.requestsFor(routeOf('model.safetensors'));
    expect(reqs.map((r) => [r.range, r.status, r.sent])).toEqual([
      [undefined, 200, 200_000],
      ['bytes=200000-', 200, weights.length], // asked to resume, got the whole file again
    ]);
    expect(sha(await fs.readFile(path.join(modelDir('tiny'), 'model.safetensors')))).toBe(sha(weights));
    // The model's byte count went back for the restart and still ended at the full size.
    const received = events.flatMap((e) => (e.kind === 'bytes' && e.file === 'model.safetensors' ? [e.received] : []));
    const small = config.length + pooling.length;
    expect(received).toContain(small + 200_000);
    expect(received.lastIndexOf(small)).toBeGreaterThan(received.indexOf(small + 200_000)); // back to 0 bytes of the file
    expect(received.at(-1)).toBe(small + weights.length);
  });

  it('retries 5xx answers with backoff', async () => {
    serveAll();
    server.route(routeOf('config.json'), { body: config, plan: [{ status: 503 }, { status: 502 }] });
    await pullModel('tiny', { source: 'hf', manifest: manifest(), ...fast });
    expect(server.requestsFor(routeOf('config.json')).map((r) => r.status)).toEqual([503, 502, 200]);
  });

  it('fails clearly on 404 and installs nothing', async () => {
    serveAll();
    server.route(routeOf('config.json'), { body: config, status: 404 });
    const err = await pullModel('tiny', { source: 'hf', manifest: manifest(), ...fast }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe(`${server.url}${routeOf('config.json')}: HTTP 404 Not Found`);
    expect(server.requestsFor(routeOf('config.json'))).toHaveLength(1); // no retries for a 404
    await expect(fs.stat(modelDir('tiny'))).rejects.toThrow(/ENOENT/);
    expect(await leftovers()).toEqual([]);
  });

  it('rejects wrong bytes with "sha256 mismatch" and keeps nothing', async () => {
    serveAll();
    const wrong = Buffer.from(weights);
    wrong[1000] ^= 0xff;
    server.route(routeOf('model.safetensors'), { body: wrong });
    const err = await pullModel('tiny', { source: 'hf', manifest: manifest(), ...fast }).catch((e: Error) => e);
    expect((err as Error).message).toBe(
      `${server.url}${routeOf('model.safetensors')}: sha256 mismatch: expected ${sha(weights)}, got ${sha(wrong)} (download deleted)`,
    );
    await expect(fs.stat(modelDir('tiny'))).rejects.toThrow(/ENOENT/);
    expect(await leftovers()).toEqual([]);
  });

  it('rejects a file of the wrong length before downloading it', async () => {
    serveAll();
    server.route(routeOf('config.json'), { body: Buffer.from('{"hidden_size": 9999}\n') });
    await expect(pullModel('tiny', { source: 'hf', manifest: manifest(), ...fast })).rejects.toThrow(
      `server reports 22 bytes, expected ${config.length}: wrong file or changed upstream`,
    );
    await expect(fs.stat(modelDir('tiny'))).rejects.toThrow(/ENOENT/);
  });

  it('leaves an existing install untouched when a forced re-pull fails', async () => {
    serveAll();
    await pullModel('tiny', { source: 'hf', manifest: manifest(), ...fast });
    const recordBefore = await fs.readFile(path.join(modelDir('tiny'), 'manifest.json'), 'utf8');

    const wrong = randomBytes(weights.length);
    server.route(routeOf('model.safetensors'), { body: wrong });
    await expect(pullModel('tiny', { source: 'hf', manifest: manifest(), force: true, ...fast })).rejects.toThrow(/sha256 mismatch/);
    server.route(routeOf('model.safetensors'), { body: weights });
    server.route(routeOf('config.json'), { body: config, status: 404 });
    await expect(pullModel('tiny', { source: 'hf', manifest: manifest(), force: true, ...fast })).rejects.toThrow(/HTTP 404/);

    expect(await fs.readFile(path.join(modelDir('tiny'), 'manifest.json'), 'utf8')).toBe(recordBefore);
    expect(sha(await fs.readFile(path.join(modelDir('tiny'), 'model.safetensors')))).toBe(sha(weights));
    await expect(verifyModel('tiny')).resolves.toMatchObject({ files: 3 });
    expect(await leftovers()).toEqual([]);
  });

  it('keeps partial bytes after giving up and resumes them on the next pull', async () => {
    serveAll();
    server.route(routeOf('model.safetensors'), { body: weights, plan: [{ drop: 70_000 }, { status: 503 }, { status: 503 }] });
    const err = await pullModel('tiny', { source: 'hf', manifest: manifest(), retries: 1, retryDelayMs: 5 }).catch((e) => e);
    expect(err).toBeInstanceOf(DownloadInterruptedError);
    expect((err as Error).message).toMatch(/download failed after 3 attempts \(HTTP 503 Service Unavailable\); 70000 of 300000 bytes kept in .*model\.safetensors\.part, run the pull again to resume/);
    await expect(fs.stat(modelDir('tiny'))).rejects.toThrow(/ENOENT/);

    const result = await pullModel('tiny', { source: 'hf', manifest: manifest(), ...fast });
    expect(result.status).toBe('installed');
    const reqs = server.requestsFor(routeOf('model.safetensors'));
    expect(reqs.at(-1)).toMatchObject({ range: 'bytes=70000-', status: 206, sent: weights.length - 70_000 });
    // The two small files finished in the first run and were reused, not fetched again.
    expect(server.requestsFor(routeOf('config.json'))).toHaveLength(1);
    expect(sha(await fs.readFile(path.join(modelDir('tiny'), 'model.safetensors')))).toBe(sha(weights));
    expect(await leftovers()).toEqual([]);
  });

  it('records the first download hash when the manifest has none (trust on first use)', async () => {
    serveAll();
    const result = await pullModel('tiny', { source: 'hf', manifest: manifest({ 'config.json': { sha256: null, size: null } }), ...fast });
    const entry = result.record.files.find((f) => f.path === 'config.json');
    expect(entry).toEqual({ path: 'config.json', size: config.length, sha256: sha(config), pinned: false });
    await fs.appendFile(path.join(result.dir, 'config.json'), ' ');
    await expect(verifyModel('tiny')).rejects.toThrow(`wrong size: ${config.length + 1} bytes, expected ${config.length}`);
  });

  it('downloads a pinned revision with --revision', async () => {
    serveAll('1110a243');
    const result = await pullModel('tiny', { source: 'hf', manifest: manifest(), revision: '1110a243', ...fast });
    expect(result.record.revision).toBe('1110a243');
    expect(server.requests.every((r) => r.path.includes('/resolve/1110a243/'))).toBe(true);
  });
});
