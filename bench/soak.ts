// Leak soak for the addon: repeats one native operation and prints RSS after every 300 steps, so a
// leak shows as steady growth. Each step yields to the event loop, because N-API finalizers of
// returned tensors run there (a tight runSync loop that never yields grows without leaking).
//   node --expose-gc --import tsx bench/soak.ts open|run|runSync|topk
import { Session, tensor } from '../src/runtime/session.js';
import { topk } from '../src/rank/topk.js';
import { asset } from '../test/helpers/paths.js';

const what = process.argv[2] ?? '';
if (!['open', 'run', 'runSync', 'topk'].includes(what)) {
  console.error('usage: node --expose-gc --import tsx bench/soak.ts open|run|runSync|topk');
  process.exit(2);
}
const model = asset('models-tiny', 'optimum-tiny-distilbert-sst2', 'model.onnx');
const rssMiB = (): string => (process.memoryUsage().rss / 2 ** 20).toFixed(0);
const ids = new BigInt64Array(16 * 32).fill(101n);
const mask = new BigInt64Array(16 * 32).fill(1n);
const feeds = () => ({ input_ids: tensor('int64', ids, [16, 32]), attention_mask: tensor('int64', mask, [16, 32]) });
const bank = { data: new Float32Array(20_000 * 512).map(() => Math.random() - 0.5), dims: [20_000, 512] };
const queries = { data: new Float32Array(8 * 512).map(() => Math.random()), dims: [8, 512] };
const shared = await Session.open(model, { providers: ['cpu'], intraOpThreads: 1 });

async function step(): Promise<void> {
  await new Promise((r) => setImmediate(r));
  if (what === 'open') (await Session.open(model, { providers: ['cpu'], intraOpThreads: 1 })).close();
  else if (what === 'run') for (let i = 0; i < 20; i++) await shared.run(feeds());
  else if (what === 'runSync') for (let i = 0; i < 20; i++) shared.runSync(feeds());
  else for (let i = 0; i < 10; i++) await topk(queries, bank, 10);
}

const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
for (let i = 0; i < 100; i++) await step(); // warm-up: allocator arenas and ORT's caches
gc();
const line = [rssMiB()];
for (let j = 0; j < 5; j++) {
  for (let i = 0; i < 300; i++) await step();
  gc();
  line.push(rssMiB());
}
console.log(`${what}: RSS MiB every 300 steps: ${line.join(' → ')}`);
shared.close();
