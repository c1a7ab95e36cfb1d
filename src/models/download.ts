import { promises as fs } from 'node:fs';
import { Img2PromptError, errorMessage, osReason } from '../util/errors.js';
import { writeFully } from '../util/atomic-write.js';
import { hashFile } from './sha256.js';

/**
 * A download that failed on the network after all retries. The `.part` file is kept, so running
 * the pull again resumes where this one stopped.
 */
export class DownloadInterruptedError extends Img2PromptError {}

export interface DownloadOptions {
  url: string;
  /** Final path; bytes arrive in `<dest>.part` and are renamed to `dest` only once verified. */
  dest: string;
  expectedSize: number | null;
  expectedSha256: string | null;
  /** Consecutive failed attempts (no new bytes) tolerated before giving up. Default 5. */
  retries?: number;
  /** First retry delay; doubles per consecutive failure, capped at 30 s. Default 1000 ms. */
  retryDelayMs?: number;
  /** Abort an attempt when no bytes arrive for this long. Default 60 s. */
  idleTimeoutMs?: number;
  /** Bytes of this file on disk so far; may go down when a server forces a restart from 0. */
  onProgress?: (received: number, total: number | null) => void;
}

export interface DownloadResult {
  size: number;
  sha256: string;
  /** Number of HTTP requests made (1 for a clean download). */
  requests: number;
}

const USER_AGENT = 'img2prompt-model-pull/1';
const MAX_BACKOFF_MS = 30_000;

/** Network trouble worth retrying: the bytes already on disk stay valid. */
class TransientError extends Error {}

function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: unknown })?.cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return code ? `${code}: ${cause.message}` : cause.message;
  }
  return errorMessage(err);
}

async function partSize(part: string): Promise<number> {
  try {
    return (await fs.stat(part)).size;
  } catch {
    return 0;
  }
}

/** `bytes START-END/TOTAL` → { start, total } (total null for `*`). */
function parseContentRange(header: string | null): { start: number; total: number | null } | undefined {
  const m = header && /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(header.trim());
  if (!m) return undefined;
  return { start: Number(m[1]), total: m[2] === '*' ? null : Number(m[2]) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Download `url` to `dest` with resume (HTTP Range on an existing `.part`; a server that ignores
 * Range gets a restart from byte 0), retries with exponential backoff on dropped connections and
 * 5xx answers, then size and SHA-256 checks. A mismatch deletes the `.part` and throws
 * `sha256 mismatch: expected X, got Y`; a 4xx other than 408/429 fails at once.
 */
export async function downloadFile(opts: DownloadOptions): Promise<DownloadResult> {
  const { url, dest, expectedSize, expectedSha256 } = opts;
  const part = `${dest}.part`;
  const retries = opts.retries ?? 5;
  const baseDelay = opts.retryDelayMs ?? 1000;
  const idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
  let failuresInARow = 0;
  let requests = 0;
  let lastError = '';

  for (;;) {
    let offset = await partSize(part);
    if (expectedSize !== null && offset > expectedSize) {
      await fs.rm(part, { force: true }); // longer than the real file: cannot be a prefix of it
      offset = 0;
    }
    if (expectedSize !== null && offset === expectedSize) break; // finished earlier; just verify

    requests++;
    try {
      await fetchInto(url, part, offset, expectedSize, idleTimeoutMs, opts.onProgress);
      break;
    } catch (err) {
      if (!(err instanceof TransientError)) throw err;
      lastError = err.message;
    }
    // A flaky link that still moves bytes forward may take many attempts; only stalls count.
    const progressed = (await partSize(part)) > offset;
    failuresInARow = progressed ? 0 : failuresInARow + 1;
    if (failuresInARow > retries) {
      const kept = await partSize(part);
      throw new DownloadInterruptedError(
        url,
        `download failed after ${requests} attempts (${lastError}); ${kept} ` +
          `${expectedSize !== null ? `of ${expectedSize} ` : ''}bytes kept in ${part}, run the pull again to resume`, { code: 'DOWNLOAD_FAILED' },
      );
    }
    await sleep(Math.min(baseDelay * 2 ** Math.max(0, failuresInARow - 1), MAX_BACKOFF_MS));
  }

  const { size, sha256 } = await hashFile(part);
  if (expectedSize !== null && size !== expectedSize) {
    await fs.rm(part, { force: true });
    throw new Img2PromptError(url, `size mismatch: expected ${expectedSize} bytes, got ${size} (download deleted)`, { code: 'DOWNLOAD_FAILED' });
  }
  if (expectedSha256 !== null && sha256 !== expectedSha256) {
    await fs.rm(part, { force: true });
    throw new Img2PromptError(url, `sha256 mismatch: expected ${expectedSha256}, got ${sha256} (download deleted)`, { code: 'DOWNLOAD_FAILED' });
  }
  await fs.rename(part, dest);
  return { size, sha256, requests };
}

/**
 * One HTTP attempt: append to (or restart) `part`. Returns when the body ended complete; throws
 * TransientError for anything a retry may fix and Img2PromptError for what it cannot.
 */
async function fetchInto(
  url: string,
  part: string,
  offset: number,
  expectedSize: number | null,
  idleTimeoutMs: number,
  onProgress: DownloadOptions['onProgress'],
): Promise<void> {
  const controller = new AbortController();
  let idle: NodeJS.Timeout | undefined;
  const armIdle = () => {
    clearTimeout(idle);
    idle = setTimeout(() => controller.abort(new Error(`no data for ${idleTimeoutMs / 1000} s`)), idleTimeoutMs);
  };
  // Compressed transfer would make byte counts and Range offsets refer to different bytes.
  const headers: Record<string, string> = { 'user-agent': USER_AGENT, 'accept-encoding': 'identity' };
  if (offset > 0) headers.range = `bytes=${offset}-`;

  armIdle();
  try {
    let res: Response;
    try {
      res = await fetch(url, { headers, signal: controller.signal, redirect: 'follow' });
    } catch (err) {
      throw new TransientError(controller.signal.aborted ? errorMessage(controller.signal.reason) : describeFetchError(err));
    }

    let start: number;
    let total: number | null;
    if (res.status === 206) {
      const range = parseContentRange(res.headers.get('content-range'));
      if (!range || range.start !== offset) {
        await res.body?.cancel();
        await fs.rm(part, { force: true }); // a range we did not ask for: start over cleanly
        throw new TransientError(`server answered Range bytes=${offset}- with Content-Range ${res.headers.get('content-range')}`);
      }
      start = offset;
      total = range.total;
    } else if (res.status === 200) {
      start = 0; // no Range support (or the file changed): the whole body follows
      const len = res.headers.get('content-length');
      total = len !== null && /^\d+$/.test(len) ? Number(len) : null;
    } else if (res.status === 416 && offset > 0) {
      await res.body?.cancel();
      const whole = /^bytes \*\/(\d+)$/.exec(res.headers.get('content-range')?.trim() ?? '');
      if (expectedSize === null && whole && Number(whole[1]) === offset) return; // the part was already whole
      await fs.rm(part, { force: true });
      throw new TransientError(`server rejected Range bytes=${offset}- (HTTP 416); restarting from 0`);
    } else {
      await res.body?.cancel();
      const what = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
      if (res.status >= 500 || res.status === 408 || res.status === 429) throw new TransientError(what);
      throw new Img2PromptError(url, what, { code: 'DOWNLOAD_FAILED' });
    }
    if (total !== null && expectedSize !== null && total !== expectedSize) {
      await res.body?.cancel();
      throw new Img2PromptError(url, `server reports ${total} bytes, expected ${expectedSize}: wrong file or changed upstream`, { code: 'DOWNLOAD_FAILED' });
    }

    const fh = await fs.open(part, start === 0 ? 'w' : 'a');
    let received = start;
    onProgress?.(received, total);
    try {
      if (res.body) {
        for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
          armIdle();
          try {
            await writeFully(fh, chunk, received);
          } catch (err) {
            // A full disk is not a network problem: retrying would only fail again.
            throw new Img2PromptError(part, `cannot write (${osReason(err)})`, { code: 'OUTPUT_FAILED', cause: err });
          }
          received += chunk.length;
          onProgress?.(received, total);
        }
      }
    } catch (err) {
      if (err instanceof Img2PromptError) throw err;
      const reason = controller.signal.aborted ? errorMessage(controller.signal.reason) : describeFetchError(err);
      throw new TransientError(`connection lost after ${received} bytes (${reason})`);
    } finally {
      await fh.close();
    }
    if (total !== null && received < total) {
      throw new TransientError(`connection closed after ${received} of ${total} bytes`);
    }
  } finally {
    clearTimeout(idle);
  }
}
