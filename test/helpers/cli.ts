import { execFile, spawnSync } from 'node:child_process';

/** What a CLI process left behind. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The node arguments that run `img2prompt args` from source (tsx), so a test never runs a stale dist/. */
export function cliArgv(args: readonly string[], nodeArgs: readonly string[] = []): string[] {
  return ['--import', 'tsx', ...nodeArgs, 'src/cli/main.ts', ...args];
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
