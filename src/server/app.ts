/**
 * createServer(): the HTTP server around the engines. The engines start opening at once (a first run
 * builds banks, which takes minutes), the port can be bound meanwhile: /healthz answers at once,
 * /readyz and the /v1 routes say 503 until the models are loaded.
 *
 * Guarantees: every error is JSON `{ "error": { "code", "message" } }`; no request can take the
 * process down (handler errors, engine errors and aborted clients all end in a response or a closed
 * socket); close() stops accepting, lets in-flight requests finish, then frees the models.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import { errorMessage } from '../util/errors.js';
import { Batcher } from './batcher.js';
import { openEngines, type ServerEngines } from './engines.js';
import { HttpError, errorBody, toHttpError } from './errors.js';
import { ServerMetrics } from './metrics.js';
import { openApiDocument } from './openapi.js';
import { resolveServerOptions, type ResolvedServerOptions, type ServerOptions } from './options.js';
import { registerRoutes } from './routes.js';
import { registerWebPage } from './web.js';

export interface Img2PromptServer {
  /** The Fastify instance (add routes or hooks before listen()). */
  app: FastifyInstance;
  /** Resolves once the models are loaded; rejects with the reason they could not be. */
  ready: Promise<void>;
  /** Binds host:port (port 0: a free one) and resolves with the address. */
  listen(): Promise<{ host: string; port: number; url: string }>;
  /** Stops accepting, finishes in-flight requests, then closes the models. Safe to call twice. */
  close(): Promise<void>;
  /** The options in effect, defaults filled in. */
  options: ResolvedServerOptions;
}

/** Per-request state the hooks share: when it arrived, and the signal of its deadline and client. */
interface RequestState {
  started: number;
  controller: AbortController;
  timer: NodeJS.Timeout | undefined;
}

function sameSecret(given: string, expected: string): boolean {
  // Compare digests: equal lengths whatever was sent, so the comparison's time says nothing.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * Creates the server and starts opening its models.
 *
 * @example
 * ```ts
 * import { createServer } from 'img2prompt';
 *
 * const server = createServer({ model: 'clip-vit-b-32', port: 8787 });
 * await server.ready;
 * const { url } = await server.listen();
 * // … later
 * await server.close();
 * ```
 * @throws {Img2PromptError} at once for an invalid limit or the map member (see ServerOptions).
 */
export function createServer(serverOptions: ServerOptions = {}): Img2PromptServer {
  const options = resolveServerOptions(serverOptions);
  const maxBodyBytes = Math.floor(options.maxBodyMb * 1024 * 1024);
  // requestTimeout: Node cuts a client still sending its request long after the deadline (checked
  // every 30 s) so a slow upload cannot hold a socket for ever.
  const app = Fastify({ bodyLimit: maxBodyBytes, logger: false, return503OnClosing: false, forceCloseConnections: 'idle', requestTimeout: options.timeoutMs });
  const batcher = new Batcher<Uint8Array, unknown>({
    maxBatch: options.maxBatch, maxWaitMs: options.maxWaitMs, maxQueue: options.queue,
    onBatch: (lane, size) => metrics.batch(lane, size),
  });
  const metrics = new ServerMetrics(() => batcher.depth);
  const states = new WeakMap<FastifyRequest, RequestState>();

  let engines: ServerEngines | undefined;
  let loadError: unknown;
  let closing = false;
  const opening = new AbortController();
  const ready = openEngines(options, opening.signal).then(
    (e) => {
      if (closing) e.close();
      else engines = e;
    },
    (err: unknown) => {
      loadError = err;
      throw err;
    },
  );
  // A caller that never awaits `ready` must not get an unhandled rejection; /readyz reports it.
  ready.catch(() => {});

  app.register(multipart, { limits: { fileSize: maxBodyBytes } });
  for (const type of [/^image\//, 'application/octet-stream']) {
    app.addContentTypeParser(type, { parseAs: 'buffer', bodyLimit: maxBodyBytes }, (_req, body, done) => done(null, body));
  }

  app.addHook('onRequest', async (request, reply) => {
    const controller = new AbortController();
    const state: RequestState = { started: performance.now(), controller, timer: undefined };
    states.set(request, state);
    state.timer = setTimeout(
      () => controller.abort(new HttpError(504, 'deadline_exceeded', `the request did not finish within ${options.timeoutMs} ms (--timeout-ms)`)),
      options.timeoutMs,
    );
    // A client that goes away before its answer: its queued images leave the queue.
    reply.raw.on('close', () => {
      clearTimeout(state.timer);
      if (!reply.raw.writableFinished) controller.abort(new HttpError(499, 'client_closed_request', 'the client closed the connection'));
    });
    // Fastify's own 503 while closing is not in the error shape; this one is (return503OnClosing off).
    if (closing) throw new HttpError(503, 'shutting_down', 'the server is shutting down');
    if (options.cors !== undefined) {
      const origin = request.headers.origin;
      if (options.cors === '*' || origin === options.cors) {
        reply.header('access-control-allow-origin', options.cors === '*' ? '*' : options.cors);
        reply.header('vary', 'Origin');
      }
    }
    // The matched route, not the URL: a percent-encoded path ("/%761/…") routes to /v1 too.
    if (options.token !== undefined && request.routeOptions.url?.startsWith('/v1/') && request.method !== 'OPTIONS') {
      const auth = request.headers.authorization ?? '';
      const m = /^Bearer\s+(.+)$/i.exec(auth);
      if (!m || !sameSecret(m[1]!.trim(), options.token)) {
        throw new HttpError(401, 'unauthorized', 'this server needs a token: send `Authorization: Bearer <token>`', { 'www-authenticate': 'Bearer' });
      }
    }
  });

  app.addHook('onResponse', async (request, reply) => {
    const state = states.get(request);
    if (state) clearTimeout(state.timer);
    const seconds = state ? (performance.now() - state.started) / 1000 : 0;
    metrics.request(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, seconds);
  });

  // While closing, answers end their connections: a keep-alive socket left open would hold close()
  // (and the process) until its idle timeout.
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });

  app.setErrorHandler((err: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const http = toHttpError(err);
    if (http.status >= 500 && http.status !== 503 && http.status !== 504) {
      options.onNotice(`error: ${request.method} ${request.url}: ${errorMessage(err)}`);
    }
    if (reply.raw.destroyed) return;
    reply.code(http.status).headers(http.headers).send(errorBody(http.code, http.message));
  });

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody('not_found', `no route ${request.method} ${request.url.split('?')[0]}`));
  });

  if (options.cors !== undefined) {
    // Preflight: browsers send no Authorization header with it, hence no token check above.
    app.options('/*', async (_request, reply) => {
      reply.header('access-control-allow-methods', 'GET, POST, OPTIONS');
      reply.header('access-control-allow-headers', 'authorization, content-type');
      reply.header('access-control-max-age', '600');
      return reply.code(204).send();
    });
  }

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    if (closing) return reply.code(503).send(errorBody('shutting_down', 'the server is shutting down'));
    if (loadError !== undefined) return reply.code(503).send(errorBody('load_failed', `the models could not be loaded: ${errorMessage(loadError)}`));
    if (!engines) return reply.code(503).send(errorBody('loading', 'the models are still loading'));
    return { status: 'ready', model: engines.interrogate.clip.modelId, predict: engines.predict !== undefined };
  });
  app.get('/metrics', async (_request, reply) => reply.type('text/plain; version=0.0.4; charset=utf-8').send(metrics.text()));
  const openapi = openApiDocument();
  app.get('/openapi.json', async () => openapi);
  registerWebPage(app);

  registerRoutes(app, {
    options,
    batcher,
    engines() {
      if (engines) return engines;
      if (loadError !== undefined) throw new HttpError(503, 'load_failed', `the models could not be loaded: ${errorMessage(loadError)}`);
      throw new HttpError(503, 'loading', 'the models are still loading; retry when /readyz says ready', { 'retry-after': '5' });
    },
    signalOf(request) {
      return states.get(request)!.controller.signal;
    },
  });

  let closed: Promise<void> | undefined;
  return {
    app,
    ready,
    options,
    async listen() {
      await app.listen({ host: options.host, port: options.port });
      const address = app.server.address();
      const port = typeof address === 'object' && address ? address.port : options.port;
      const host = options.host.includes(':') ? `[${options.host}]` : options.host;
      return { host: options.host, port, url: `http://${host}:${port}` };
    },
    close() {
      closed ??= (async () => {
        closing = true;
        opening.abort(new Error('the server is closing'));
        try {
          await app.close();
          await batcher.drain();
        } finally {
          engines?.close();
          engines = undefined;
        }
      })();
      return closed;
    },
  };
}
