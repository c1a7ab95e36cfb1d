/**
 * The size of libuv's thread pool for the CLI. Every image decode and CLIP preprocessing job, every
 * asynchronous ORT run and every file read holds one pool thread while it works, and libuv's default of
 * 4 threads capped decoding at a quarter of a 16-core machine (issue 16: 354 img/s from PNG files, 918
 * with 16 threads). libuv reads UV_THREADPOOL_SIZE once, when the pool starts at its first use, so it
 * must be in the environment before anything asynchronous runs: bin.cts sets it first thing.
 *
 * CommonJS on purpose: an ES-module entry point is itself read through the pool (Node's ESM loader reads
 * files asynchronously), so by the time its first line runs the pool already has its default size.
 */

/** libuv's own bounds for UV_THREADPOOL_SIZE (it clamps to 1..1024). */
const LIBUV_MAX_THREADS = 1024;

/**
 * Threads for a machine of `cores`: one decode per core, plus four so that ORT runs and file reads never
 * queue behind a full set of decodes.
 */
export function threadpoolSizeFor(cores: number): number {
  return Math.min(LIBUV_MAX_THREADS, Math.max(1, Math.floor(cores)) + 4);
}

/**
 * Sets UV_THREADPOOL_SIZE in `env` from `cores` unless the user set it (to anything not blank); returns
 * the size in effect as libuv will read it.
 */
export function sizeThreadpool(env: NodeJS.ProcessEnv, cores: number): number {
  const given = env.UV_THREADPOOL_SIZE?.trim();
  if (given) return Number(given);
  const size = threadpoolSizeFor(cores);
  env.UV_THREADPOOL_SIZE = String(size);
  return size;
}
