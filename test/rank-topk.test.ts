import { describe, expect, it } from 'vitest';
import { seededRandom } from '../src/predict/seeded.js';
import { bottomk, resultRow, scoresAll, topk, topkKernel, type Matrix, type TensorMatrix, type TopKResult } from '../src/rank/topk.js';
import { referenceScores, topkReference } from '../src/rank/topk-reference.js';
import { toFloat16 } from '../src/rank/float16.js';
import { native } from '../src/native/addon.js';
import { Img2PromptError } from '../src/util/errors.js';


/** rows x dim Gaussian vectors, each scaled to unit length (what embeddings look like). */
function unitRows(rows: number, dim: number, seed: number): TensorMatrix & { data: Float32Array } {
  const rand = seededRandom(seed);
  const data = new Float32Array(rows * dim);
  for (let i = 0; i < data.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rand()));
    const a = 2 * Math.PI * rand();
    data[i] = r * Math.cos(a);
    if (i + 1 < data.length) data[i + 1] = r * Math.sin(a);
  }
  for (let row = 0; row < rows; row++) {
    let norm = 0;
    for (let d = 0; d < dim; d++) norm += data[row * dim + d] ** 2;
    const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    for (let d = 0; d < dim; d++) data[row * dim + d] *= scale;
  }
  return { data, dims: [rows, dim] };
}

/**
 * `got` ranks like `want` (the double-precision reference): the same index at every position, except
 * where float32 rounding may swap two near-equal scores, in which case the index `got` chose must
 * score within `eps` of the reference's choice. Scores agree within `eps`.
 */
function expectSameRanking(got: TopKResult, want: TopKResult, queries: Matrix, bank: Matrix, eps: number): number {
  expect(got.rows).toBe(want.rows);
  expect(got.k).toBe(want.k);
  expect(got.indices.length).toBe(want.rows * want.k);
  let swaps = 0;
  for (let q = 0; q < want.rows; q++) {
    let exact: Float64Array | undefined;
    const g = resultRow(got, q);
    const w = resultRow(want, q);
    expect(new Set(g.indices).size).toBe(g.indices.length);
    for (let i = 0; i < want.k; i++) {
      expect(Math.abs(g.scores[i] - w.scores[i])).toBeLessThanOrEqual(eps);
      if (g.indices[i] !== w.indices[i]) {
        exact ??= referenceScores(queries, bank, q);
        expect(Math.abs(exact[g.indices[i]] - w.scores[i])).toBeLessThanOrEqual(eps);
        swaps++;
      }
    }
  }
  return swaps;
}

/**
 * Runs that force worker threads on small banks (the kernel would otherwise run one thread below
 * ~4e6 multiply-adds): default blocks, and small blocks so even a few hundred rows span every worker.
 */
const FORCED: { forceThreads: number; blockRows?: number; simd?: boolean }[] = [
  { forceThreads: 2 },
  { forceThreads: 3 },
  { forceThreads: 3, simd: false },
  { forceThreads: 2, blockRows: 7 },
  { forceThreads: 3, blockRows: 24 },
  { forceThreads: 3, blockRows: 1 },
];

/** `got` is bit-identical to `want` (rows, k, indices and scores), and ran on `threads` threads. */
function expectIdentical(got: TopKResult, want: TopKResult, threads: number): void {
  expect(got.threads).toBe(threads);
  expect([got.rows, got.k]).toEqual([want.rows, want.k]);
  expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
  expect(Array.from(got.scores)).toEqual(Array.from(want.scores));
}

describe('similarity top-k (native)', () => {
  it('runs on a known kernel', () => {
    expect(['avx2-fma-f16c', 'scalar']).toContain(topkKernel());
  });

  it('matches the reference across shapes, thread counts and both kernels', async () => {
    // D=37 leaves a vector tail; N=1000 is not a multiple of the block (864 rows at D=37) nor of any tile.
    const shapes: [number, number, number, number][] = [
      [1, 1000, 37, 10],
      [3, 1000, 37, 7],
      [64, 1000, 37, 5],
      [5, 4099, 64, 20],
      [7, 301, 8, 300],
      [2, 50, 1, 3],
    ];
    let seed = 1;
    for (const [b, n, d, k] of shapes) {
      const queries = unitRows(b, d, seed++);
      const bank = unitRows(n, d, seed++);
      const want = topkReference(queries, bank, k);
      for (const options of [{}, { threads: 1 }, { threads: 2 }, { threads: 3, simd: false }]) {
        const got = await topk(queries, bank, k, options);
        expectSameRanking(got, want, queries, bank, 1e-5);
      }
      // These jobs are too small for a second thread unless forced; forced, each kernel gives the
      // very same bits as one thread does, and the same ranking as the reference.
      const single = { simd: await topk(queries, bank, k, { threads: 1 }), scalar: await topk(queries, bank, k, { threads: 1, simd: false }) };
      expect(single.simd.threads).toBe(1);
      for (const options of FORCED) {
        const got = await topk(queries, bank, k, options);
        expectSameRanking(got, want, queries, bank, 1e-5);
        expectIdentical(got, options.simd === false ? single.scalar : single.simd, options.forceThreads);
      }
    }
  });

  it('spreads a small bank over forced workers, one block each in turn', async () => {
    // 10 rows, blocks of 1 row, 3 workers: worker w holds rows w, w+3, ...; its heap can keep only k=4 of them.
    const queries = unitRows(2, 5, 3);
    const bank = unitRows(10, 5, 4);
    const want = topkReference(queries, bank, 4);
    const got = await topk(queries, bank, 4, { forceThreads: 3, blockRows: 1 });
    expect(got.threads).toBe(3);
    expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
    // More workers than blocks: the idle ones leave empty heaps that the merge must skip over.
    expectIdentical(await topk(queries, bank, 4, { forceThreads: 16 }), await topk(queries, bank, 4, { threads: 1 }), 16);
    const all = await scoresAll(queries, bank, { forceThreads: 3, blockRows: 2 });
    expect(Array.from(all.data)).toEqual(Array.from((await scoresAll(queries, bank, { threads: 1 })).data));
  });

  it('gives the same answer whatever the thread count', async () => {
    const queries = unitRows(9, 96, 77);
    const bank = unitRows(20_000, 96, 78);
    const one = await topk(queries, bank, 25, { threads: 1 });
    for (const threads of [2, 4, 0]) {
      const other = await topk(queries, bank, 25, { threads });
      expect(other.indices).toEqual(one.indices);
      expect(other.scores).toEqual(one.scores);
    }
  });

  it('returns every row, sorted, when k exceeds the bank', async () => {
    const queries = unitRows(3, 37, 5);
    const bank = unitRows(40, 37, 6);
    const got = await topk(queries, bank, 1000);
    expect(got.k).toBe(40);
    expect(got.indices.length).toBe(3 * 40);
    expectSameRanking(got, topkReference(queries, bank, 1000), queries, bank, 1e-5);
    for (let q = 0; q < 3; q++) {
      const row = resultRow(got, q);
      expect([...row.indices].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
      for (let i = 1; i < 40; i++) expect(row.scores[i]).toBeLessThanOrEqual(row.scores[i - 1]);
    }
    // Forced workers each hold fewer than k rows: the merge must still return all 40, in order.
    for (const options of FORCED) {
      const forced = await topk(queries, bank, 1000, options);
      expectSameRanking(forced, topkReference(queries, bank, 1000), queries, bank, 1e-5);
      expectIdentical(forced, await topk(queries, bank, 1000, { threads: 1, simd: options.simd }), options.forceThreads);
      expectIdentical(await bottomk(queries, bank, 1000, options), await bottomk(queries, bank, 1000, { threads: 1, simd: options.simd }), options.forceThreads);
    }
  });

  it('returns empty results for k = 0, no queries or an empty bank', async () => {
    const queries = unitRows(4, 16, 9);
    const bank = unitRows(10, 16, 10);
    const none = await topk(queries, bank, 0);
    expect([none.rows, none.k, none.indices.length, none.scores.length]).toEqual([4, 0, 0, 0]);
    const noQueries = await topk({ data: new Float32Array(0), dims: [0, 16] }, bank, 3);
    expect([noQueries.rows, noQueries.k, noQueries.indices.length]).toEqual([0, 3, 0]);
    const emptyBank = await topk(queries, { data: new Float32Array(0), dims: [0, 16] }, 3);
    expect([emptyBank.rows, emptyBank.k, emptyBank.indices.length]).toEqual([4, 0, 0]);
  });

  it('breaks ties by the lower index, exactly, wherever the duplicates sit', async () => {
    const dim = 37;
    const n = 3000;
    const bank = unitRows(n, dim, 21);
    const queries = unitRows(6, dim, 22);
    // Copy query 0 into rows spread over different tiles, blocks and threads: all score exactly 1-ish
    // and identically, so their order is decided by index alone.
    const copies = [2999, 5, 1234, 17, 865, 866, 2100, 864];
    for (const r of copies) bank.data.set(queries.data.subarray(0, dim), r * dim);
    // And a second group for query 1's bottom-k: the negated query is the least similar row.
    const negated = queries.data.subarray(dim, 2 * dim).map((x) => -x);
    const negCopies = [2500, 3, 700, 1999];
    for (const r of negCopies) bank.data.set(negated, r * dim);

    for (const options of [{ threads: 1 }, { threads: 2 }, { threads: 2, simd: false }]) {
      const top = await topk(queries, bank, copies.length + 2, options);
      const row0 = resultRow(top, 0);
      expect(Array.from(row0.indices.subarray(0, copies.length))).toEqual([...copies].sort((a, b) => a - b));
      expect(new Set(row0.scores.subarray(0, copies.length)).size).toBe(1);
      const low = await bottomk(queries, bank, negCopies.length + 1, options);
      const row1 = resultRow(low, 1);
      expect(Array.from(row1.indices.subarray(0, negCopies.length))).toEqual([...negCopies].sort((a, b) => a - b));
      expect(new Set(row1.scores.subarray(0, negCopies.length)).size).toBe(1);
    }
  });

  it('breaks ties by the lower index across forced workers and block boundaries', async () => {
    const dim = 37;
    const n = 3000;
    const bank = unitRows(n, dim, 23);
    const queries = unitRows(3, dim, 24);
    // Blocks of 50 rows dealt to 3 workers: copies on both sides of block boundaries 50, 100, 150 and
    // 2950 land in the heaps of workers 0, 1, 2 and 0 again (block b goes to worker b mod 3).
    const blockRows = 50;
    const copies = [2999, 150, 49, 2950, 100, 5, 99, 50, 149, 2949];
    expect(new Set(copies.map((r) => Math.floor(r / blockRows) % 3))).toEqual(new Set([0, 1, 2]));
    for (const r of copies) bank.data.set(queries.data.subarray(0, dim), r * dim);
    const negated = queries.data.subarray(dim, 2 * dim).map((x) => -x);
    const negCopies = [1999, 51, 1000, 48, 101];
    for (const r of negCopies) bank.data.set(negated, r * dim);
    const sorted = [...copies].sort((a, b) => a - b);
    const negSorted = [...negCopies].sort((a, b) => a - b);

    for (const forceThreads of [2, 3]) {
      for (const simd of [true, false]) {
        const options = { forceThreads, blockRows, simd };
        // k cuts through the tied group: each worker's heap holds tied rows the merge must drop by index.
        for (const k of [4, copies.length, copies.length + 3]) {
          const top = await topk(queries, bank, k, options);
          expect(top.threads).toBe(forceThreads);
          const row0 = resultRow(top, 0);
          expect(Array.from(row0.indices.subarray(0, Math.min(k, copies.length)))).toEqual(sorted.slice(0, k));
          expect(new Set(row0.scores.subarray(0, Math.min(k, copies.length))).size).toBe(1);
          const want = topkReference(queries, bank, k);
          expect(Array.from(top.indices)).toEqual(Array.from(want.indices));
        }
        const low = await bottomk(queries, bank, 3, options);
        expect(Array.from(resultRow(low, 1).indices)).toEqual(negSorted.slice(0, 3));
        expect(Array.from(low.indices)).toEqual(Array.from(topkReference(queries, bank, 3, { least: true }).indices));
      }
    }
  });

  it('orders all-equal scores (zero vectors) by index and scores them 0', async () => {
    const dim = 24;
    const bank = unitRows(500, dim, 31);
    const zeroQuery = { data: new Float32Array(dim), dims: [1, dim] };
    const got = await topk(zeroQuery, bank, 10);
    expect(Array.from(got.indices)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(Array.from(got.scores)).toEqual(new Array(10).fill(0));
    const least = await bottomk(zeroQuery, bank, 3);
    expect(Array.from(least.indices)).toEqual([0, 1, 2]);

    // Zero rows in the bank score 0 against anything.
    bank.data.fill(0, 100 * dim, 101 * dim);
    const queries = unitRows(2, dim, 32);
    const all = await scoresAll(queries, bank);
    expect([all.data[100], all.data[500 + 100]]).toEqual([0, 0]);
    expectSameRanking(await topk(queries, bank, 500), topkReference(queries, bank, 500), queries, bank, 1e-5);
  });

  it('finds the least similar rows with bottomk', async () => {
    const queries = unitRows(5, 37, 41);
    const bank = unitRows(2000, 37, 42);
    for (const simd of [true, false]) {
      const got = await bottomk(queries, bank, 12, { simd });
      expectSameRanking(got, topkReference(queries, bank, 12, { least: true }), queries, bank, 1e-5);
      for (let q = 0; q < 5; q++) {
        const { scores } = resultRow(got, q);
        for (let i = 1; i < scores.length; i++) expect(scores[i]).toBeGreaterThanOrEqual(scores[i - 1]);
      }
    }
  });

  it('ranks a NaN bank row last in both directions', async () => {
    const queries = unitRows(2, 16, 51);
    const bank = unitRows(30, 16, 52);
    bank.data[7 * 16 + 3] = NaN;
    const top = await topk(queries, bank, 30);
    const low = await bottomk(queries, bank, 30);
    for (const result of [top, low]) {
      for (let q = 0; q < 2; q++) {
        const row = resultRow(result, q);
        expect(row.indices[29]).toBe(7);
        expect(Number.isNaN(row.scores[29])).toBe(true);
      }
    }
    expect(Array.from(top.indices)).toEqual(Array.from(topkReference(queries, bank, 30).indices));
    expect(Array.from(low.indices)).toEqual(Array.from(topkReference(queries, bank, 30, { least: true }).indices));
  });

  it('scores a float16 bank like the reference does on the rounded values', async () => {
    const queries = unitRows(11, 200, 61);
    const bank32 = unitRows(7000, 200, 62);
    const bank = { data: toFloat16(bank32.data), dims: bank32.dims };
    const want = topkReference(queries, bank, 15);
    for (const simd of [true, false]) {
      const got = await topk(queries, bank, 15, { simd });
      expectSameRanking(got, want, queries, bank, 1e-5);
    }
    for (const options of FORCED) {
      const got = await topk(queries, bank, 15, options);
      expectSameRanking(got, want, queries, bank, 1e-5);
      expectIdentical(got, await topk(queries, bank, 15, { threads: 1, simd: options.simd }), options.forceThreads);
    }
    // Duplicate fp16 rows in different blocks and workers (blocks of 312 rows at D=200) tie exactly.
    const dupes = [6999, 313, 20, 4000, 700];
    const tied = new Uint16Array(bank.data);
    for (const r of dupes) tied.set(toFloat16(queries.data.subarray(200, 400)), r * 200);
    const tiedBank = { data: tied, dims: bank.dims };
    for (const forceThreads of [2, 3]) {
      const got = await topk(queries, tiedBank, 8, { forceThreads });
      expect(Array.from(resultRow(got, 1).indices.subarray(0, dupes.length))).toEqual([...dupes].sort((a, b) => a - b));
      expect(Array.from(got.indices)).toEqual(Array.from(topkReference(queries, tiedBank, 8).indices));
    }
    // A runtime Tensor of type float16 is accepted as is.
    const asTensor = await topk(queries, { type: 'float16', ...bank }, 15);
    expect(asTensor.indices).toEqual((await topk(queries, bank, 15)).indices);
  });

  it('reads a bank that lives in a SharedArrayBuffer', async () => {
    const queries = unitRows(3, 40, 65);
    const bank = unitRows(900, 40, 66);
    const shared = new Float32Array(new SharedArrayBuffer(bank.data.byteLength + 16), 16, bank.data.length);
    shared.set(bank.data);
    const got = await topk(queries, { data: shared, dims: bank.dims }, 9);
    expect(got.indices).toEqual((await topk(queries, bank, 9)).indices);
  });

  it('returns all scores with scoresAll', async () => {
    const queries = unitRows(6, 37, 71);
    const bank = unitRows(333, 37, 72);
    for (const simd of [true, false]) {
      const all = await scoresAll(queries, bank, { simd });
      expect(all.dims).toEqual([6, 333]);
      for (let q = 0; q < 6; q++) {
        const want = referenceScores(queries, bank, q);
        for (let r = 0; r < 333; r++) expect(Math.abs(all.data[q * 333 + r] - want[r])).toBeLessThan(1e-6);
      }
    }
  });

  it('matches the reference on a flavor-bank-sized bank (N=100,970, D=512, B=8)', async () => {
    const queries = unitRows(8, 512, 81);
    const bank = unitRows(100_970, 512, 82);
    // Runs off the JS thread: the event loop keeps turning while the kernel works.
    let settled = false;
    const pending = topk(queries, bank, 20).finally(() => (settled = true));
    let turns = 0;
    while (!settled) {
      await new Promise((resolve) => setImmediate(resolve));
      turns++;
    }
    expect(turns).toBeGreaterThan(1);
    const got = await pending;
    const want = topkReference(queries, bank, 20);
    expectSameRanking(got, want, queries, bank, 1e-6);
    expect(got.indices).toEqual(want.indices);
    const half = { data: toFloat16(bank.data), dims: bank.dims };
    expectSameRanking(await topk(queries, half, 20), topkReference(queries, half, 20), queries, half, 1e-5);
  });
});

describe('similarity top-k: input checks', () => {
  const queries = unitRows(4, 8, 91);
  const bank = unitRows(10, 8, 92);

  /** An options problem: a TypeError or RangeError from the options reader, as "<class>: <message>". */
  async function optionRejection(p: () => Promise<unknown>): Promise<string> {
    const err = await p().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    return `${(err as Error).name}: ${(err as Error).message}`;
  }

  async function rejection(p: () => Promise<unknown>): Promise<string> {
    const err = await p().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Img2PromptError);
    return (err as Error).message;
  }

  it('takes Rows ({data, rows, dim}) as it takes tensor-shaped matrices, with the same checks', async () => {
    const asRows = (m: TensorMatrix) => ({ data: m.data, rows: m.dims[0]!, dim: m.dims[1]! });
    const want = await topk(queries, bank, 3);
    expect(await topk(asRows(queries), asRows(bank), 3)).toEqual(want);
    expect(await topk(asRows(queries), bank, 3)).toEqual(want);
    expect(await rejection(() => topk({ data: queries.data, rows: 3, dim: 8 }, bank, 3))).toBe('topk: queries: dims [3, 8] need 24 values, the array has 32');
    expect(await rejection(() => topk(queries, { data: bank.data, rows: 10, dim: 7 }, 3))).toBe(
      'topk: bank: 80 values are not a multiple of the dimension 7',
    );
  });

  it('names the query that holds a NaN or an Infinity', async () => {
    const bad = new Float32Array(queries.data);
    bad[3 * 8 + 5] = NaN;
    expect(await rejection(() => topk({ data: bad, dims: [4, 8] }, bank, 3))).toBe('topk: query 3 contains NaN');
    bad[3 * 8 + 5] = 0;
    bad[1 * 8] = -Infinity;
    expect(await rejection(() => bottomk({ data: bad, dims: [4, 8] }, bank, 3, { label: 'flavors.bin' }))).toBe(
      'flavors.bin: query 1 contains Infinity',
    );
  });

  it('rejects mismatched dimensions and lengths that do not fit', async () => {
    expect(await rejection(() => topk(unitRows(2, 9, 1), bank, 3))).toBe('topk: queries have dimension 9, the bank has 8');
    expect(await rejection(() => topk(queries, { data: new Float32Array(81), dims: [10, 8] }, 3))).toBe(
      'topk: bank: 81 values are not a multiple of the dimension 8',
    );
    expect(await rejection(() => topk({ data: new Float32Array(16), dims: [3, 8] }, bank, 3))).toBe(
      'topk: queries: dims [3, 8] need 24 values, the array has 16',
    );
    expect(await rejection(() => topk({ data: new Float32Array(16), dims: [16] }, bank, 3))).toMatch(
      /queries: dims must be two non-negative integers/,
    );
    expect(await rejection(() => scoresAll({ data: new Float32Array(0), dims: [0, 0] }, bank))).toBe(
      'topk: queries: dimension must be at least 1',
    );
  });

  it('rejects bad k, threads and array kinds', async () => {
    expect(await rejection(() => topk(queries, bank, -1))).toBe('topk: k must be a non-negative integer, got -1');
    expect(await rejection(() => topk(queries, bank, 2.5))).toBe('topk: k must be a non-negative integer, got 2.5');
    expect(await rejection(() => topk(queries, bank, NaN))).toBe('topk: k must be a non-negative integer, got NaN');
    expect(await optionRejection(() => topk(queries, bank, 3, { threads: -2 }))).toBe('RangeError: topk(): Expected an integer between 0 and 1024 for threads but received -2');
    expect(await optionRejection(() => topk(queries, bank, 3, { forceThreads: 0 }))).toBe('RangeError: topk(): Expected an integer between 1 and 1024 for forceThreads but received 0');
    expect(await optionRejection(() => topk(queries, bank, 3, { forceThreads: 1.5 }))).toBe('RangeError: topk(): Expected an integer between 1 and 1024 for forceThreads but received 1.5');
    expect(await optionRejection(() => scoresAll(queries, bank, { blockRows: 0 }))).toBe('RangeError: scoresAll(): Expected an integer between 1 and 16777216 for blockRows but received 0');
    expect(await optionRejection(() => topk(queries, bank, 3, { threads: 2, forceThreads: 2 }))).toBe('TypeError: topk(): option "forceThreads" cannot be given with threads');
    expect(await optionRejection(() => topk(queries, bank, 3, { simd: 'no' as unknown as boolean }))).toBe('TypeError: topk(): Expected true or false for simd but received "no" of type string');
    expect(await rejection(() => topk({ data: new Uint16Array(32), dims: [4, 8] }, bank, 3))).toBe(
      'topk: queries must be float32 (a Float32Array)',
    );
    expect(
      await rejection(() => topk(queries, { data: new Float64Array(80) as unknown as Float32Array, dims: [10, 8] }, 3)),
    ).toBe('topk: bank must be a Float32Array, or a Uint16Array of float16 bits');
    expect(await rejection(() => topk(queries, { type: 'float16', ...bank }, 3))).toBe(
      "topk: bank of type 'float16' does not match its Float32Array",
    );
  });

  it('the native side keeps only memory guards, with one terse message, and refuses wrong-typed options', () => {
    const addon = native();
    const invalid = (what: string) => new TypeError(`topk: invalid ${what}`);
    expect(() => addon.topk(queries.data, 8, bank.data, 7, 3)).toThrow(invalid('bank dimension'));
    expect(() => addon.topk(queries.data, 5, bank.data, 5, 3)).toThrow(invalid('queries length'));
    expect(() => addon.topk(queries.data, 0, bank.data, 0, 3)).toThrow(invalid('query dimension'));
    expect(() => addon.topk(queries.data, 8, bank.data, 8, -1)).toThrow(invalid('k'));
    expect(() => addon.topk(queries.data, 8, bank.data, 8, 1.5)).toThrow(invalid('k'));
    expect(() => addon.topk(queries.data, 8, new Float64Array(80) as never, 8, 3)).toThrow(invalid('bank'));
    expect(() => addon.topk(new Uint16Array(32) as never, 8, bank.data, 8, 3)).toThrow(invalid('queries'));
    expect(() => addon.topk(queries.data, 8, bank.data, 8, 3, { forceThreads: 0 })).toThrow(invalid('option forceThreads'));
    expect(() => addon.topk(queries.data, 8, bank.data, 8, 3, { threads: 2000 })).toThrow(invalid('option threads'));
    expect(() => addon.topk(queries.data, 8, bank.data, 8, 3, { blockRows: 2 ** 25 })).toThrow(invalid('option blockRows'));
    // Wrong-typed options used to be coerced or ignored.
    expect(() => addon.topk(queries.data, 8, bank.data, 8, 3, { simd: 'no' as never })).toThrow(invalid('option simd'));
    expect(() => addon.topk(queries.data, 8, bank.data, 8, 3, { least: 1 as never })).toThrow(invalid('option least'));
    expect(() => addon.topk(queries.data, 8, bank.data, 8, 3, 'fast' as never)).toThrow(invalid('options'));
    expect(() => addon.scoresAll(queries.data, 8, bank.data.subarray(1), 8)).toThrow(new TypeError('scoresAll: invalid bank length'));
  });
});
