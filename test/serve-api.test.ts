// img2prompt serve's JSON API over real HTTP on 127.0.0.1, with a random tiny CLIP, a small prompt
// bank and label lists: every route gives what the engines give in-process for the same bytes.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InterrogateEngine, PredictEngine, openMiniLMEmbedder, type InterrogatedImage, type TextEmbedder } from '../src/index.js';
import { cosine } from '../src/submission/score.js';
import { tempDir } from './helpers/paths.js';
import { copyKaggleImages, restoreHome, useTinyClipHome, writeSmallBankAndLabels } from './helpers/tiny-clip-home.js';
import { metricValue, postImage, postJson, postMultipart, startServer, type StartedServer } from './helpers/serve.js';

const home = tempDir('img2prompt-serve-home-');
const work = tempDir('img2prompt-serve-work-');
let saved: string | undefined;
let bankFile: string;
let labelsDir: string;
let images: { name: string; data: Uint8Array }[];
let served: StartedServer;
let interrogator: InterrogateEngine;
let predictor: PredictEngine;
let minilm: TextEmbedder;

beforeAll(async () => {
  saved = await useTinyClipHome(home, 5);
  copyKaggleImages(path.join(work, 'images'));
  ({ bankFile, labelsDir } = writeSmallBankAndLabels(work));
  images = fs.readdirSync(path.join(work, 'images')).sort().map((f) => ({ name: f, data: new Uint8Array(fs.readFileSync(path.join(work, 'images', f))) }));
  served = await startServer({ model: 'tiny', labelsDir, promptsBank: [bankFile], maxWaitMs: 150 });
  interrogator = await InterrogateEngine.open({ model: 'tiny', labelsDir });
  predictor = await PredictEngine.open({ model: 'tiny', labelsDir, promptsBank: [bankFile], members: ['knn', 'interrogator'] });
  minilm = await openMiniLMEmbedder();
});

afterAll(async () => {
  await served?.server.close();
  interrogator?.close();
  predictor?.close();
  minilm?.close?.();
  restoreHome(saved);
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

async function inProcess(inputs: Uint8Array[], options: Parameters<InterrogateEngine['run']>[1] = {}): Promise<InterrogatedImage[]> {
  const out: InterrogatedImage[] = [];
  for await (const r of interrogator.run(inputs.map((data, i) => ({ id: `x${i}`, data })), { batchSize: 32, ...options })) out.push(r);
  return out;
}

const asServed = (r: InterrogatedImage) => ({
  prompt: r.prompt, similarity: r.similarity, labels: r.labels.map((l) => ({ bank: l.bank, label: l.label, similarity: l.score })),
});

describe('health, readiness, OpenAPI', () => {
  it('answers /healthz and /readyz, and describes every route in OpenAPI 3.1', async () => {
    expect(await (await fetch(`${served.url}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${served.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', model: interrogator.clip.modelId, predict: true });
    const doc = (await (await fetch(`${served.url}/openapi.json`)).json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths).sort()).toEqual(['/healthz', '/metrics', '/openapi.json', '/readyz', '/v1/embeddings/image', '/v1/embeddings/text', '/v1/interrogate', '/v1/predict', '/v1/similarity']);
    for (const p of ['/v1/interrogate', '/v1/predict', '/v1/embeddings/image']) {
      expect(Object.keys((doc.paths[p]!.post as { responses: object }).responses)).toEqual(expect.arrayContaining(['200', '401', '413', '422', '429', '504']));
    }
  });

  it('answers an unknown route with a JSON 404', async () => {
    const res = await fetch(`${served.url}/v2/nothing?x=1`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: 'not_found', message: 'no route GET /v2/nothing' } });
  });
});

describe('POST /v1/interrogate', () => {
  it('gives, for one image sent as the body, the prompt, similarity and labels InterrogateEngine gives in-process', async () => {
    const res = await postImage(`${served.url}/v1/interrogate?id=first`, images[0]!.data);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { model: string; mode: string; results: object[] };
    const [expected] = await inProcess([images[0]!.data]);
    expect(body).toEqual({ model: interrogator.clip.modelId, mode: 'fast', results: [{ id: 'first', ...asServed(expected!) }] });
    expect(expected!.prompt).toBeTruthy();
  });

  it('takes mode, maxFlavors and score from the query', async () => {
    const res = await postImage(`${served.url}/v1/interrogate?mode=classic&maxFlavors=2&score=0`, images[1]!.data);
    const body = (await res.json()) as { mode: string; results: { id: string; prompt: string; similarity: number | null }[] };
    const [expected] = await inProcess([images[1]!.data], { mode: 'classic', maxFlavors: 2, score: false });
    expect(body.mode).toBe('classic');
    expect(body.results).toEqual([{ id: 'image', ...asServed(expected!), similarity: null }]);
  });

  it('takes several images as multipart (options as fields), in order, listing an unreadable one with its error', async () => {
    const junk = { name: 'junk.png', data: new TextEncoder().encode('this is not an image') };
    const parts = [images[2]!, junk, images[3]!, images[4]!];
    const res = await postMultipart(`${served.url}/v1/interrogate`, parts, { mode: 'classic' });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { mode: string; results: Record<string, unknown>[] };
    const expected = await inProcess(parts.map((p) => p.data), { mode: 'classic' });
    expect(body.mode).toBe('classic');
    expect(body.results.map((r) => r.id)).toEqual([images[2]!.name.replace('.png', ''), 'junk', images[3]!.name.replace('.png', ''), images[4]!.name.replace('.png', '')]);
    expect(body.results[1]).toEqual({ id: 'junk', error: { code: 'undecodable_image', message: `image junk: ${expected[1]!.failure}` } });
    expect([body.results[0], body.results[2], body.results[3]]).toEqual([0, 2, 3].map((i) => ({ id: body.results[i]!.id, ...asServed(expected[i]!) })));
  });

  it('refuses an unknown mode with 400 and a body that is not an image upload with 415', async () => {
    const bad = await postImage(`${served.url}/v1/interrogate?mode=slow`, images[0]!.data);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: { code: 'invalid_option', message: 'mode must be one of fast, classic, best, negative, got "slow"' } });
    const text = await fetch(`${served.url}/v1/interrogate`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'a.png' });
    expect(text.status).toBe(415);
    expect(((await text.json()) as { error: { code: string } }).error.code).toBe('unsupported_media_type');
    // A path in JSON is not an input: nothing over HTTP reads the server's files.
    const json = await postJson(`${served.url}/v1/interrogate`, { path: '/etc/passwd' });
    expect(json.status).toBe(415);
  });
});

describe('POST /v1/predict', () => {
  it('gives the prompt, nearest bank prompt and member prompts PredictEngine gives, and the vector only when asked', async () => {
    const expected = [];
    for await (const r of predictor.run([{ id: 'p', data: images[5]!.data }], { batchSize: 32 })) expected.push(r);
    const e = expected[0]!;
    const plain = (await (await postImage(`${served.url}/v1/predict`, images[5]!.data)).json()) as { model: string; members: string[]; results: Record<string, unknown>[] };
    expect(plain.members).toEqual(['knn', 'interrogator']);
    expect(plain.results).toEqual([{
      id: 'image', prompt: e.prompt, caption: null, nearestPrompt: e.nearestPrompt,
      memberPrompts: { interrogator: e.prompt, knn: e.nearestPrompt!.text }, members: Object.keys(e.members), fallback: false,
    }]);
    expect(e.nearestPrompt!.text.length).toBeGreaterThan(0);
    const withVector = (await (await postImage(`${served.url}/v1/predict?vector=1`, images[5]!.data)).json()) as { results: { vector: number[] }[] };
    expect(withVector.results[0]!.vector).toEqual(Array.from(e.vector));
    expect(withVector.results[0]!.vector).toHaveLength(384);
  });
});

describe('embeddings and similarity', () => {
  it('POST /v1/embeddings/image gives the CLIP embedding of the bytes', async () => {
    const body = (await (await postImage(`${served.url}/v1/embeddings/image`, images[6]!.data)).json()) as { model: string; dim: number; results: { id: string; embedding: number[] }[] };
    const expected = await interrogator.clip.encodeImages([{ id: 'e', data: images[6]!.data }]);
    expect(body.model).toBe(interrogator.clip.modelId);
    expect(body.dim).toBe(interrogator.clip.dim);
    expect(body.results).toEqual([{ id: 'image', embedding: Array.from(expected.embeds) }]);
  });

  it('POST /v1/embeddings/text gives CLIP and MiniLM text embeddings', async () => {
    const texts = ['a red fox in the snow', 'portrait of an astronaut, oil painting'];
    const clip = (await (await postJson(`${served.url}/v1/embeddings/text`, { texts, model: 'clip' })).json()) as { dim: number; embeddings: number[][] };
    const clipExpected = await interrogator.clip.encodeTexts(texts);
    expect(clip.dim).toBe(interrogator.clip.dim);
    expect(clip.embeddings.flat()).toEqual(Array.from(clipExpected));
    const mini = (await (await postJson(`${served.url}/v1/embeddings/text`, { texts })).json()) as { model: string; dim: number; embeddings: number[][] };
    const miniExpected = await minilm.embed(texts);
    expect(mini.dim).toBe(384);
    expect(mini.model).toMatch(/^minilm@[0-9a-f]{16}$/);
    expect(mini.embeddings.flat()).toEqual(Array.from(miniExpected));
    const bad = await postJson(`${served.url}/v1/embeddings/text`, { texts: 'one text' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: { code: 'invalid_body', message: 'texts must be an array of strings' } });
  });

  it('POST /v1/similarity gives the metric\'s cosine between two prompts, or pairwise over two lists', async () => {
    const a = 'a castle on a hill at sunset, matte painting';
    const b = 'a fortress on a mountain at dusk, digital art';
    const v = await minilm.embed([a, b]);
    const one = (await (await postJson(`${served.url}/v1/similarity`, { a, b })).json()) as { similarity: number };
    expect(one.similarity).toBe(cosine(v, 0, v, 384, 384));
    expect(one.similarity).toBeGreaterThan(0.3);
    expect(one.similarity).toBeLessThan(0.99);
    const pairs = (await (await postJson(`${served.url}/v1/similarity`, { a: [a, a], b: [b, a] })).json()) as { similarities: number[] };
    expect(pairs.similarities[0]).toBeCloseTo(one.similarity, 6);
    expect(pairs.similarities[1]).toBeCloseTo(1, 6);
    const broken = await fetch(`${served.url}/v1/similarity`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a": "x",' });
    expect(broken.status).toBe(400);
    expect(((await broken.json()) as { error: { code: string } }).error.code).toBe('bad_request');
  });
});

describe('batching and metrics', () => {
  it('gathers concurrent requests into fewer engine runs, each answer going back to its own request', async () => {
    const before = await (await fetch(`${served.url}/metrics`)).text();
    const runsBefore = metricValue(before, 'img2prompt_batch_size_count{lane="interrogate"}');
    const imagesBefore = metricValue(before, 'img2prompt_batch_size_sum{lane="interrogate"}');
    const answers = await Promise.all(images.map((img, i) => postImage(`${served.url}/v1/interrogate?id=c${i}`, img.data).then((r) => r.json() as Promise<{ results: { id: string; prompt: string }[] }>)));
    const after = await (await fetch(`${served.url}/metrics`)).text();
    const runs = metricValue(after, 'img2prompt_batch_size_count{lane="interrogate"}') - runsBefore;
    expect(metricValue(after, 'img2prompt_batch_size_sum{lane="interrogate"}') - imagesBefore).toBe(images.length);
    expect(runs).toBeGreaterThanOrEqual(1);
    expect(runs).toBeLessThan(images.length);
    // Each request got its own image's prompt: the prompts of the same images interrogated one by one.
    const alone = [];
    for (const img of images) alone.push((await inProcess([img.data]))[0]!.prompt);
    expect(answers.map((a) => a.results[0]!.id)).toEqual(images.map((_, i) => `c${i}`));
    expect(answers.map((a) => a.results[0]!.prompt)).toEqual(alone);
    expect(new Set(alone).size).toBeGreaterThan(1);
  });

  it('exposes requests by route and status, latency, queue depth and images per second in Prometheus text', async () => {
    const text = await (await fetch(`${served.url}/metrics`)).text();
    expect(metricValue(text, 'img2prompt_http_requests_total{method="POST",route="/v1/interrogate",status="200"}')).toBeGreaterThanOrEqual(images.length);
    expect(metricValue(text, 'img2prompt_http_requests_total{method="POST",route="/v1/interrogate",status="400"}')).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^img2prompt_http_request_duration_seconds_bucket\{method="POST",route="\/v1\/interrogate",le="\+Inf"\} \d+$/m);
    expect(text).toContain('# TYPE img2prompt_batch_size histogram');
    expect(text).toMatch(/^img2prompt_queue_depth 0$/m);
    expect(metricValue(text, 'img2prompt_images_per_second')).toBeGreaterThan(0);
    expect(metricValue(text, 'img2prompt_images_total')).toBeGreaterThanOrEqual(images.length);
  });
});
