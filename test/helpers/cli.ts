import { execFile, spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { main } from '../../src/cli/main.js';

/** What a CLI process left behind. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The node arguments that run `img2prompt args` from source (tsx), so a test never runs a stale dist/. */
export function cliArgv(args: readonly string[], nodeArgs: readonly string[] = []): string[] {
  return ['--import', 'tsx', ...nodeArgs, 'src/cli/bin.ts', ...args];
}

export interface CliOptions {
  /** Variables added to (or overriding) the test's environment. */
  env?: Record<string, string>;
  /** Run as this user and group (the test must be root). */
  uid?: number;
  gid?: number;
  /** Kill the process (SIGKILL) after this many ms, so a run that would hang fails instead (code null). */
  timeoutMs?: number;
  /** Extra node flags before the CLI, e.g. `--import` of a test preload. */
  nodeArgs?: string[];
}

function spawnOptions(home: string, { env = {}, uid, gid, timeoutMs }: CliOptions) {
  const deadline = timeoutMs ? { timeout: timeoutMs, killSignal: 'SIGKILL' as const } : {};
  return { env: { ...process.env, IMG2PROMPT_HOME: home, IMG2PROMPT_PROGRESS: '0', ...env }, uid, gid, encoding: 'utf8' as const, ...deadline };
}

/** Runs `img2prompt args` with IMG2PROMPT_HOME = `home` and no progress bars. */
export function runCli(args: readonly string[], home: string, options: CliOptions = {}): CliResult {
  const r = spawnSync(process.execPath, cliArgv(args, options.nodeArgs), spawnOptions(home, options));
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** runCli without blocking, so many short runs can overlap. */
export function runCliAsync(args: readonly string[], home: string, options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, cliArgv(args, options.nodeArgs), spawnOptions(home, options), (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A stream that keeps the text written to it (not a terminal: no progress bars, no colour). */
function capture(): Writable & { text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk);
      done();
    },
  });
  return Object.assign(stream, { isTTY: false, text: () => text });
}

export interface InProcessOptions {
  /** Variables set (or overriding) for the run; put back as they were when it ends. */
  env?: Record<string, string>;
  /** Stop waiting after this many ms and report code null, so a run that would hang fails instead (it is not killed). */
  timeoutMs?: number;
}

/** The variables the in-process runs now in flight have set, and how many share them. */
let active: { key: string; saved: Record<string, string | undefined>; runs: number } | undefined;

function enterEnv(vars: Record<string, string>): void {
  const key = JSON.stringify(Object.entries(vars).sort());
  if (active) {
    // One process has one environment: overlapping runs must agree on it.
    if (active.key !== key) throw new Error(`in-process CLI runs that overlap need the same environment: ${active.key} vs ${key}`);
    active.runs++;
    return;
  }
  const saved: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(vars)) {
    saved[name] = process.env[name];
    process.env[name] = value;
  }
  active = { key, saved, runs: 1 };
}

function leaveEnv(): void {
  if (!active || --active.runs > 0) return;
  for (const [name, value] of Object.entries(active.saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  active = undefined;
}

/**
 * Runs `img2prompt args` in this process through `main()`, with IMG2PROMPT_HOME = `home` and no progress
 * bars, and returns what it wrote and its exit code: the same result as runCli without starting node.
 * For everything that needs no process of its own (signals, another user, a child's environment, a TTY).
 */
export async function runCliInProcess(args: readonly string[], home: string, options: InProcessOptions = {}): Promise<CliResult> {
  const stdout = capture();
  const stderr = capture();
  enterEnv({ IMG2PROMPT_HOME: home, IMG2PROMPT_PROGRESS: '0', ...options.env });
  try {
    const run = main(args, { stdout, stderr });
    let timer: NodeJS.Timeout | undefined;
    const deadline = options.timeoutMs
      ? new Promise<null>((resolve) => {
          timer = setTimeout(() => resolve(null), options.timeoutMs);
        })
      : undefined;
    const code = deadline ? await Promise.race([run, deadline]) : await run;
    clearTimeout(timer);
    return { code, stdout: stdout.text(), stderr: stderr.text() };
  } finally {
    leaveEnv();
  }
}
