/**
 * What `img2prompt serve` and createServer() take, with the defaults and the checks that run before
 * any model is opened (a typo in a limit should not cost a minute of model loading).
 */
import type { MemberName } from '../predict/members.js';
import { Img2PromptError } from '../util/errors.js';

export interface ServerOptions {
  /** Interface to bind; default 127.0.0.1 (loopback only: serving the LAN is a choice to make explicitly). */
  host?: string;
  /** TCP port; default 8787; 0 picks a free one (listen() returns it). */
  port?: number;
  /** CLIP model (installed name or folder); default clip-vit-b-32. */
  model?: string;
  /** Captioner whose caption heads every prompt; default none. */
  captionModel?: string;
  /** Predict members; default knn and interrogator (and captioner with a caption model). The map member is refused: see engines.ts. */
  members?: readonly MemberName[];
  /** Folder of the built-in label lists; default the shipped one. */
  labelsDir?: string;
  /** Prompt corpus files of predict's bank; default the shipped corpus. */
  promptsBank?: readonly string[];
  /** Open the predict engine (POST /v1/predict); default true. Off: that route answers 404 and MiniLM is opened alone. */
  predict?: boolean;
  /** Most images per engine run; default 32. */
  maxBatch?: number;
  /** Longest the first image of a batch waits for others, ms; default 10. */
  maxWaitMs?: number;
  /** Most images waiting for an engine run (429 beyond); default 256. */
  queue?: number;
  /** Per-request deadline, ms (504 beyond); default 30000. */
  timeoutMs?: number;
  /** When set, every /v1 route needs `Authorization: Bearer <token>`. */
  token?: string;
  /** Origin allowed to call the API from a browser (`*` for any); default none: no CORS headers. */
  cors?: string;
  /** Largest request body, MiB (413 beyond); default 32. */
  maxBodyMb?: number;
  /** Status lines (models opened, banks built, random weights); default none. */
  onNotice?(message: string): void;
}

export type ResolvedServerOptions = Required<Omit<ServerOptions, 'captionModel' | 'members' | 'labelsDir' | 'promptsBank' | 'token' | 'cors' | 'onNotice' | 'model'>>
  & Pick<ServerOptions, 'captionModel' | 'members' | 'labelsDir' | 'promptsBank' | 'token' | 'cors' | 'model'>
  & { onNotice(message: string): void };

export const SERVER_DEFAULTS = {
  host: '127.0.0.1',
  port: 8787,
  maxBatch: 32,
  maxWaitMs: 10,
  queue: 256,
  timeoutMs: 30_000,
  maxBodyMb: 32,
} as const;

function positiveInt(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new Img2PromptError(undefined, `${name} must be a positive integer, got ${value}`);
  return value;
}

/** Fills in the defaults and checks every limit. */
export function resolveServerOptions(options: ServerOptions): ResolvedServerOptions {
  const o = { ...SERVER_DEFAULTS, predict: true, ...stripUndefined(options) };
  positiveInt('maxBatch (--max-batch)', o.maxBatch);
  positiveInt('queue (--queue)', o.queue);
  positiveInt('timeoutMs (--timeout-ms)', o.timeoutMs);
  if (!(Number.isSafeInteger(o.maxWaitMs) && o.maxWaitMs >= 0)) throw new Img2PromptError(undefined, `maxWaitMs (--max-wait-ms) must be an integer >= 0, got ${o.maxWaitMs}`);
  if (!(Number.isSafeInteger(o.port) && o.port >= 0 && o.port <= 65535)) throw new Img2PromptError(undefined, `port (--port) must be an integer from 0 to 65535, got ${o.port}`);
  if (!(Number.isFinite(o.maxBodyMb) && o.maxBodyMb > 0)) throw new Img2PromptError(undefined, `maxBodyMb (--max-body-mb) must be a number > 0, got ${o.maxBodyMb}`);
  if (o.token !== undefined && o.token.length === 0) throw new Img2PromptError(undefined, 'token (--token) must not be empty');
  if (o.members?.includes('map')) {
    throw new Img2PromptError(undefined, 'the map member cannot be served: it needs the modality gap of a run\'s own images, and a server batch is too small and too mixed to estimate it (use knn, interrogator and captioner)');
  }
  return { ...o, onNotice: options.onNotice ?? (() => {}) };
}

function stripUndefined<T extends object>(x: T): Partial<T> {
  return Object.fromEntries(Object.entries(x).filter(([, v]) => v !== undefined)) as Partial<T>;
}
