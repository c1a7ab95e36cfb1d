/**
 * The /v1 routes: interrogate, predict and image embeddings go through the batcher (their images
 * share engine runs with other requests'); text embeddings and similarity call the text models
 * directly, as a batch of texts is already one model call.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { cosine } from '../submission/score.js';
import type { InterrogatedImage } from '../interrogate/run-types.js';
import type { PredictedImage } from '../predict/types.js';
import type { Batcher, Lane } from './batcher.js';
import { embedLane, interrogateLane, predictLane, type ImageEmbedding, type ServerEngines } from './engines.js';
import { HttpError, httpErrorForImage, imageErrorOf } from './errors.js';
import type { ResolvedServerOptions } from './options.js';
import { booleanParam, interrogateParams, readImages, type Upload } from './uploads.js';

/** What the routes need from the server. */
export interface RouteContext {
  options: ResolvedServerOptions;
  /** The opened engines; throws 503 while they are still opening. */
  engines(): ServerEngines;
  batcher: Batcher<Uint8Array, unknown>;
  /** Aborts when the request's deadline passes (504) or its client goes away. */
  signalOf(request: FastifyRequest): AbortSignal;
}

/** Most texts in one embeddings or similarity request. */
export const MAX_TEXTS = 1024;

const EMPTY_UPLOAD = 'the upload is empty (0 bytes)';

type Failed = { failure: string };

/**
 * Runs the uploads through `lane`, zero-byte ones excepted (they fail without an engine run). A
 * single-image request whose image fails answers with that image's error; a multipart one lists it.
 */
async function runUploads<R extends { failure?: string }>(ctx: RouteContext, request: FastifyRequest, lane: Lane<Uint8Array, R>, images: Upload[]): Promise<(R | Failed)[]> {
  const nonEmpty = images.filter((x) => x.data.length > 0);
  const signal = ctx.signalOf(request);
  const ran = await abortable(ctx.batcher.submit(lane, nonEmpty.map((x) => x.data), signal), signal);
  let k = 0;
  return images.map((x) => (x.data.length > 0 ? ran[k++]! : { failure: EMPTY_UPLOAD }));
}

/** `promise`, or the signal's reason as soon as it aborts (for work that cannot itself be cancelled). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Per-image entries of a response: `shape` for a result, `{ id, error }` for a failure (or the request's error, single-image). */
function respond<R>(images: Upload[], results: (R | Failed)[], multipart: boolean, shape: (id: string, r: R) => object): object[] {
  return results.map((r, i) => {
    const id = images[i]!.id;
    const failure = (r as { failure?: string }).failure;
    if (failure !== undefined) {
      if (!multipart) throw httpErrorForImage(id, failure);
      return { id, error: imageErrorOf(id, failure) };
    }
    return shape(id, r as R);
  });
}

const list = (v: Float32Array) => Array.from(v);

function interrogated(id: string, r: InterrogatedImage): object {
  return {
    id,
    prompt: r.prompt,
    ...(r.caption !== undefined ? { caption: r.caption } : {}),
    similarity: r.similarity,
    labels: r.labels.map((l) => ({ bank: l.bank, label: l.label, similarity: l.score })),
  };
}

function predicted(engines: ServerEngines, withVector: boolean) {
  const members = engines.predict!.members;
  return (id: string, r: PredictedImage): object => {
    const memberPrompts: Record<string, string> = {};
    if (members.includes('interrogator') && r.prompt !== null) memberPrompts.interrogator = r.prompt;
    if (members.includes('captioner') && r.caption !== null) memberPrompts.captioner = r.caption;
    if (members.includes('knn') && r.nearestPrompt) memberPrompts.knn = r.nearestPrompt.text;
    return {
      id, prompt: r.prompt, caption: r.caption, nearestPrompt: r.nearestPrompt, memberPrompts,
      members: Object.keys(r.members), fallback: r.fallback,
      ...(withVector ? { vector: list(r.vector) } : {}),
    };
  };
}

function stringList(name: string, value: unknown): string[] {
  if (!Array.isArray(value) || value.some((t) => typeof t !== 'string')) throw new HttpError(400, 'invalid_body', `${name} must be an array of strings`);
  if (value.length === 0) throw new HttpError(400, 'invalid_body', `${name} must not be empty`);
  if (value.length > MAX_TEXTS) throw new HttpError(413, 'too_many_texts', `${name} may hold at most ${MAX_TEXTS} texts, got ${value.length}`);
  return value as string[];
}

function jsonObject(request: FastifyRequest): Record<string, unknown> {
  const body = request.body;
  if (body === null || typeof body !== 'object' || Array.isArray(body) || Buffer.isBuffer(body)) {
    throw new HttpError(415, 'unsupported_media_type', 'send a JSON object with content type application/json');
  }
  return body as Record<string, unknown>;
}

function rows(matrix: Float32Array, count: number): number[][] {
  const dim = matrix.length / Math.max(count, 1);
  return Array.from({ length: count }, (_, i) => list(matrix.subarray(i * dim, (i + 1) * dim)));
}

export function registerRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { maxBatch, queue } = ctx.options;
  const limits = { maxBytes: Math.floor(ctx.options.maxBodyMb * 1024 * 1024), maxImages: queue };

  app.post('/v1/interrogate', async (request: FastifyRequest, reply: FastifyReply) => {
    const engines = ctx.engines();
    const { images, params, multipart } = await readImages(request, limits);
    const options = interrogateParams(params);
    const results = await runUploads(ctx, request, interrogateLane(engines.interrogate, options, maxBatch), images);
    return reply.send({ model: engines.interrogate.clip.modelId, mode: options.mode, results: respond(images, results, multipart, interrogated) });
  });

  app.post('/v1/predict', async (request, reply) => {
    const engines = ctx.engines();
    if (!engines.predict) throw new HttpError(404, 'predict_disabled', 'predict is not served: the server was started with --no-predict');
    const { images, params, multipart } = await readImages(request, limits);
    const withVector = booleanParam('vector', params.vector, false);
    const results = await runUploads(ctx, request, predictLane(engines.predict, maxBatch), images);
    return reply.send({ model: engines.predict.clip.modelId, members: engines.predict.members, results: respond(images, results, multipart, predicted(engines, withVector)) });
  });

  app.post('/v1/embeddings/image', async (request, reply) => {
    const engines = ctx.engines();
    const { images, multipart } = await readImages(request, limits);
    const results = await runUploads<ImageEmbedding>(ctx, request, embedLane(engines.interrogate, maxBatch), images);
    const shaped = respond(images, results, multipart, (id, r: ImageEmbedding) => ({ id, embedding: list(r.embedding!) }));
    return reply.send({ model: engines.interrogate.clip.modelId, dim: engines.interrogate.clip.dim, results: shaped });
  });

  app.post('/v1/embeddings/text', async (request, reply) => {
    const engines = ctx.engines();
    const body = jsonObject(request);
    const texts = stringList('texts', body.texts);
    const model = body.model ?? 'minilm';
    if (model !== 'clip' && model !== 'minilm') throw new HttpError(400, 'invalid_body', `model must be "clip" or "minilm", got ${JSON.stringify(model)}`);
    const signal = ctx.signalOf(request);
    if (model === 'clip') {
      const clip = engines.interrogate.clip;
      const m = await abortable(clip.encodeTexts(texts), signal);
      return reply.send({ model: clip.modelId, dim: clip.dim, embeddings: rows(m, texts.length) });
    }
    const m = await abortable(engines.minilm.encodeTexts(texts), signal);
    return reply.send({ model: engines.minilm.identity, dim: engines.minilm.dim, embeddings: rows(m, texts.length) });
  });

  app.post('/v1/similarity', async (request, reply) => {
    const engines = ctx.engines();
    const body = jsonObject(request);
    const single = typeof body.a === 'string' && typeof body.b === 'string';
    const a = single ? [body.a as string] : stringList('a', body.a);
    const b = single ? [body.b as string] : stringList('b', body.b);
    if (a.length !== b.length) throw new HttpError(400, 'invalid_body', `a and b must be two strings or two arrays of the same length (got ${a.length} and ${b.length})`);
    const dim = engines.minilm.dim;
    const m = await abortable(engines.minilm.encodeTexts([...a, ...b]), ctx.signalOf(request));
    const sims = a.map((_, i) => cosine(m, i * dim, m, (a.length + i) * dim, dim));
    return reply.send({ model: engines.minilm.identity, ...(single ? { similarity: sims[0] } : { similarities: sims }) });
  });
}
