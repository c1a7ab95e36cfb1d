import { describe, expect, it } from 'vitest';
import { OnnxBankRanker, openBankRanker } from '../src/rank/bank-ranker.js';
import { topkReference } from '../src/rank/topk-reference.js';
import { toFloat16 } from '../src/rank/float16.js';
import { seededRandom } from '../src/predict/seeded.js';

function unitRows(rows: number, dim: number, seed: number): Float32Array {
  const r = seededRandom(seed);
  const m = new Float32Array(rows * dim);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += (m[i * dim + j] = r() - 0.5) ** 2;
    for (let j = 0; j < dim; j++) m[i * dim + j]! /= Math.sqrt(s);
  }
  return m;
}

describe('bank rankers', () => {
  const N = 3001;
  const D = 37;
  const bank = { data: unitRows(N, D, 1), dims: [N, D] };
  const queries = { data: unitRows(4, D, 2), dims: [4, D] };

  it('the MatMul+TopK graph (the CUDA path, run here on the CPU provider) ranks like the reference', async () => {
    const ranker = await OnnxBankRanker.open(bank, ['cpu']);
    expect(ranker.engine).toBe('cpu');
    for (const least of [false, true]) {
      const got = await ranker.rank(queries, 10, { least });
      const want = topkReference(queries, bank, 10, { least });
      expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
      for (let i = 0; i < got.scores.length; i++) expect(got.scores[i]).toBeCloseTo(want.scores[i]!, 5);
    }
    const all = await ranker.rank(queries, N + 5);
    expect(all.k).toBe(N);
    expect((await ranker.rank(queries, 0)).indices.length).toBe(0);
    ranker.close();
  });

  it('reads fp16 banks', async () => {
    const half = { data: toFloat16(bank.data), dims: [N, D] };
    const ranker = await OnnxBankRanker.open(half, ['cpu']);
    const got = await ranker.rank(queries, 5);
    const want = topkReference(queries, half, 5);
    expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
    ranker.close();
  });

  it('uses the native kernel when the session would not run on CUDA', async () => {
    const ranker = await openBankRanker(bank, ['cuda', 'cpu']);
    // No GPU here: the graph would land on the CPU, so the SIMD kernel is chosen instead.
    expect(ranker.engine === 'native' || ranker.engine === 'cuda').toBe(true);
    if (ranker.engine === 'native') {
      const got = await ranker.rank(queries, 10);
      expect(Array.from(got.indices)).toEqual(Array.from(topkReference(queries, bank, 10).indices));
    }
    ranker.close();
  });
});
