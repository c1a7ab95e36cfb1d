// Runs the benchmarks in bench/ (*.bench.ts) one after another, each in its own process so one
// benchmark's threads, caches and heap do not colour the next one's numbers.
//   npm run bench                          every benchmark
//   npm run bench -- minilm topk           those whose name contains "minilm" or "topk"
//   npm run bench -- clip -- --quick       arguments after a second `--` go to each benchmark
//   npm run bench -- --list | --dry-run    show what exists / what would run, run nothing
// Exit code: 0 when every selected benchmark exited 0, 1 when one failed, 2 for a usage error.
// bench/pipeline.sh (whole-CLI timings) is a shell script on the built dist/ and runs on its own.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH_DIR);
const SUFFIX = '.bench.ts';
const USAGE = 'usage: node --import tsx bench/run.ts [--list] [--dry-run] [name-filter...] [-- benchmark-args...]';

interface RunPlan {
  list: boolean;
  dryRun: boolean;
  /** Benchmark names (file names without .bench.ts), in run order. */
  selected: string[];
  passThrough: string[];
}

function benchmarkNames(dir = BENCH_DIR): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(SUFFIX))
    .map((f) => f.slice(0, -SUFFIX.length))
    .sort();
}

/** Parse the command line against the benchmarks that exist; throws a usage message on bad input. */
function planRun(argv: string[], available: string[]): RunPlan {
  const cut = argv.indexOf('--');
  const own = cut === -1 ? argv : argv.slice(0, cut);
  const passThrough = cut === -1 ? [] : argv.slice(cut + 1);
  let list = false;
  let dryRun = false;
  const filters: string[] = [];
  for (const a of own) {
    if (a === '--list') list = true;
    else if (a === '--dry-run') dryRun = true;
    else if (a === '-h' || a === '--help') throw new UsageError(USAGE, 0);
    else if (a.startsWith('-')) throw new UsageError(`unknown option ${a}\n${USAGE}`);
    else filters.push(a);
  }
  for (const f of filters) {
    if (!available.some((n) => n.includes(f))) {
      throw new UsageError(`no benchmark matches "${f}" (available: ${available.join(', ')})`);
    }
  }
  const selected = filters.length === 0 ? available : available.filter((n) => filters.some((f) => n.includes(f)));
  return { list, dryRun, selected, passThrough };
}

class UsageError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
  }
}

function commandFor(name: string, passThrough: string[]): string[] {
  return ['--import', 'tsx', path.join('bench', name + SUFFIX), ...passThrough];
}

function main(argv: string[]): number {
  let plan: RunPlan;
  try {
    plan = planRun(argv, benchmarkNames());
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    (err.exitCode === 0 ? process.stdout : process.stderr).write(`${err.message}\n`);
    return err.exitCode;
  }
  if (plan.list) {
    for (const name of plan.selected) process.stdout.write(`${name}\tbench/${name}${SUFFIX}\n`);
    return 0;
  }
  const failed: string[] = [];
  for (const name of plan.selected) {
    const args = commandFor(name, plan.passThrough);
    process.stdout.write(`\n## ${name}: node ${args.join(' ')}\n`);
    if (plan.dryRun) continue;
    const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: 'inherit' });
    if (r.error) {
      process.stderr.write(`bench/run: ${name}: cannot start node (${r.error.message})\n`);
      failed.push(name);
    } else if (r.signal) {
      // Ctrl-C reaches the benchmark too; stop rather than start the next one.
      process.stderr.write(`bench/run: ${name}: killed by ${r.signal}; stopping\n`);
      return 1;
    } else if (r.status !== 0) {
      process.stderr.write(`bench/run: ${name}: exited with ${r.status}\n`);
      failed.push(name);
    }
  }
  if (failed.length > 0) {
    process.stderr.write(`bench/run: ${failed.length} of ${plan.selected.length} benchmarks failed: ${failed.join(', ')}\n`);
    return 1;
  }
  return 0;
}

process.exitCode = main(process.argv.slice(2));
