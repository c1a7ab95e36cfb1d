// img2prompt serve's limits and failures over real HTTP: 401/413/422/429/504 answers in the error
// shape, uploads that are empty, truncated or not images, clients that go away, CORS, and a graceful
// SIGTERM of the CLI. A random tiny CLIP and small label lists; predict is off (--no-predict).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InterrogateEngine } from '../src/index.js';
import { cliArgv } from './helpers/cli.js';
import { tempDir } from './helpers/paths.js';
import { copyKaggleImages, restoreHome, useTinyClipHome, writeSmallBankAndLabels } from './helpers/tiny-clip-home.js';
import { abandonRequest, hugePngHeader, metricValue, postImage, postJson, postMultipart, slowRequest, startServer, type StartedServer } from './helpers/serve.js';

const home = tempDir('img2prompt-serve-limits-home-');
const work = tempDir('img2prompt-serve-limits-work-');
let saved: string | undefined;
let labelsDir: string;
let png: Uint8Array;
let small: Uint8Array[];
let plain: StartedServer;
let strict: StartedServer;
let guarded: StartedServer;
let engine: InterrogateEngine;

const TOKEN = 'sekret-token-123';
const ORIGIN = 'https://app.example';

beforeAll(async () => {
  saved = await useTinyClipHome(home, 7);
  copyKaggleImages(path.join(work, 'images'));
  ({ labelsDir } = writeSmallBankAndLabels(work));
  const files = fs.readdirSync(path.join(work, 'images')).sort().map((f) => path.join(work, 'images', f));
  png = new Uint8Array(fs.readFileSync(files[0]!));
  small = await Promise.all(files.slice(0, 3).map(async (f) => new Uint8Array(await sharp(f).resize(32, 32).png().toBuffer())));
  const common = { model: 'tiny', labelsDir, predict: false };
  plain = await startServer({ ...common, maxWaitMs: 200 });
  // Kaggle images (~400 KB) are over its body limit; one request of 2 images fills its queue, and
  // its deadline passes before a batch's wait is over.
  strict = await startServer({ ...common, maxBodyMb: 0.25, queue: 2, maxWaitMs: 400, timeoutMs: 150 });
  guarded = await startServer({ ...common, token: TOKEN, cors: ORIGIN });
  engine = await InterrogateEngine.open({ model: 'tiny', labelsDir });
});

afterAll(async () => {
  await Promise.all([plain, strict, guarded].map((s) => s?.server.close()));
  engine?.close();
  restoreHome(saved);
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

/** Why InterrogateEngine cannot read `data` (its failure reason). */
async function failureOf(data: Uint8Array): Promise<string> {
  for await (const r of engine.run([{ id: 'x', data }])) return r.failure!;
  throw new Error('no result');
}

async function errorOf(res: Response): Promise<{ status: number; code: string; message: string }> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  expect(Object.keys(body)).toEqual(['error']);
  return { status: res.status, ...body.error };
}

describe('uploads that are not usable images', () => {
  it('answers a zero-byte, a truncated and a non-image upload with 422 naming the reason', async () => {
    expect(await errorOf(await postImage(`${plain.url}/v1/interrogate`, new Uint8Array(0)))).toEqual({
      status: 422, code: 'undecodable_image', message: 'image image: the upload is empty (0 bytes)',
    });
    const truncated = png.subarray(0, Math.floor(png.length / 2));
    const why = await failureOf(truncated);
    expect(why).toMatch(/truncated|corrupt|premature|end of/i);
    expect(await errorOf(await postImage(`${plain.url}/v1/interrogate?id=half`, truncated))).toEqual({ status: 422, code: 'undecodable_image', message: `image half: ${why}` });
    const text = new TextEncoder().encode('hello, I am a text file\n');
    const notImage = await failureOf(text);
    expect(await errorOf(await postImage(`${plain.url}/v1/embeddings/image`, text, 'image/jpeg'))).toEqual({ status: 422, code: 'undecodable_image', message: `image image: ${notImage}` });
  });

  it('answers a multipart body cut short with 400, and one without file parts with 400', async () => {
    const cut = '--XYZ\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\nabc';
    const res = await fetch(`${plain.url}/v1/interrogate`, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=XYZ' }, body: cut });
    const err = await errorOf(res);
    expect(err).toMatchObject({ status: 400, code: 'invalid_multipart' });
    expect(err.message).toMatch(/^the multipart body cannot be read: .+/);
    const form = new FormData();
    form.append('mode', 'fast');
    expect(await errorOf(await fetch(`${plain.url}/v1/interrogate`, { method: 'POST', body: form }))).toEqual({
      status: 400, code: 'no_images', message: 'the multipart body holds no file parts: send each image as a file part',
    });
  });

  it('answers an image over the pixel limit with 413, before decoding it', async () => {
    const huge = hugePngHeader(20_000, 20_000);
    const why = await failureOf(huge);
    expect(why).toBe('20000x20000 = 400,000,000 pixels is over the limit of 100,000,000 pixels (maxPixels, --max-pixels)');
    expect(await errorOf(await postImage(`${plain.url}/v1/interrogate`, huge))).toEqual({ status: 413, code: 'image_too_large', message: `image image: ${why}` });
    // In a multipart request it is listed with its error, beside the readable images.
    const res = await postMultipart(`${plain.url}/v1/interrogate`, [{ name: 'huge.png', data: huge }, { name: 'ok.png', data: small[0]! }]);
    const body = (await res.json()) as { results: Record<string, unknown>[] };
    expect(res.status).toBe(200);
    expect(body.results[0]).toEqual({ id: 'huge', error: { code: 'image_too_large', message: `image huge: ${why}` } });
    expect(body.results[1]).toMatchObject({ id: 'ok', prompt: expect.any(String) });
  });

  it('answers a body over --max-body-mb with 413, raw or multipart', async () => {
    expect(png.length).toBeGreaterThan(0.25 * 1024 * 1024);
    const raw = await errorOf(await postImage(`${strict.url}/v1/interrogate`, png));
    expect(raw).toMatchObject({ status: 413, code: 'body_too_large' });
    const parts = await errorOf(await postMultipart(`${strict.url}/v1/interrogate`, [{ name: 'big.png', data: png }]));
    expect(parts).toMatchObject({ status: 413, code: 'body_too_large' });
    const many = await errorOf(await postMultipart(`${strict.url}/v1/interrogate`, small.map((data, i) => ({ name: `s${i}.png`, data }))));
    expect(many).toEqual({ status: 413, code: 'too_many_images', message: 'a request may hold at most 2 images (the server\'s --queue)' });
  });
});

describe('queue and deadline', () => {
  it('answers 504 past the deadline and 429 with Retry-After while the queue is full; the queue empties', async () => {
    const first = postMultipart(`${strict.url}/v1/interrogate`, small.slice(0, 2).map((data, i) => ({ name: `q${i}.png`, data })));
    await new Promise((r) => setTimeout(r, 60));
    const busy = await postImage(`${strict.url}/v1/interrogate`, small[2]!);
    expect(busy.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
    expect(await errorOf(busy)).toEqual({ status: 429, code: 'queue_full', message: expect.stringMatching(/^the server is busy: 2 images are queued \(limit 2\); retry after \d+ s$/) });
    expect(await errorOf(await first)).toEqual({ status: 504, code: 'deadline_exceeded', message: 'the request did not finish within 150 ms (--timeout-ms)' });
    const metrics = await (await fetch(`${strict.url}/metrics`)).text();
    expect(metricValue(metrics, 'img2prompt_queue_depth')).toBe(0);
    // The timed-out images left the queue before any engine run.
    await new Promise((r) => setTimeout(r, 500));
    const later = await (await fetch(`${strict.url}/metrics`)).text();
    expect(metricValue(later, 'img2prompt_batch_size_count{lane="interrogate"}')).toBe(0);
    expect(metricValue(later, 'img2prompt_http_requests_total{method="POST",route="/v1/interrogate",status="429"}')).toBe(1);
    expect(metricValue(later, 'img2prompt_http_requests_total{method="POST",route="/v1/interrogate",status="504"}')).toBe(1);
  });
});

describe('clients that go away', () => {
  it('survives a client that drops mid-body or while its image is queued, and answers the next request', async () => {
    const before = await (await fetch(`${plain.url}/metrics`)).text();
    const head = (length: number) => `POST /v1/interrogate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: ${length}\r\n\r\n`;
    await abandonRequest(plain.port, head(png.length), png.subarray(0, 1000));
    await abandonRequest(plain.port, head(png.length), png, 30);
    await new Promise((r) => setTimeout(r, 400));
    const after = await (await fetch(`${plain.url}/metrics`)).text();
    // The queued image left the queue with its client: no engine run took it.
    expect(metricValue(after, 'img2prompt_batch_size_sum{lane="interrogate"}')).toBe(metricValue(before, 'img2prompt_batch_size_sum{lane="interrogate"}'));
    expect(metricValue(after, 'img2prompt_queue_depth')).toBe(0);
    const res = await postImage(`${plain.url}/v1/interrogate`, png);
    expect(res.status).toBe(200);
    let expected: string | null = null;
    for await (const r of engine.run([{ id: 'x', data: png }])) expected = r.prompt;
    expect(((await res.json()) as { results: { prompt: string }[] }).results[0]!.prompt).toBe(expected);
  });
});

describe('slow clients', () => {
  it('answers other requests while a client trickles its upload, then answers that client too', async () => {
    const body = small[1]!;
    const head = `POST /v1/interrogate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: ${body.length}\r\n\r\n`;
    const t0 = performance.now();
    const slow = slowRequest(plain.port, head, body, Math.ceil(body.length / 40), 50);
    const fast = await postImage(`${plain.url}/v1/interrogate`, small[0]!);
    expect(fast.status).toBe(200);
    // The quick request did not wait for the slow upload (about two seconds).
    expect(performance.now() - t0).toBeLessThan(1500);
    expect(await slow).toBe('HTTP/1.1 200 OK');
    expect(performance.now() - t0).toBeGreaterThan(1900);
  });
});

describe('token, CORS, predict off', () => {
  it('with --token, every /v1 route needs the bearer token (401 otherwise); health and metrics do not', async () => {
    const url = `${guarded.url}/v1/similarity`;
    const none = await postJson(url, { a: 'x', b: 'y' });
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    expect(await errorOf(none)).toEqual({ status: 401, code: 'unauthorized', message: 'this server needs a token: send `Authorization: Bearer <token>`' });
    expect((await postJson(url, { a: 'x', b: 'y' }, { authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await postImage(`${guarded.url}/v1/interrogate`, small[0]!)).status).toBe(401);
    // Another spelling of the same route is the same route.
    for (const spelled of ['/%761/similarity', '/v1/similarity/', '/v1/similarity?x=/healthz']) {
      const res = await postJson(`${guarded.url}${spelled}`, { a: 'x', b: 'y' });
      expect(res.status, spelled).not.toBe(200);
      expect([401, 404], spelled).toContain(res.status);
    }
    const ok = await postJson(url, { a: 'x', b: 'x' }, { authorization: `Bearer ${TOKEN}` });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { similarity: number }).similarity).toBeCloseTo(1, 6);
    expect((await fetch(`${guarded.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${guarded.url}/metrics`)).status).toBe(200);
  });

  it('sends CORS headers only for the --cors origin, answers its preflight, and none without --cors', async () => {
    const pre = await fetch(`${guarded.url}/v1/interrogate`, { method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': 'POST' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    expect(pre.headers.get('access-control-allow-headers')).toContain('authorization');
    const other = await fetch(`${guarded.url}/healthz`, { headers: { origin: 'https://evil.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    const off = await fetch(`${plain.url}/healthz`, { headers: { origin: ORIGIN } });
    expect(off.headers.get('access-control-allow-origin')).toBeNull();
    expect((await fetch(`${plain.url}/v1/interrogate`, { method: 'OPTIONS', headers: { origin: ORIGIN } })).status).toBe(404);
  });

  it('answers /v1/predict with 404 when predict is off, and still serves MiniLM', async () => {
    expect(await errorOf(await postImage(`${plain.url}/v1/predict`, small[0]!))).toEqual({
      status: 404, code: 'predict_disabled', message: 'predict is not served: the server was started with --no-predict',
    });
    expect(await (await fetch(`${plain.url}/readyz`)).json()).toMatchObject({ status: 'ready', predict: false });
    const sim = (await (await postJson(`${plain.url}/v1/similarity`, { a: 'a cat', b: 'a cat' })).json()) as { similarity: number };
    expect(sim.similarity).toBeCloseTo(1, 6);
  });
});

describe('odd requests', () => {
  it('answers each with a status and, for errors, the error shape; the server stays up', async () => {
    const u = plain.url;
    const json = { 'content-type': 'application/json' };
    const cases: [string, RequestInit, number, string?][] = [
      ['/v1/similarity', { method: 'POST', headers: json, body: '[1, 2]' }, 415, 'unsupported_media_type'],
      ['/v1/similarity', { method: 'POST', headers: json, body: '{"a": 1, "b": 2}' }, 400, 'invalid_body'],
      ['/v1/similarity', { method: 'POST', headers: json, body: '{"a": ["x"], "b": ["y", "z"]}' }, 400, 'invalid_body'],
      ['/v1/similarity', { method: 'POST', headers: json, body: '' }, 400, 'bad_request'],
      ['/v1/embeddings/text', { method: 'POST', headers: json, body: JSON.stringify({ texts: ['x'], model: 'bert' }) }, 400, 'invalid_body'],
      ['/v1/embeddings/text', { method: 'POST', headers: json, body: JSON.stringify({ texts: Array(1025).fill('x') }) }, 413, 'too_many_texts'],
      ['/v1/embeddings/text', { method: 'POST', headers: json, body: JSON.stringify({ texts: [] }) }, 400, 'invalid_body'],
      ['/v1/interrogate?maxFlavors=-1', { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(small[0]!) }, 400, 'invalid_option'],
      ['/v1/interrogate?score=maybe', { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(small[0]!) }, 400, 'invalid_option'],
      ['/v1/interrogate', { method: 'POST' }, 415, 'unsupported_media_type'],
      ['/v1/interrogate', { method: 'GET' }, 404, 'not_found'],
      ['/v1/interrogate?mode=best', { method: 'POST', headers: { 'content-type': 'image/webp' }, body: new Uint8Array(small[1]!) }, 200],
      ['/v1/interrogate?mode=negative&maxFlavors=3', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(small[2]!) }, 200],
    ];
    for (const [route, init, status, code] of cases) {
      const res = await fetch(`${u}${route}`, init);
      expect(res.status, `${init.method} ${route}`).toBe(status);
      const body = (await res.json()) as { error?: { code: string; message: string } };
      if (code) expect(body.error?.code, route).toBe(code);
      else expect(body.error, route).toBeUndefined();
    }
    expect((await fetch(`${u}/healthz`)).status).toBe(200);
  });
});

describe('readiness', () => {
  it('says 503 on /readyz and the /v1 routes, naming the fix, when the models cannot be loaded', async () => {
    const { createServer } = await import('../src/server/app.js');
    const server = createServer({ model: 'not-installed', labelsDir, predict: false, port: 0 });
    try {
      const { url } = await server.listen();
      await expect(server.ready).rejects.toThrow(/not-installed/);
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      const ready = await errorOf(await fetch(`${url}/readyz`));
      expect(ready).toMatchObject({ status: 503, code: 'load_failed' });
      expect(ready.message).toMatch(/^the models could not be loaded: .*not-installed.*models pull/);
      expect(await errorOf(await postJson(`${url}/v1/similarity`, { a: 'x', b: 'y' }))).toMatchObject({ status: 503, code: 'load_failed' });
    } finally {
      await server.close();
    }
  });
});

describe('img2prompt serve (CLI)', () => {
  it('binds 127.0.0.1, and on SIGTERM finishes the request in flight, then exits 0', async () => {
    const child = spawn(process.execPath, cliArgv(['serve', '--port', '0', '--model', 'tiny', '--labels-dir', labelsDir, '--no-predict', '--max-wait-ms', '400']), {
      env: { ...process.env, IMG2PROMPT_HOME: home, IMG2PROMPT_PROGRESS: '0' },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setInterval(() => {
        const m = /ready on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
        if (m) {
          clearInterval(timer);
          resolve(m[1]!);
        }
      }, 50);
      void exited.then((code) => {
        clearInterval(timer);
        reject(new Error(`serve exited ${code} before it was ready: ${stderr}`));
      });
    });
    const inFlight = postImage(`${url}/v1/interrogate`, small[0]!);
    await new Promise((r) => setTimeout(r, 150));
    const t0 = performance.now();
    child.kill('SIGTERM');
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { results: { prompt: string }[] }).results[0]!.prompt).toBeTruthy();
    expect(await exited).toBe(0);
    // Promptly: a kept-alive connection must not hold the exit until its idle timeout (72 s).
    expect(performance.now() - t0).toBeLessThan(20_000);
    expect(stderr).toContain('SIGTERM: finishing in-flight requests, then exiting');
    expect(stderr).toContain('img2prompt serve: stopped');
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });
});
