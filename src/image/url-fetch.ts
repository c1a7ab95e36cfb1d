/**
 * Images named by `http(s)://` URLs: fetched with a timeout, a size limit and retries, and streamed to
 * a file so that memory holds one network chunk per download whatever the image's size. A URL that
 * cannot be fetched is not an error of the run: it comes back as a failure reason, as an unreadable
 * file does, and the caller reports it with the other images that could not be read.
 */
import { createWriteStream } from 'node:fs';
import { promises as fs } from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import { Img2PromptError } from '../util/errors.js';

export const DEFAULT_FETCH_CONCURRENCY = 8;
export const DEFAULT_FETCH_TRIES = 3;
export const DEFAULT_MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024;
export const DEFAULT_FETCH_TIMEOUT_MS = 30_000;
/** The wait before the second try; doubled for each try after it. */
export const DEFAULT_BACKOFF_MS = 500;

export interface UrlFetchOptions {
  /** Downloads in flight at once (default 8). */
  concurrency?: number;
  /** Tries per URL, the first included (default 3). */
  tries?: number;
  /** A larger body is refused (default 50 MiB). */
  maxBytes?: number;
  /** One try, headers and body, may take this long (default 30 s). */
  timeoutMs?: number;
  /** Wait before the second try, doubled after each (default 500 ms). */
  backoffMs?: number;
}

/** True for an input that names an image by an `http://` or `https://` URL. */
export function isImageUrl(input: string): boolean {
  return /^https?:\/\//i.test(input);
}

/**
 * The id of the image at `url`: its last path segment, URL-decoded, without the extension
 * (`https://host/img/20057f34d.png?x=1` → `20057f34d`), the same rule as a file's name. A URL whose
 * path ends in `/` has no id and is refused, naming it.
 */
export function urlImageId(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Img2PromptError(url, 'not a valid URL');
  }
  const segment = parsed.pathname.split('/').pop() ?? '';
  let name: string;
  try {
    name = decodeURIComponent(segment);
  } catch {
    throw new Img2PromptError(url, `the last path segment ${JSON.stringify(segment)} is not valid percent-encoding`);
  }
  if (/[/\\\u0000]/.test(name)) throw new Img2PromptError(url, `the last path segment ${JSON.stringify(name)} holds a slash or NUL once decoded: it cannot name an image`);
  const id = path.posix.basename(name, path.posix.extname(name));
  if (id === '') throw new Img2PromptError(url, 'no image id: the URL path must end in a file name (its id is that name without the extension)');
  return id;
}

/** Why a try failed, and whether another try may help. */
class TryFailure extends Error {
  constructor(
    message: string,
    readonly retry: boolean,
  ) {
    super(message);
  }
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(bytes % (1024 * 1024) === 0 ? 0 : 1)} MiB`;
}

/** Where one try puts the body: a file, or memory. */
interface BodySink {
  write(chunk: Uint8Array): Promise<void>;
  /** The try ended (well or not): flush and close. */
  end(): Promise<void>;
}

/** A sink writing to `file` (created or truncated by each try). */
function fileSink(file: string): BodySink {
  const out = createWriteStream(file);
  // A write error (a full disk) is the run's problem, not the URL's: it is thrown as it is.
  let failed: Error | undefined;
  out.on('error', (err) => {
    failed = err;
  });
  return {
    async write(chunk) {
      if (failed) throw failed;
      if (!out.write(chunk)) await Promise.race([once(out, 'drain'), once(out, 'close')]);
      if (failed) throw failed;
    },
    async end() {
      if (!out.closed) {
        out.end();
        await once(out, 'close').catch(() => undefined);
      }
      if (failed) throw failed;
    },
  };
}

/** One try: the body of `url` into `sink`, or a TryFailure. */
async function tryOnce(url: string, makeSink: () => BodySink, maxBytes: number, timeoutMs: number): Promise<void> {
  const signal = AbortSignal.timeout(timeoutMs);
  let response: Response;
  try {
    response = await fetch(url, { signal, redirect: 'follow' });
  } catch (err) {
    throw networkFailure(err, signal, timeoutMs);
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => undefined);
    // 5xx and 429 are the server's trouble of the moment; any other status will not change.
    const retry = response.status >= 500 || response.status === 429;
    throw new TryFailure(`HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`, retry);
  }
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw new TryFailure(`download of ${mib(declared)} is over the limit of ${mib(maxBytes)} (--max-download-mb)`, false);
  }
  const sink = makeSink();
  let received = 0;
  try {
    const reader = response.body!.getReader();
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (err) {
        throw networkFailure(err, signal, timeoutMs, received);
      }
      if (chunk.done) break;
      received += chunk.value.length;
      if (received > maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw new TryFailure(`download is over the limit of ${mib(maxBytes)} (--max-download-mb)`, false);
      }
      await sink.write(chunk.value);
    }
    if (Number.isFinite(declared) && received < declared) {
      throw new TryFailure(`truncated download: ${received} of ${declared} bytes`, true);
    }
  } finally {
    await sink.end();
  }
}

function networkFailure(err: unknown, signal: AbortSignal, timeoutMs: number, received?: number): TryFailure {
  if (signal.aborted) return new TryFailure(`timed out after ${timeoutMs / 1000} s`, true);
  const e = err as Error & { cause?: { code?: string; message?: string } };
  const detail = e.cause?.code ?? e.cause?.message ?? e.message;
  const where = received === undefined ? '' : ` after ${received} bytes`;
  return new TryFailure(`network error${where}: ${detail}`, true);
}

/**
 * Downloads `url` to `file`, trying up to `tries` times with a doubling wait between tries when the
 * failure may pass (a network error, a timeout, a truncated body, 5xx, 429). Resolves to undefined on
 * success, or to the reason of the last try (nothing then left); never rejects for the URL's sake.
 */
export async function fetchToFile(url: string, file: string, options: UrlFetchOptions = {}): Promise<string | undefined> {
  // Written beside and renamed into place: a file under `file`'s name is always a whole download, even
  // after a kill, so a later run may take it as it is.
  const part = `${file}.part`;
  const failure = await withTries(url, () => fileSink(part), () => fs.rm(part, { force: true }), options);
  if (failure === undefined) await fs.rename(part, file);
  return failure;
}

/**
 * fetchToFile into memory: the bytes of `url` (at most `maxBytes`), or the reason it could not be
 * fetched. For a caller that hands engines `{ id, data }` and keeps only a few fetches ahead of them.
 */
export async function fetchImageBytes(url: string, options: UrlFetchOptions = {}): Promise<{ data: Uint8Array } | { failure: string }> {
  let chunks: Uint8Array[] = [];
  const failure = await withTries(
    url,
    () => {
      chunks = [];
      return { write: async (chunk) => void chunks.push(chunk), end: async () => undefined };
    },
    async () => {
      chunks = [];
    },
    options,
  );
  return failure === undefined ? { data: Buffer.concat(chunks) } : { failure };
}

/** The retry loop of fetchToFile and fetchImageBytes; `discard` drops what a failed try left. */
async function withTries(url: string, makeSink: () => BodySink, discard: () => Promise<unknown>, options: UrlFetchOptions): Promise<string | undefined> {
  const tries = options.tries ?? DEFAULT_FETCH_TRIES;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_DOWNLOAD_BYTES;
  const timeoutMs = options.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  const backoffMs = options.backoffMs ?? DEFAULT_BACKOFF_MS;
  let reason = '';
  for (let attempt = 1; attempt <= tries; attempt++) {
    try {
      await tryOnce(url, makeSink, maxBytes, timeoutMs);
      return undefined;
    } catch (err) {
      if (!(err instanceof TryFailure)) throw err;
      reason = err.message;
      await discard();
      if (!err.retry) return reason;
      if (attempt < tries) await new Promise((resolve) => setTimeout(resolve, backoffMs * 2 ** (attempt - 1)));
    }
  }
  return tries > 1 ? `${reason} (after ${tries} tries)` : reason;
}

/**
 * Runs `work` over `items` with at most `concurrency` in flight and yields the results in item order.
 * Work starts only as the consumer pulls results, keeping at most `concurrency` finished or running
 * ahead of it: a slow consumer holds back the downloads instead of piling them up.
 */
export async function* inOrderAhead<T, R>(items: readonly T[], work: (item: T, index: number) => Promise<R>, concurrency: number): AsyncGenerator<R, void, undefined> {
  const pending: Promise<R>[] = [];
  let next = 0;
  const fill = () => {
    while (next < items.length && pending.length < concurrency) {
      const i = next++;
      pending.push(work(items[i], i));
    }
  };
  fill();
  while (pending.length > 0) {
    const result = await pending.shift()!;
    fill();
    yield result;
  }
}
