// The CLI sizes libuv's thread pool from the core count before the pool starts (issue 16: the default 4
// threads capped decoding), unless the user set UV_THREADPOOL_SIZE; the batch loader's default decodes
// in flight follow the pool. Runs the built CLI (dist/, `npx tsc -p .`) with a preloaded probe that
// counts the pool's threads by blocking them (test/fixtures/threadpool/pool-probe.cjs).
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultDecodeConcurrency } from '../src/image/batch-loader.js';

// The built module: vitest does not compile .cts sources, and it is the file the CLI runs.
const { sizeThreadpool, threadpoolSizeFor } = createRequire(import.meta.url)(path.resolve('dist/src/cli/threadpool.cjs')) as typeof import('../src/cli/threadpool.cjs');

const PROBE = path.resolve('test/fixtures/threadpool/pool-probe.cjs');
const cores = os.availableParallelism();

/** The pool threads a CLI process had, measured by the probe while it ran `--version`. */
function measuredPool(entry: string, env: NodeJS.ProcessEnv): number {
  const expectedMax = threadpoolSizeFor(cores) + 6;
  const child = spawnSync(process.execPath, ['-r', PROBE, path.resolve(entry), '--version'], {
    env: { ...env, POOL_PROBE_OPENS: String(expectedMax) }, encoding: 'utf8', timeout: 60_000,
  });
  expect(child.status, child.stderr).toBe(0);
  const m = /pool-threads=(\d+)/.exec(child.stderr);
  expect(m, child.stderr).not.toBeNull();
  return Number(m![1]);
}

const baseEnv = () => {
  const env = { ...process.env };
  delete env.UV_THREADPOOL_SIZE;
  return env;
};

describe('the CLI sizes the libuv pool', () => {
  it('to the cores plus four, observed as that many blocking jobs at once', () => {
    expect(threadpoolSizeFor(cores)).not.toBe(4); // else this test could not tell sizing from libuv's default
    expect(measuredPool('dist/src/cli/bin.cjs', baseEnv())).toBe(cores + 4);
  });

  it("keeps the user's UV_THREADPOOL_SIZE", () => {
    expect(measuredPool('dist/src/cli/bin.cjs', { ...baseEnv(), UV_THREADPOOL_SIZE: '3' })).toBe(3);
  });

  it('needs the CommonJS entry: through the ES-module one the pool has already started at 4', () => {
    expect(measuredPool('dist/src/cli/bin.js', baseEnv())).toBe(4);
  });
});

describe('threadpoolSizeFor / sizeThreadpool', () => {
  it('gives one thread per core plus four, within libuv bounds', () => {
    expect(threadpoolSizeFor(1)).toBe(5);
    expect(threadpoolSizeFor(16)).toBe(20);
    expect(threadpoolSizeFor(0)).toBe(5);
    expect(threadpoolSizeFor(4096)).toBe(1024);
  });

  it('sets the variable only when the user did not', () => {
    const unset: NodeJS.ProcessEnv = {};
    expect(sizeThreadpool(unset, 16)).toBe(20);
    expect(unset.UV_THREADPOOL_SIZE).toBe('20');
    const blank: NodeJS.ProcessEnv = { UV_THREADPOOL_SIZE: ' ' };
    expect(sizeThreadpool(blank, 2)).toBe(6);
    const given: NodeJS.ProcessEnv = { UV_THREADPOOL_SIZE: '7' };
    expect(sizeThreadpool(given, 16)).toBe(7);
    expect(given.UV_THREADPOOL_SIZE).toBe('7');
  });
});

describe('defaultDecodeConcurrency', () => {
  const saved = process.env.UV_THREADPOOL_SIZE;
  afterEach(() => {
    if (saved === undefined) delete process.env.UV_THREADPOOL_SIZE;
    else process.env.UV_THREADPOOL_SIZE = saved;
  });

  it('is one decode per core when the pool has room (the CLI pool)', () => {
    process.env.UV_THREADPOOL_SIZE = String(threadpoolSizeFor(cores));
    expect(defaultDecodeConcurrency()).toBe(cores);
  });

  it("is bounded by libuv's default pool of 4 when nothing sized it", () => {
    delete process.env.UV_THREADPOOL_SIZE;
    expect(defaultDecodeConcurrency()).toBe(Math.min(cores, 4));
    process.env.UV_THREADPOOL_SIZE = '1';
    expect(defaultDecodeConcurrency()).toBe(1);
  });
});
