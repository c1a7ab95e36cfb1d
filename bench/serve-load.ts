// Load benchmark of `img2prompt serve` (not a test): autocannon against POST /v1/interrogate on the
// random-weight ViT-B-32 installed as `bench-b32` (its label banks already built in the cache).
//   npm run build:ts && node --import tsx bench/serve-load.ts [--seconds 20] [--model bench-b32]
// Measures, on one machine in one run:
//   1. the CLI, before and after the server rows: `img2prompt interrogate --mode fast` on 7 and on 210
//      images (the 7 Kaggle PNGs under many names); images/s with start-up included, and the steady
//      rate (start-up subtracted: the 203 extra images over the extra seconds);
//   2. the server (a separate `img2prompt serve --no-predict` process): throughput and p50/p99 latency
//      at concurrency 1, 8 and 64, one image per request, the same 7 images in turn, `score=0` so the
//      work is the CLI's (the CLI scores prompts only with --details); the served images/s ÷ the CLI's;
//   3. overload: a server with a small queue (16) sent 10× the measured capacity, open loop (a request
//      every 1/rate s whatever the answers): counts by status, network errors, and the server's RSS
//      sampled every second.
// Each phase prints the share of the machine's CPU other processes took meanwhile (it may be shared).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { describeMachine } from './machine.js';

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const BIN = path.join(ROOT, 'dist', 'src', 'cli', 'bin.js');
const SAMPLE = path.resolve(ROOT, '..', 'shared', 'assets', 'eval', 'kaggle-sample', 'images');
const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
};
const MODEL = arg('model', 'bench-b32');
const SECONDS = Number(arg('seconds', '20'));
const CORES = os.cpus().length;
const TICK = 100; // USER_HZ

if (!fs.existsSync(BIN)) throw new Error(`${BIN} is missing: run \`npm run build:ts\` first`);

/** Busy CPU seconds of the whole machine since boot (/proc/stat, steal included). */
function machineBusy(): number {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!) / TICK;
}

/** CPU seconds of process `pid` (all its threads) so far; 0 once it is gone. */
function processCpu(pid: number): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICK;
  } catch {
    return 0;
  }
}

function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

const ownCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** Runs `work` and gives the share of all CPUs that processes other than ours (this one, `pids()`) used meanwhile. */
async function measured<T>(work: () => Promise<T>, pids: () => number[], extraOwn: (r: T) => number = () => 0): Promise<{ result: T; others: number }> {
  const t0 = performance.now();
  const b0 = machineBusy();
  const o0 = ownCpu() + pids().reduce((s, p) => s + processCpu(p), 0);
  const result = await work();
  const o1 = ownCpu() + pids().reduce((s, p) => s + processCpu(p), 0) + extraOwn(result);
  const wall = (performance.now() - t0) / 1000;
  return { result, others: Math.max(0, machineBusy() - b0 - (o1 - o0)) / (wall * CORES) };
}

function imageFolder(count: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `img2prompt-serve-load-${count}-`));
  const src = fs.readdirSync(SAMPLE).filter((f) => f.endsWith('.png')).sort();
  for (let i = 0; i < count; i++) fs.copyFileSync(path.join(SAMPLE, src[i % src.length]!), path.join(dir, `img${String(i).padStart(4, '0')}.png`));
  return dir;
}

/** One CLI interrogate process, timed by /usr/bin/time: wall seconds and its CPU seconds. */
function runCli(dir: string): { wall: number; cpu: number } {
  const out = path.join(dir, 'prompts.csv');
  const r = spawnSync('/usr/bin/time', ['-f', 'TIME %e %U %S', process.execPath, BIN, 'interrogate', dir, '--model', MODEL, '--mode', 'fast', '-o', out], {
    encoding: 'utf8', env: { ...process.env, IMG2PROMPT_PROGRESS: '0' },
  });
  const m = /TIME ([\d.]+) ([\d.]+) ([\d.]+)/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`interrogate failed (${r.status}):\n${r.stderr}`);
  return { wall: Number(m[1]), cpu: Number(m[2]) + Number(m[3]) };
}

interface Served {
  child: ChildProcess;
  url: string;
}

/** Starts `img2prompt serve` on a free port and waits until it says ready. */
function startServe(extra: string[]): Promise<Served> {
  const child = spawn(process.execPath, [BIN, 'serve', '--model', MODEL, '--no-predict', '--port', '0', ...extra], {
    stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, IMG2PROMPT_PROGRESS: '0' },
  });
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      err += d;
      const m = /ready on (http:\/\/[^\s;]+)/.exec(err);
      if (m) resolve({ child, url: m[1]! });
    });
    child.on('exit', (code) => reject(new Error(`serve exited ${code}:\n${err}`)));
  });
}

function stopServe(s: Served): Promise<void> {
  return new Promise((resolve) => {
    s.child.removeAllListeners('exit');
    s.child.on('exit', () => resolve());
    s.child.kill('SIGTERM');
  });
}

const images = fs.readdirSync(SAMPLE).filter((f) => f.endsWith('.png')).sort().map((f) => fs.readFileSync(path.join(SAMPLE, f)));
const requests = images.map((body) => ({ method: 'POST' as const, path: '/v1/interrogate?mode=fast&score=0', headers: { 'content-type': 'image/png' }, body }));

function cannon(url: string, connections: number, seconds: number, extra: Partial<autocannon.Options> = {}): Promise<autocannon.Result> {
  return autocannon({ url, connections, duration: seconds, requests, timeout: 60, ...extra });
}

interface OpenLoopResult {
  sent: number;
  seconds: number;
  statuses: Map<number, number>;
  errors: number;
  /** Milliseconds of each 200 answer. */
  latencies: number[];
  /** Milliseconds of each 429 answer. */
  refusedMs: number[];
}

/** Sends one of the images every 1/rate s for `seconds`, not waiting for answers; resolves once all are answered (`seconds` then: until the last answer). */
async function openLoop(url: string, rate: number, seconds: number): Promise<OpenLoopResult> {
  const out: OpenLoopResult = { sent: 0, seconds, statuses: new Map(), errors: 0, latencies: [], refusedMs: [] };
  const inFlight: Promise<void>[] = [];
  const t0 = performance.now();
  for (let i = 0; performance.now() - t0 < seconds * 1000; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const start = performance.now();
    const q = requests[i % requests.length]!;
    out.sent++;
    inFlight.push(
      fetch(`${url}${q.path}`, { method: 'POST', headers: q.headers, body: q.body })
        .then(async (res) => {
          await res.arrayBuffer();
          out.statuses.set(res.status, (out.statuses.get(res.status) ?? 0) + 1);
          const ms = performance.now() - start;
          if (res.status === 200) out.latencies.push(ms);
          if (res.status === 429) out.refusedMs.push(ms);
        })
        .catch(() => {
          out.errors++;
        }),
    );
  }
  await Promise.all(inFlight);
  out.seconds = (performance.now() - t0) / 1000;
  return out;
}

const f1 = (x: number) => x.toFixed(1);
const pct = (x: number) => `${(100 * x).toFixed(0)} %`;

async function main(): Promise<void> {
  console.log(`machine: ${describeMachine()}`);
  console.log(`load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);

  // 1. The CLI, before and after the server rows (the machine may be shared: load drifts over minutes).
  const small = imageFolder(7);
  const large = imageFolder(210);
  runCli(small); // page cache warm for the banks
  const cliRates = async (when: string) => {
    const a = await measured(async () => runCli(small), () => [], (r) => r.cpu);
    const b = await measured(async () => runCli(large), () => [], (r) => r.cpu);
    const withStart = 210 / b.result.wall;
    const steady = (210 - 7) / (b.result.wall - a.result.wall);
    console.log(`CLI ${when}: 7 images ${a.result.wall.toFixed(2)} s (others ${pct(a.others)}), 210 images ${b.result.wall.toFixed(2)} s (others ${pct(b.others)}): ${withStart.toFixed(2)} images/s with start-up, ${steady.toFixed(2)} steady`);
    return { withStart, steady };
  };
  console.log(`\n## CLI interrogate --mode fast (${MODEL})`);
  const cliBefore = await cliRates('before');

  // 2. The server at concurrency 1, 8, 64.
  const server = await startServe([]);
  const pid = server.child.pid!;
  await cannon(server.url, 8, 5); // warm-up: page cache, ORT arenas
  console.log(`\n## serve (--max-batch 32 --max-wait-ms 10 --queue 256), ${SECONDS} s per row, one image per request`);
  console.log('| concurrency | requests/s (= images/s) | p50 ms | p99 ms | non-2xx | ÷ CLI steady (before) | ÷ CLI with start-up (before) | server RSS MiB | others |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  let capacity = 0;
  const { steady: cliSteady, withStart: cliWithStart } = cliBefore;
  for (const c of [1, 8, 64]) {
    const { result: r, others } = await measured(() => cannon(server.url, c, SECONDS), () => [pid]);
    const rate = r['2xx'] / r.duration;
    if (c === 64) capacity = rate;
    console.log(`| ${c} | ${f1(rate)} | ${r.latency.p50} | ${r.latency.p99} | ${r.non2xx + r.errors} | ${(rate / cliSteady).toFixed(2)} | ${(rate / cliWithStart).toFixed(2)} | ${rssMiB(pid).toFixed(0)} | ${pct(others)} |`);
  }
  const scored = await measured(() => cannon(server.url, 64, SECONDS, { requests: requests.map((q) => ({ ...q, path: '/v1/interrogate?mode=fast' })) }), () => [pid]);
  const sr = scored.result;
  console.log(`(c = 64 with the default score=1, one text-tower pass per image for the similarity: ${f1(sr['2xx'] / sr.duration)} images/s, p50 ${sr.latency.p50} ms, p99 ${sr.latency.p99} ms, others ${pct(scored.others)})`);
  await stopServe(server);

  const cliAfter = await cliRates('after');
  const meanSteady = (cliBefore.steady + cliAfter.steady) / 2;
  const meanWithStart = (cliBefore.withStart + cliAfter.withStart) / 2;
  console.log(`c = 64 served ${f1(capacity)} images/s ÷ CLI mean of before and after: ${(capacity / meanSteady).toFixed(2)} (steady ${meanSteady.toFixed(2)}), ${(capacity / meanWithStart).toFixed(2)} (with start-up ${meanWithStart.toFixed(2)})`);
  fs.rmSync(small, { recursive: true, force: true });
  fs.rmSync(large, { recursive: true, force: true });

  // 3. Overload: 10× the capacity just measured, open loop (a request every 1/rate s whatever the
  // answers), against a queue of 16. autocannon cannot do this: its overallRate is spread over its
  // connections, each waiting for its answer, and under-delivers.
  const overloaded = await startServe(['--queue', '16']);
  const qpid = overloaded.child.pid!;
  await cannon(overloaded.url, 8, 3);
  const rate = 10 * capacity;
  const rss: number[] = [rssMiB(qpid)];
  const sampler = setInterval(() => rss.push(rssMiB(qpid)), 1000);
  const { result: o, others } = await measured(() => openLoop(overloaded.url, rate, 30), () => [qpid]);
  clearInterval(sampler);
  rss.push(rssMiB(qpid));
  const codes = [...o.statuses].sort().map(([k, v]) => `${k}: ${v}`).join(', ');
  const metrics = await (await fetch(`${overloaded.url}/metrics`)).text();
  const fiveHundreds = metrics.split('\n').filter((l) => /^img2prompt_http_requests_total\{.*status="5\d\d"\}/.test(l));
  const served = (o.statuses.get(200) ?? 0) / o.seconds;
  const fives = [...o.statuses].filter(([k]) => k >= 500).reduce((n, [, v]) => n + v, 0);
  console.log(`\n## overload: --queue 16, open loop at ${f1(rate)} requests/s (10 × ${f1(capacity)}) for 30 s, ${o.sent} sent (others ${pct(others)})`);
  console.log(`answers: ${codes}; 5xx ${fives}; network errors ${o.errors}; served ${f1(served)} images/s`);
  const lat = (q: number) => o.latencies.length ? Math.round(o.latencies.sort((x, y) => x - y)[Math.floor(q * (o.latencies.length - 1))]!) : NaN;
  console.log(`latency of the 200s: p50 ${lat(0.5)} ms, p99 ${lat(0.99)} ms; of the 429s: p50 ${o.refusedMs.sort((x, y) => x - y)[Math.floor(o.refusedMs.length / 2)]?.toFixed(0) ?? '-'} ms`);
  console.log(`server /metrics 5xx lines: ${fiveHundreds.length === 0 ? 'none' : fiveHundreds.join('; ')}`);
  console.log(`server RSS MiB, every second: ${rss.map((x) => x.toFixed(0)).join(' ')}`);
  console.log(`RSS: first ${rss[0]!.toFixed(0)}, min ${Math.min(...rss).toFixed(0)}, max ${Math.max(...rss).toFixed(0)}, last ${rss.at(-1)!.toFixed(0)} MiB`);
  await new Promise((r) => setTimeout(r, 5000));
  console.log(`RSS 5 s after the load stopped: ${rssMiB(qpid).toFixed(0)} MiB`);
  await stopServe(overloaded);
  console.log(`\nload average at end: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
