// What the CLI promises about the files it writes (issue 10, items 1, 7, 9 and 12): a full disk fails the
// run naming the file and the disk, and publishes nothing; outputs are checked before any work; two runs
// cannot write one output at once; a killed run's temps are cleaned up by the next; a run never throws
// away an interrupted run's progress unless told to; Ctrl-C says how to resume and exits 130.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { cliArgv, runCliAsync, runCliInProcess, type CliOptions, type CliResult } from './helpers/cli.js';
import { copyKaggleImages, restoreHome, useTinyClipHome, writeSmallBankAndLabels, type SmallBank } from './helpers/tiny-clip-home.js';
import { FAULT_ENV, injectOutputFault, type OutputFault } from './helpers/faulty-output-fs.js';

const work = tempDir('img2prompt-output-safety-');
/** Tiny random CLIP + the real MiniLM. */
const home = path.join(work, 'home');
/** No models at all: a run that reached for one would fail with "not installed", not with the output's problem. */
const emptyHome = path.join(work, 'empty-home');
const images = path.join(work, 'images');
/** The 7 sample images x 4: enough batches of 2 to interrupt a run in the middle. */
const many = path.join(work, 'many');
const PROMPTS = path.join(KAGGLE_SAMPLE, 'prompts.csv');
const NO_DEBUG = { IMG2PROMPT_DEBUG: '' };
let bank: SmallBank;
let saved: string | undefined;
let n = 0;

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

beforeAll(async () => {
  fs.chmodSync(work, 0o755); // readable by `nobody` in the read-only folder cases
  fs.mkdirSync(emptyHome);
  saved = await useTinyClipHome(home, 5);
  copyKaggleImages(images);
  fs.mkdirSync(many);
  for (let c = 0; c < 4; c++) for (const f of fs.readdirSync(images)) fs.copyFileSync(path.join(images, f), path.join(many, `c${c}${f}`));
  bank = writeSmallBankAndLabels(work);
});

afterAll(() => {
  restoreHome(saved);
  fs.rmSync(work, { recursive: true, force: true });
});

/** A fresh, empty output folder per case. */
function outDir(): string {
  const dir = path.join(work, 'out', `case-${n++}`);
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(dir, 0o777);
  return dir;
}

function ls(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

function errorLines(r: CliResult): string[] {
  return r.stderr.split('\n').filter((l) => l.startsWith('img2prompt: '));
}

/** Exit 1 and exactly one stderr line `img2prompt: <file>: <reason>`. */
function expectOneLine(r: CliResult, file: string, reason: RegExp): void {
  expect(r.code, r.stderr).toBe(1);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]!.startsWith(`img2prompt: ${file}: `), lines[0]).toBe(true);
  expect(lines[0]!.slice(`img2prompt: ${file}: `.length)).toMatch(reason);
}

/**
 * The CLI with a disk fault on its writers' seam (test/helpers/faulty-output-fs.ts): in this process for
 * a failing write, in a process of its own for a fault that hangs it or sends it SIGINT.
 */
async function cliWithFault(args: string[], fault: OutputFault, h = home): Promise<CliResult> {
  if (fault.kind === 'hang' || fault.kind === 'interrupt') {
    return runCliAsync(args, h, { env: { ...NO_DEBUG, [FAULT_ENV]: JSON.stringify(fault) }, nodeArgs: ['--import', './test/helpers/faulty-output-fs-preload.ts'] });
  }
  const restore = injectOutputFault(fault);
  try {
    return await runCliInProcess(args, h, { env: NO_DEBUG });
  } finally {
    restore();
  }
}

/** The CLI in this process; in a process of its own only when it must run as another user. */
const cli = (args: string[], h = home, options: CliOptions = {}): Promise<CliResult> =>
  options.uid === undefined ? runCliInProcess(args, h, { env: { ...NO_DEBUG, ...options.env } }) : runCliAsync(args, h, { ...options, env: { ...NO_DEBUG, ...options.env } });
const predictArgs = (out: string, ...more: string[]) => ['predict', images, '-o', out, ...bank.options, ...more];

/**
 * A 2 MB tmpfs holding a filler file that leaves `free` bytes, as on a nearly full disk; or why this
 * machine cannot mount one (not root, or no mount rights in this container).
 */
function nearlyFullDisk(free: number): { dir: string; unmount(): void } | string {
  const dir = path.join(work, `tmpfs-${n++}`);
  fs.mkdirSync(dir);
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0777', 'tmpfs', dir], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `mounting a tmpfs is not permitted here (${(r.error?.message ?? r.stderr).trim()})`;
  const filler = path.join(dir, 'filler');
  const fd = fs.openSync(filler, 'w');
  const block = Buffer.alloc(4096, 1);
  try {
    for (;;) fs.writeSync(fd, block);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    fs.closeSync(fd);
  }
  fs.truncateSync(filler, fs.statSync(filler).size - free);
  return { dir, unmount: () => spawnSync('umount', [dir]) };
}

describe('a full disk (item 1)', () => {
  const full: OutputFault = { match: '^\\.sub\\.csv\\.\\d+\\.', kind: 'ENOSPC', after: 8192 };

  it('embed: exit 1, one line naming the submission and "no space left on device", nothing published (simulated)', async () => {
    const dir = outDir();
    const out = path.join(dir, 'sub.csv');
    expectOneLine(await cliWithFault(['embed', '--prompts', PROMPTS, '-o', out], full), out, /^cannot write: no space left on device$/);
    expect(ls(dir)).toEqual([]);
  });

  it('demo: the same, and no truncated file left behind (simulated)', async () => {
    const dir = outDir();
    const out = path.join(dir, 'sub.csv');
    const r = await cliWithFault(['demo', '--metric-only', '-o', out], full);
    expect(r.code).toBe(1);
    expect(errorLines(r)).toEqual([`img2prompt: ${out}: cannot write: no space left on device`]);
    expect(ls(dir)).toEqual([]);
  });

  it('predict: blames the disk, not the data; no submission, no temp, the checkpoint kept for --resume (simulated)', async () => {
    const dir = outDir();
    const out = path.join(dir, 'sub.csv');
    const r = await cliWithFault(predictArgs(out), { ...full, after: 20_000 });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).not.toMatch(/invalid submission/);
    expect(errorLines(r)).toEqual([`img2prompt: ${out}: cannot write: no space left on device`]);
    expect(ls(dir)).toEqual(['sub.csv.ckpt', 'sub.csv.ckpt.gap.json', 'sub.csv.ckpt.inputs', 'sub.csv.ckpt.sample']);
  });

  it('embed, demo and predict into a real nearly full tmpfs: the disk is named, nothing but the filler remains', async (ctx) => {
    const disk = nearlyFullDisk(16 * 1024);
    if (typeof disk === 'string') ctx.skip(disk);
    const { dir, unmount } = disk as Exclude<typeof disk, string>;
    try {
      for (const args of [['embed', '--prompts', PROMPTS], ['demo', '--metric-only'], ['predict', images, ...bank.options]]) {
        const out = path.join(dir, 'sub.csv');
        const r = await cli([...args, '-o', out]);
        expect(r.code, r.stderr).toBe(1);
        const last = errorLines(r).at(-1) ?? '';
        expect(last, r.stderr).toMatch(new RegExp(`^img2prompt: ${dir}/sub\\.csv(\\.ckpt[.a-z]*)?: cannot (write|append to checkpoint): no space left on device$`));
        // predict keeps what its checkpoint holds (resumable once there is room); nothing else is left.
        expect(ls(dir).filter((f) => !f.startsWith('sub.csv.ckpt'))).toEqual(['filler']);
        for (const f of ls(dir).filter((x) => x.startsWith('sub.csv.ckpt'))) fs.rmSync(path.join(dir, f));
      }
    } finally {
      unmount();
    }
  });
});

/**
 * A folder the CLI cannot write into: read-only permission bits, with the CLI run as `nobody` when this
 * test runs as root (root ignores permission bits); or why this machine cannot provide one.
 */
function readOnlyFolder(): { dir: string; as: CliOptions } | string {
  const dir = outDir();
  fs.chmodSync(dir, 0o555);
  if (!isRoot) return { dir, as: {} };
  const ok = spawnSync(process.execPath, ['-e', ''], { uid: NOBODY, gid: NOBODY }).status === 0;
  return ok ? { dir, as: { uid: NOBODY, gid: NOBODY } } : 'as root, a read-only folder needs a CLI run as uid 65534, which this machine refuses';
}

describe('outputs checked before any work (item 7)', () => {
  it('predict -o naming an existing folder: refused at once, nothing written', async () => {
    const dir = outDir();
    const target = path.join(dir, 'sub.csv');
    fs.mkdirSync(target);
    expectOneLine(await cli(['predict', images, '-o', target], emptyHome), target, /^output is a directory, expected a file name$/);
    expect(ls(dir)).toEqual(['sub.csv']);
    expect(ls(target)).toEqual([]);
  });

  for (const option of ['--prompts-out', '--errors', '--nearest-out'] as const) {
    it(`predict ${option} into a read-only folder: refused before any model is opened; no submission, no checkpoint`, async (ctx) => {
      const ro = readOnlyFolder();
      if (typeof ro === 'string') ctx.skip(ro);
      const { dir: roDir, as } = ro as Exclude<typeof ro, string>;
      const dir = outDir();
      const target = path.join(roDir, 'side.txt');
      const r = await cli(['predict', images, '-o', path.join(dir, 'sub.csv'), option, target], emptyHome, as);
      expectOneLine(r, target, new RegExp(`^output folder ${roDir} is not writable \\((permission denied|read-only file system)\\)$`));
      expect(ls(dir)).toEqual([]);
      expect(ls(roDir)).toEqual([]);
    });
  }

  it('interrogate --details and embed-images -o naming a folder, -o and --prompts-out naming one file: refused at once', async () => {
    const dir = outDir();
    const folder = path.join(dir, 'existing');
    fs.mkdirSync(folder);
    const csv = path.join(dir, 'p.csv');
    expectOneLine(await cli(['interrogate', images, '--model', 'tiny', '-o', csv, '--details', folder], emptyHome), folder, /^output is a directory/);
    expectOneLine(await cli(['embed-images', images, '--model', 'tiny', '-o', folder], emptyHome), folder, /^output is a directory/);
    expectOneLine(await cli(['predict', images, '-o', csv, '--prompts-out', csv], emptyHome), csv, /^named for two outputs of this run \(also /);
    expect(ls(dir)).toEqual(['existing']);
  });
});

/** A live process that is not this test and not the CLI: a lock holder. */
function sleeper(): ChildProcess {
  return spawn('sleep', ['60'], { stdio: 'ignore' });
}

describe('one run per output at a time (item 9)', () => {
  it('a second run is refused, naming the first (pid, since when); the first one\'s file is untouched', async () => {
    const dir = outDir();
    const out = path.join(dir, 'sub.csv');
    fs.writeFileSync(out, 'being written by the first run\n');
    const holder = sleeper();
    try {
      const since = new Date();
      fs.writeFileSync(`${out}.lock`, `${holder.pid}\n${since.toISOString()}\n`);
      const stamp = since.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
      const pattern = new RegExp(`^another run is writing this file \\(pid ${holder.pid}, since ${stamp}\\); wait for it to finish or choose another output$`);
      expectOneLine(await cli(['embed', '--prompts', PROMPTS, '-o', out]), out, pattern);
      // predict too, before it opens a model.
      expectOneLine(await cli(['predict', images, '-o', out], emptyHome), out, pattern);
      expect(fs.readFileSync(out, 'utf8')).toBe('being written by the first run\n');
      expect(ls(dir)).toEqual(['sub.csv', 'sub.csv.lock']);
    } finally {
      holder.kill();
    }
  });

  it('a lock whose process is gone, or whose pid now belongs to a later process, is taken over', async () => {
    const dir = outDir();
    const out = path.join(dir, 'sub.csv');
    fs.writeFileSync(`${out}.lock`, '2147483646\n2020-01-01T00:00:00.000Z\n');
    const r = await cli(['embed', '--prompts', PROMPTS, '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(ls(dir)).toEqual(['sub.csv']);

    if (!fs.existsSync('/proc/self/stat')) return; // telling a reused pid apart needs process start times
    const later = sleeper();
    try {
      fs.writeFileSync(`${out}.lock`, `${later.pid}\n2020-01-01T00:00:00.000Z\n`);
      expect((await cli(['embed', '--prompts', PROMPTS, '-o', out])).code).toBe(0);
      expect(ls(dir)).toEqual(['sub.csv']);
    } finally {
      later.kill();
    }
  });

  it('a second run while the first is still writing: refused, naming the first; never both succeed', async () => {
    const dir = outDir();
    const out = path.join(dir, 'sub.csv');
    // The first one holds its output for as long as its last write hangs.
    const first = spawn(process.execPath, cliArgv(['embed', '--prompts', PROMPTS, '-o', out], ['--import', './test/helpers/faulty-output-fs-preload.ts']), {
      env: { ...process.env, IMG2PROMPT_HOME: home, IMG2PROMPT_PROGRESS: '0', [FAULT_ENV]: JSON.stringify({ match: '^\\.sub\\.csv\\.\\d+\\.', kind: 'hang', after: 1000 }) },
      stdio: 'ignore',
    });
    try {
      // Its lock, then the temp of its final write (the probes of the output check come before the lock).
      while (!(ls(dir).includes('sub.csv.lock') && ls(dir).some((f) => f.endsWith('.tmp')))) await new Promise((r) => setTimeout(r, 20));
      const second = await cli(['embed', '--prompts', PROMPTS, '-o', out]);
      expect(second.code).toBe(1);
      expect(errorLines(second)).toEqual([expect.stringMatching(new RegExp(`^img2prompt: ${out}: another run is writing this file \\(pid ${first.pid}, since `))]);
    } finally {
      first.kill('SIGKILL');
    }
  });
});

/** Whole records (after the header) in a checkpoint-format file. */
function records(file: string): number {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').slice(1).filter((l) => l.endsWith('}')).length : 0;
}

/** Runs the CLI and sends it `signal` once `ready()` holds; resolves with its exit code and stderr. */
async function signalWhen(args: string[], signal: NodeJS.Signals, ready: () => boolean, env: Record<string, string> = {}): Promise<CliResult> {
  const child = spawn(process.execPath, cliArgv(args, env[FAULT_ENV] ? ['--import', './test/helpers/faulty-output-fs-preload.ts'] : []), {
    env: { ...process.env, IMG2PROMPT_HOME: home, IMG2PROMPT_PROGRESS: '0', ...NO_DEBUG, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stderr!.on('data', (d) => (stderr += d));
  child.stdout!.on('data', (d) => (stdout += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => (done = true));
  while (!done) {
    if (ready()) {
      child.kill(signal);
      break;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  const code = await exited;
  await new Promise((r) => setImmediate(r));
  return { code, stdout, stderr };
}

describe('interrupted runs (item 12)', () => {
  it('a SIGKILLed run leaves its temp and lock; the next run writing the same output removes both', async () => {
    const dir = outDir();
    const out = path.join(dir, 'sub.csv');
    const hang: OutputFault = { match: '^\\.sub\\.csv\\.\\d+\\.', kind: 'hang', after: 5000 };
    const killed = await signalWhen(['embed', '--prompts', PROMPTS, '-o', out], 'SIGKILL', () => ls(dir).includes('sub.csv.lock') && ls(dir).some((f) => f.endsWith('.tmp')), { [FAULT_ENV]: JSON.stringify(hang) });
    expect(killed.code).toBe(null);
    const left = ls(dir);
    expect(left).toEqual([expect.stringMatching(/^\.sub\.csv\.\d+\.[0-9a-f]{8}\.tmp$/), 'sub.csv.lock']);

    const r = await cli(['embed', '--prompts', PROMPTS, '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(ls(dir)).toEqual(['sub.csv']);
  });

  it('Ctrl-C during the final write: exit 130, the temp and the lock removed, nothing published', async () => {
    const dir = outDir();
    const out = path.join(dir, 'sub.csv');
    const r = await cliWithFault(['embed', '--prompts', PROMPTS, '-o', out], { match: '^\\.sub\\.csv\\.\\d+\\.', kind: 'interrupt', after: 5000 });
    expect(r.code).toBe(130);
    expect(errorLines(r)).toEqual(['img2prompt: interrupted']);
    expect(ls(dir)).toEqual([]);
  });

  it('Ctrl-C in predict says how to resume; a plain rerun keeps the checkpoint and refuses; the hint resumes; --restart starts over, to the same bytes', async () => {
    const args = (out: string, ...more: string[]) => ['predict', many, '-o', out, '--batch-size', '2', '--gap-images', '4', ...bank.options, ...more];
    const dir = outDir();
    const out = path.join(dir, 'sub.csv');
    const ckpt = `${out}.ckpt`;
    const stopped = await signalWhen(args(out), 'SIGINT', () => records(ckpt) >= 4);
    expect(stopped.code, stopped.stderr).toBe(130);
    const last = errorLines(stopped).at(-1)!;
    const hint = `img2prompt: interrupted; what is finished is kept in ${ckpt}; to continue, run: `;
    expect(last.startsWith(hint), last).toBe(true);
    const resumeCommand = last.slice(hint.length);
    expect(resumeCommand).toBe(`img2prompt ${args(out, '--resume').join(' ')}`);
    expect(ls(dir)).toEqual(['sub.csv.ckpt', 'sub.csv.ckpt.gap.json', 'sub.csv.ckpt.inputs', 'sub.csv.ckpt.sample']);
    const saved = new Map(ls(dir).map((f) => [f, fs.readFileSync(path.join(dir, f))]));
    const done = records(ckpt);

    // Without --resume: refused, naming the checkpoint and both ways on; the saved state is untouched.
    expectOneLine(await cli(args(out)), ckpt, /^an earlier run of this output was interrupted and its progress is saved here; add --resume to continue it, or --restart to discard it and start over$/);
    for (const [f, bytes] of saved) expect(fs.readFileSync(path.join(dir, f)).equals(bytes)).toBe(true);
    // Both at once is a usage error.
    expect((await cli(args(out, '--resume', '--restart'))).code).toBe(2);

    const resumed = await cli(resumeCommand.split(' ').slice(1));
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(`resuming from ${ckpt}: ${done} of 28 images already done`);
    expect(ls(dir)).toEqual(['sub.csv']);
    const fromResume = fs.readFileSync(out);

    // --restart discards the saved state and computes every image again: an uninterrupted run, whose
    // bytes the resumed run must have matched.
    for (const [f, bytes] of saved) fs.writeFileSync(path.join(dir, f), bytes);
    const restarted = await cli(args(out, '--restart'));
    expect(restarted.code, restarted.stderr).toBe(0);
    expect(restarted.stderr).not.toContain('resuming');
    expect(restarted.stderr).toContain('; CLIP encoded 28 images;');
    expect(fs.readFileSync(out).equals(fromResume)).toBe(true);
    expect(ls(dir)).toEqual(['sub.csv']);
  });
});
