// Issue 15, distributed: `queue push` → `worker` processes → `queue collect` on a real redis-server
// (Debian's package, started here on a free port; the test fails without it). Three workers with one
// SIGKILLed mid-run, Redis SIGKILLed and restarted on its append-only file, and a poisoned chunk: each
// time the collected submission is byte for byte a single-machine `predict` of the same inputs, every
// id exactly once. Tiny random CLIP, the 7 Kaggle images and hard links to them under more names.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { cliArgv, runCliInProcess, type CliResult } from './helpers/cli.js';
import { copyKaggleImages, restoreHome, useTinyClipHome, writeSmallBankAndLabels, type SmallBank } from './helpers/tiny-clip-home.js';
import { TestRedis } from './helpers/redis-server.js';
import { startFixtureServer } from './helpers/http-server.js';
import { readSubmission } from '../src/submission/submission-csv.js';

const home = tempDir('img2prompt-queue-home-');
const work = tempDir('img2prompt-queue-work-');
const images = path.join(work, 'images');
const poison = path.join(work, 'poison');
const out = (name: string) => path.join(work, 'out', name);
let bank: SmallBank;
let saved: string | undefined;
let redis: TestRedis;
let client: Redis;

const cli = (args: string[]): Promise<CliResult> => runCliInProcess(args, home, { timeoutMs: 200_000 });
/** The run flags of predict and queue push alike: small batches and gap sample, so the chunks are not all in it. */
const runFlags = () => [...bank.options, '--batch-size', '4', '--gap-images', '8'];
/** Short locks and stalled checks, so a dead worker's chunk is taken over within seconds. */
const workerFlags = ['--until-done', '--lock-duration', '2', '--stalled-interval', '1'];

interface WorkerProcess {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

function startWorker(args: string[], workerHome = home): WorkerProcess {
  const child = spawn(process.execPath, cliArgv(['worker', '--redis', redis.url, ...args]), {
    env: { ...process.env, IMG2PROMPT_HOME: workerHome, IMG2PROMPT_PROGRESS: '0' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let text = '';
  child.stderr!.on('data', (d) => (text += String(d)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stderr: () => text, exited };
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Exit code of a worker, failing the test (with its stderr) if it does not end in time. */
async function exitOf(w: WorkerProcess, timeoutMs = 120_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), timeoutMs)));
  const code = await Promise.race([w.exited, late]);
  clearTimeout(timer);
  if (code === 'late') {
    w.child.kill('SIGKILL');
    throw new Error(`worker did not exit: ${w.stderr()}`);
  }
  return code;
}

const chunkQueue = (run: string) => new Queue(`img2prompt-${run}`, { connection: client });

/** Ids of a submission, each once, in file order. */
async function submissionIds(file: string): Promise<string[]> {
  return (await readSubmission(file)).ids;
}

beforeAll(async () => {
  saved = await useTinyClipHome(home, 7);
  copyKaggleImages(images);
  // More names for the same images (hard links): 28 images, so a run has several chunks.
  for (const f of fs.readdirSync(images)) for (const copy of ['b', 'c', 'd']) fs.linkSync(path.join(images, f), path.join(images, `${copy}${f}`));
  fs.mkdirSync(poison);
  for (let i = 1; i <= 4; i++) fs.writeFileSync(path.join(poison, `zz-bad-${i}.png`), 'not a png\n');
  bank = writeSmallBankAndLabels(work);
  fs.mkdirSync(path.join(work, 'out'));
  redis = await TestRedis.start(path.join(work, 'redis'));
  client = new Redis(redis.url, { maxRetriesPerRequest: null });
  client.on('error', () => {});
  // The single-machine answers (they also build the bank caches and fit the map the workers then read).
  const whole = await cli(['predict', images, '-o', out('whole.csv'), '--prompts-out', out('whole-prompts.csv'), ...runFlags()]);
  expect(whole.code, whole.stderr).toBe(0);
  const poisoned = await cli(['predict', images, poison, '-o', out('whole-poison.csv'), ...runFlags()]);
  expect(poisoned.code, poisoned.stderr).toBe(1);
}, 300_000);

afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
  restoreHome(saved);
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

describe('queue push, workers, collect', () => {
  it('three workers, one SIGKILLed mid-chunk, the one that takes over its chunk SIGTERMed (finishes it): collect writes the bytes of a single predict, every id once', async () => {
    const push = await cli(['queue', 'push', images, '--redis', redis.url, '--run', 'kill', '--chunk-size', '4', ...runFlags()]);
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).toContain('run kill pushed: 28 images in 7 chunks of 4');
    const queue = chunkQueue('kill');
    // Held until all three have their models open, so each takes chunks.
    await queue.pause();
    const workers = [0, 1, 2].map(() => startWorker(['--run', 'kill', ...workerFlags]));
    await until('three workers ready', () => workers.every((w) => w.stderr().includes('ready for run kill')), 90_000);
    const victim = workers[0]!;
    const victimName = `:${victim.child.pid}`;
    await queue.resume();
    const taken = await until('the first worker in a chunk', async () => {
      const active = await queue.getActive();
      return active.find((j) => j.processedBy?.endsWith(victimName));
    });
    victim.child.kill('SIGKILL');
    expect(await exitOf(victim)).toBe(null);
    // The dead worker's chunk is taken over (BullMQ's stalled-job check, after its 2 s lock) by another
    // worker, which is then sent SIGTERM in the middle of it: it finishes that chunk, then exits 0.
    const heir = await until('the dead worker\'s chunk taken over', async () => {
      const job = await queue.getJob(taken.id!);
      if ((await job?.getState()) !== 'active' || job!.processedBy?.endsWith(victimName)) return undefined;
      return workers.slice(1).find((w) => job!.processedBy?.endsWith(`:${w.child.pid}`));
    });
    heir.child.kill('SIGTERM');
    expect(await exitOf(heir), heir.stderr()).toBe(0);
    expect(heir.stderr()).toContain('img2prompt worker: SIGTERM: finishing the chunks in hand, then exiting');
    const last = workers.find((w) => w !== victim && w !== heir)!;
    expect(await exitOf(last), last.stderr()).toBe(0);

    // The dead worker's chunk was finished by the one that took it over, before it stopped.
    const job = (await queue.getJob(taken.id!))!;
    expect(await job.getState()).toBe('completed');
    expect(job.processedBy?.endsWith(`:${heir.child.pid}`)).toBe(true);
    expect(await queue.getJobCounts('completed', 'failed')).toEqual({ completed: 7, failed: 0 });
    await queue.close();

    const collect = await cli(['queue', 'collect', '--redis', redis.url, '--run', 'kill', '-o', out('kill.csv'), '--prompts-out', out('kill-prompts.csv')]);
    expect(collect.code, collect.stderr).toBe(0);
    expect(fs.readFileSync(out('kill.csv')).equals(fs.readFileSync(out('whole.csv')))).toBe(true);
    expect(fs.readFileSync(out('kill-prompts.csv'), 'utf8')).toBe(fs.readFileSync(out('whole-prompts.csv'), 'utf8'));
    const ids = await submissionIds(out('kill.csv'));
    expect(ids.length).toBe(28);
    expect(new Set(ids).size).toBe(28);
    expect(await client.hlen('img2prompt:run:kill:results')).toBe(28);

    // Pushed again (a push cut off and repeated): no chunk is added twice; other inputs under the name are refused.
    const again = await cli(['queue', 'push', images, '--redis', redis.url, '--run', 'kill', '--chunk-size', '4', ...runFlags()]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('run kill was pushed already; queued its missing chunks: 28 images in 7 chunks of 4');
    const recount = chunkQueue('kill');
    expect(await recount.getJobCounts('completed', 'waiting', 'failed')).toEqual({ completed: 7, waiting: 0, failed: 0 });
    await recount.close();
    const other = await cli(['queue', 'push', images, poison, '--redis', redis.url, '--run', 'kill', '--chunk-size', '4', ...runFlags()]);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain('img2prompt: a run "kill" with other inputs or options was pushed at');
  }, 240_000);

  it('Redis SIGKILLed and restarted on its append-only file mid-run: the run completes, nothing lost or doubled', async () => {
    const push = await cli(['queue', 'push', images, '--redis', redis.url, '--run', 'restart', '--chunk-size', '4', ...runFlags()]);
    expect(push.code, push.stderr).toBe(0);
    const queue = chunkQueue('restart');
    const workers = [0, 1].map(() => startWorker(['--run', 'restart', ...workerFlags]));
    await until('two chunks done', async () => ((await queue.getCompletedCount()) >= 2 ? true : undefined), 90_000);
    await queue.close();
    const before = Number(await client.hlen('img2prompt:run:restart:results'));
    expect(before).toBeLessThan(28);
    await redis.kill();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await redis.launch();
    expect(redis.appendOnlyFiles().length).toBeGreaterThan(0);
    for (const w of workers) expect(await exitOf(w), w.stderr()).toBe(0);

    const after = chunkQueue('restart');
    expect(await after.getJobCounts('completed', 'failed', 'waiting', 'active')).toEqual({ completed: 7, failed: 0, waiting: 0, active: 0 });
    await after.close();
    const collect = await cli(['queue', 'collect', '--redis', redis.url, '--run', 'restart', '-o', out('restart.csv')]);
    expect(collect.code, collect.stderr).toBe(0);
    expect(fs.readFileSync(out('restart.csv')).equals(fs.readFileSync(out('whole.csv')))).toBe(true);
    const ids = await submissionIds(out('restart.csv'));
    expect(new Set(ids).size).toBe(28);
    expect(ids.length).toBe(28);

    // Collected: the run can go, keys and all.
    const remove = await cli(['queue', 'remove', '--redis', redis.url, '--run', 'restart']);
    expect(remove.code, remove.stderr).toBe(0);
    expect(await client.keys('*restart*')).toEqual([]);
    expect(await client.smembers('img2prompt:runs')).not.toContain('restart');
  }, 240_000);

  it('a poisoned chunk (unreadable images only) ends in the failed list; the rest completes; status and collect report it', async () => {
    const push = await cli(['queue', 'push', images, poison, '--redis', redis.url, '--run', 'poison', '--chunk-size', '4', '--attempts', '2', '--backoff', '0.2', ...runFlags()]);
    expect(push.code, push.stderr).toBe(0);
    // One worker of this run, one serving whatever run has chunks left (only this one has).
    const workers = [['--run', 'poison'], []].map((run) => startWorker([...run, ...workerFlags]));
    for (const w of workers) expect(await exitOf(w), w.stderr()).toBe(0);
    const log = workers.map((w) => w.stderr()).join('');
    expect(log).toContain('chunk 8/8 failed (attempt 2 of 2, now in the failed list): every image of chunk 7 (4) could not be read (a poisoned chunk)');

    const status = await cli(['queue', 'status', '--redis', redis.url, '--run', 'poison']);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain('run poison: 32 of 32 images done (4 unreadable)');
    expect(status.stdout).toContain('chunks: 7 done, 0 waiting, 0 active, 0 waiting for a retry, 1 failed (of 8)');
    expect(status.stdout).toMatch(/failed: chunk 8 \(4 images, 2 attempts\): every image of chunk 7 \(4\) could not be read \(a poisoned chunk\): zz-bad-1: /);

    const collect = await cli(['queue', 'collect', '--redis', redis.url, '--run', 'poison', '-o', out('poison.csv')]);
    expect(collect.code).toBe(1);
    expect(collect.stderr).toContain('img2prompt: chunk 8 of run poison is in the failed list (4 images, 2 attempts)');
    expect(collect.stderr).toContain('img2prompt: 4 of 32 images could not be read; they got the fallback vector');
    // The rows predict writes for unreadable images too (the fallback vector), so the same bytes.
    expect(fs.readFileSync(out('poison.csv')).equals(fs.readFileSync(out('whole-poison.csv')))).toBe(true);
    const errors = fs.readFileSync(out('poison.csv.errors.txt'), 'utf8').trim().split('\n');
    expect(errors.map((l) => path.basename(l.split('\t')[0]!))).toEqual(['zz-bad-1.png', 'zz-bad-2.png', 'zz-bad-3.png', 'zz-bad-4.png']);

    // Once the cause is fixed, `queue retry` puts the failed chunk back for the workers.
    const retry = await cli(['queue', 'retry', '--redis', redis.url, '--run', 'poison']);
    expect(retry.code, retry.stderr).toBe(0);
    expect(retry.stderr).toBe('run poison: 1 failed chunk is waiting again; workers take it\n');
    const again = await cli(['queue', 'status', '--redis', redis.url, '--run', 'poison', '--json']);
    expect(JSON.parse(again.stdout).counts).toEqual({ completed: 7, waiting: 1, active: 0, delayed: 0, failed: 0 });
  }, 240_000);

  it('URL inputs: each worker downloads its chunk\'s images; a 404 is an unreadable image, as in predict', async () => {
    const server = await startFixtureServer();
    try {
      const names = fs.readdirSync(path.join(KAGGLE_SAMPLE, 'images')).sort();
      for (const f of names) server.route(`/img/${f}`, { body: fs.readFileSync(path.join(images, f)) });
      server.route('/img/gone.png', { body: new Uint8Array(0), status: 404 });
      const list = out('urls.txt');
      fs.writeFileSync(list, [...names, 'gone.png'].map((f) => `${server.url}/img/${f}`).join('\n') + '\n');
      const single = await cli(['predict', '--from', list, '-o', out('urls-whole.csv'), ...runFlags()]);
      expect(single.code, single.stderr).toBe(1);
      const push = await cli(['queue', 'push', '--from', list, '--redis', redis.url, '--run', 'urls', '--chunk-size', '4', ...runFlags()]);
      expect(push.code, push.stderr).toBe(0);
      const w = startWorker(['--run', 'urls', ...workerFlags]);
      expect(await exitOf(w), w.stderr()).toBe(0);
      const collect = await cli(['queue', 'collect', '--redis', redis.url, '--run', 'urls', '-o', out('urls.csv')]);
      expect(collect.code).toBe(1);
      expect(collect.stderr).toContain('img2prompt: 1 of 8 images could not be read; they got the fallback vector');
      expect(fs.readFileSync(out('urls.csv')).equals(fs.readFileSync(out('urls-whole.csv')))).toBe(true);
      expect(fs.readFileSync(out('urls.csv.errors.txt'), 'utf8')).toMatch(new RegExp(`^${server.url}/img/gone\\.png\\t.*404`));
    } finally {
      await server.close();
    }
  }, 120_000);

  it('a worker holding other weights under the run\'s model name refuses the run, naming it', async () => {
    const otherHome = tempDir('img2prompt-queue-other-');
    try {
      await useTinyClipHome(otherHome, 8);
      process.env.IMG2PROMPT_HOME = home;
      const w = startWorker(['--run', 'kill', '--until-done'], otherHome);
      expect(await exitOf(w)).toBe(1);
      expect(w.stderr()).toMatch(/img2prompt: refusing run "kill": its CLIP model "tiny" is files:[0-9a-f]{16}, but this machine's "tiny" is files:[0-9a-f]{16} \(other weights under the same name\)/);
    } finally {
      fs.rmSync(otherHome, { recursive: true, force: true });
    }
  }, 60_000);

  it('refuses a chunk size that is not whole batches (its images would get other bits), a bad run name, an unknown run', async () => {
    const push = await cli(['queue', 'push', images, '--redis', redis.url, '--run', 'odd', '--chunk-size', '6', ...runFlags()]);
    expect(push.code).toBe(1);
    expect(push.stderr).toBe('img2prompt: --chunk-size must be a multiple of --batch-size (4), so each chunk is whole batches of the run and gets its exact results: got 6; try 4\n');
    const bad = await cli(['queue', 'status', '--redis', redis.url, '--run', 'a b']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--run must be 1-100 letters, digits');
    const unknown = await cli(['queue', 'collect', '--redis', redis.url, '--run', 'nope', '-o', out('nope.csv')]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no run "nope" in this Redis');
    expect(fs.existsSync(out('nope.csv'))).toBe(false);
  });
});
