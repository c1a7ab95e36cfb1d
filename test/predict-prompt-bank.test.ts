import { describe, expect, it } from 'vitest';
import { PromptBank, softmaxWeights, type NeighbourSearch } from '../src/predict/prompt-bank.js';
import { topkReference } from '../src/rank/topk-reference.js';
import { OnnxBankRanker } from '../src/rank/bank-ranker.js';
import { Img2PromptError } from '../src/util/errors.js';
import type { Rows } from '../src/util/rows.js';
import { cosineOf, maxAbsDiff, randomMatrix, randomUnitRows, row, unitRowsOf } from './helpers/predict-fakes.js';

const CLIP = 64;
const TEXT = 384;
const N = 500;

/** A [length / dim, dim] Rows over `data` (no copy). */
function asRows(data: Float32Array, dim: number): Rows {
  return { data, rows: data.length / dim, dim };
}

function plantedBank(): PromptBank {
  return new PromptBank({
    texts: Array.from({ length: N }, (_, i) => `prompt number ${i}`),
    clip: asRows(randomUnitRows(N, CLIP, 1), CLIP),
    minilm: asRows(randomUnitRows(N, TEXT, 2), TEXT),
    label: 'planted-bank',
  });
}

/** Images whose CLIP vectors sit close to prompts `truth` (bank vector + small noise, then unnormalised by 3x). */
function imagesNear(bank: PromptBank, truth: number[], noise: number, seed: number): Float32Array {
  const jitter = randomMatrix(truth.length, CLIP, seed, noise);
  const out = new Float32Array(truth.length * CLIP);
  truth.forEach((t, b) => {
    for (let i = 0; i < CLIP; i++) out[b * CLIP + i] = 3 * (bank.clip[t * CLIP + i] + jitter[b * CLIP + i]);
  });
  return out;
}

describe('softmaxWeights', () => {
  it('matches the hand-computed 3-item case', () => {
    // exp(0), exp(-1), exp(-2) over their sum 1.503214724
    const w = softmaxWeights([0.3, 0.2, 0.1], 0.1);
    expect(w[0]).toBeCloseTo(0.665240956, 8);
    expect(w[1]).toBeCloseTo(0.244728471, 8);
    expect(w[2]).toBeCloseTo(0.090030573, 8);
    expect(Array.from(softmaxWeights([0.3, 0.2, 0.1], 0))).toEqual([1, 0, 0]);
    // Shifted by the max: huge scores over a tiny temperature do not overflow.
    expect(Array.from(softmaxWeights([1000, 1000], 1e-6))).toEqual([0.5, 0.5]);
  });
});

describe('PromptBank', () => {
  it('retrieves the planted prompt at rank 1 and returns its MiniLM vector with k=1 or temperature 0', async () => {
    const bank = plantedBank();
    const truth = [0, 17, 123, 499, 250];
    const images = imagesNear(bank, truth, 0.02, 3);
    const one = await bank.predict(images, { k: 1 });
    const sharp = await bank.predict(images, { k: 10, temperature: 0 });
    truth.forEach((t, b) => {
      expect(one.nearest[b]).toMatchObject({ index: t, text: `prompt number ${t}` });
      expect(one.nearest[b]!.score).toBeGreaterThan(0.95);
      expect(maxAbsDiff(row(one.vectors, b, TEXT), row(bank.minilm, t, TEXT))).toBeLessThan(1e-6);
      expect(maxAbsDiff(row(sharp.vectors, b, TEXT), row(bank.minilm, t, TEXT))).toBeLessThan(1e-6);
      expect(sharp.neighbours.indices[b * 10]).toBe(t);
    });
    expect(sharp.neighbours.k).toBe(10);
    expect(sharp.unusable).toEqual([]);
  });

  it('softmax-weights the neighbours MiniLM vectors: hand-checked on a 3-prompt bank', async () => {
    // CLIP rows e0, e1, e2 in 4-d; the image has cosines 0.3, 0.2, 0.1 with them.
    const clip = new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]);
    // MiniLM rows: orthonormal, so the prediction's first 3 coordinates are the weights, normalised.
    const minilm = new Float32Array(3 * TEXT);
    minilm[0] = 1;
    minilm[TEXT + 1] = 1;
    minilm[2 * TEXT + 2] = 1;
    const bank = new PromptBank({ texts: ['a', 'b', 'c'], clip: asRows(clip, 4), minilm: asRows(minilm, TEXT) });
    const image = new Float32Array([0.3, 0.2, 0.1, Math.sqrt(1 - 0.14)]);
    const out = await bank.predict(image, { k: 3, temperature: 0.1 });
    const w = [0.665240956, 0.244728471, 0.090030573];
    const norm = Math.hypot(...w);
    expect(out.vectors[0]).toBeCloseTo(w[0] / norm, 5);
    expect(out.vectors[1]).toBeCloseTo(w[1] / norm, 5);
    expect(out.vectors[2]).toBeCloseTo(w[2] / norm, 5);
    expect(maxAbsDiff(out.vectors.subarray(3), new Float32Array(TEXT - 3))).toBe(0);
    expect(out.nearest[0]).toMatchObject({ index: 0, text: 'a' });
    expect(out.nearest[0]!.score).toBeCloseTo(0.3, 6);
    // k larger than the bank is capped at the bank size.
    expect((await bank.predict(image, { k: 50 })).neighbours.k).toBe(3);
    // Fallback: the mean MiniLM direction of the bank.
    expect(Array.from(bank.meanTextVector().subarray(0, 4)).map((x) => +x.toFixed(6))).toEqual([0.57735, 0.57735, 0.57735, 0]);
  });

  it('agrees with the plain TypeScript search, and a smooth temperature moves toward the neighbours', async () => {
    const bank = plantedBank();
    const images = randomMatrix(20, CLIP, 9);
    const reference: NeighbourSearch = async (q, b, k) => topkReference(q, b, k);
    const local = new PromptBank(
      { texts: bank.texts, clip: asRows(bank.clip, CLIP), minilm: asRows(bank.minilm, TEXT) },
      reference,
    );
    const a = await bank.predict(images, { k: 8, temperature: 0.05 });
    const b = await local.predict(images, { k: 8, temperature: 0.05 });
    expect(Array.from(a.neighbours.indices)).toEqual(Array.from(b.neighbours.indices));
    expect(maxAbsDiff(a.vectors, b.vectors)).toBeLessThan(1e-5);
    for (let r = 0; r < 20; r++) {
      expect(Math.hypot(...row(a.vectors, r, TEXT))).toBeCloseTo(1, 5);
      // The average is closer to the 2nd neighbour than the nearest prompt's own vector is.
      const second = row(bank.minilm, a.neighbours.indices[r * 8 + 1], TEXT);
      expect(cosineOf(row(a.vectors, r, TEXT), second)).toBeGreaterThan(cosineOf(row(bank.minilm, a.neighbours.indices[r * 8], TEXT), second));
    }
  });

  it('searches through a GPU-style ranker (the MatMul+TopK graph) once given one, and back on the native kernel after close', async () => {
    const bank = plantedBank();
    const images = imagesNear(bank, [3, 44, 321], 0.3, 9);
    const native = await bank.predict(images, { k: 8, temperature: 0.05 });
    const ranker = await OnnxBankRanker.open(bank.clipMatrix(), ['cpu']);
    let calls = 0;
    const rank = ranker.rank.bind(ranker);
    ranker.rank = (...args) => ((calls += 1), rank(...args));
    bank.useRanker(ranker);
    const graph = await bank.predict(images, { k: 8, temperature: 0.05 });
    expect(calls).toBe(1);
    expect(Array.from(graph.neighbours.indices)).toEqual(Array.from(native.neighbours.indices));
    expect(maxAbsDiff(graph.vectors, native.vectors)).toBeLessThan(1e-5);
    bank.close();
    await bank.predict(images, { k: 8 });
    expect(calls).toBe(1);
  });

  it('gives unusable images the fallback vector and no nearest prompt', async () => {
    const bank = plantedBank();
    const images = imagesNear(bank, [5, 6, 7], 0.01, 4);
    images.fill(0, CLIP, 2 * CLIP);
    images[2 * CLIP + 3] = NaN;
    const out = await bank.predict(images, { k: 4 });
    expect(out.unusable).toEqual([1, 2]);
    expect(out.nearest[0]!.index).toBe(5);
    expect(out.nearest[1]).toBeNull();
    expect(out.nearest[2]).toBeNull();
    expect(maxAbsDiff(row(out.vectors, 1, TEXT), bank.meanTextVector())).toBe(0);
    expect(maxAbsDiff(row(out.vectors, 2, TEXT), bank.meanTextVector())).toBe(0);
  });

  it('normalises a bank given with non-unit rows and rejects bad input', async () => {
    const clip = randomMatrix(10, CLIP, 5, 7);
    const bank = new PromptBank({ texts: Array.from({ length: 10 }, String), clip: asRows(clip, CLIP), minilm: asRows(randomMatrix(10, TEXT, 6, 2), TEXT) });
    expect(maxAbsDiff(bank.clip, unitRowsOf(clip, CLIP))).toBeLessThan(1e-6);
    const make = (over: object): PromptBank =>
      new PromptBank({ texts: ['a', 'b'], clip: asRows(new Float32Array(2 * CLIP).fill(1), CLIP), minilm: asRows(new Float32Array(2 * TEXT).fill(1), TEXT), label: 'bank.npy', ...over });
    expect(() => make({ texts: [] })).toThrow(/bank\.npy: prompt bank is empty/);
    expect(() => make({ clip: asRows(new Float32Array(3 * CLIP).fill(1), CLIP) })).toThrow(/expected 2 rows of 64, got 3/);
    expect(() => make({ minilm: asRows(new Float32Array(2 * TEXT), TEXT) })).toThrow(/MiniLM embedding of prompt 0 is zero/);
    const ok = make({});
    await expect(ok.predict(new Float32Array(CLIP + 1))).rejects.toThrow(Img2PromptError);
    await expect(ok.predict(new Float32Array(CLIP).fill(1), { k: 0 })).rejects.toThrow(/k must be a positive integer/);
    await expect(ok.predict(new Float32Array(CLIP).fill(1), { temperature: -1 })).rejects.toThrow(/temperature/);
  });
});
