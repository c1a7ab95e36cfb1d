import { describe, expect, it } from 'vitest';
import { fitWeights, projectToSimplex, toWeightsConfig } from '../src/predict/fit-weights.js';
import { combineMembers } from '../src/predict/ensemble.js';
import { cosineOf, randomMatrix, randomUnitRows, row } from './helpers/predict-fakes.js';

const DIM = 384;

/** truth + noise·N(0, 1/dim) per coordinate: cosine with the truth ≈ 1/sqrt(1 + noise²). */
function noisyCopy(truth: Float32Array, noise: number, seed: number): Float32Array {
  const e = randomMatrix(truth.length / DIM, DIM, seed, noise / Math.sqrt(DIM));
  return truth.map((x, i) => x + e[i]);
}

describe('projectToSimplex', () => {
  it('projects onto non-negative weights summing to 1', () => {
    expect(Array.from(projectToSimplex([0.2, 0.3, 0.5]))).toEqual([0.2, 0.3, 0.5]);
    expect(Array.from(projectToSimplex([2, 0, 0]))).toEqual([1, 0, 0]);
    const p = projectToSimplex([0.6, 0.6, -1]);
    expect(p[0]).toBeCloseTo(0.5, 12);
    expect(p[1]).toBeCloseTo(0.5, 12);
    expect(p[2]).toBe(0);
  });
});

describe('fitWeights', () => {
  it('puts (almost) all weight on the member that carries the truth', () => {
    const truth = randomUnitRows(600, DIM, 1);
    const result = fitWeights({ good: noisyCopy(truth, 1, 2), noise: randomUnitRows(600, DIM, 3) }, truth, DIM);
    console.log(`truth+noise vs noise: weights ${JSON.stringify(result.weights)}, member scores ${JSON.stringify(result.memberScores)}, CV ${result.cvScore.toFixed(4)}`);
    expect(result.weights.good).toBeGreaterThan(0.97);
    expect(result.weights.good + result.weights.noise).toBeCloseTo(1, 10);
    expect(result.memberScores.good).toBeGreaterThan(0.65);
    expect(Math.abs(result.memberScores.noise)).toBeLessThan(0.02);
    expect(result.cvScore).toBeGreaterThan(result.memberScores.good - 0.005);
    expect(result.folds).toHaveLength(5);
    expect(result.folds.map((f) => f.images)).toEqual([120, 120, 120, 120, 120]);
    for (const f of result.folds) expect(f.weights.good).toBeGreaterThan(0.95);
  });

  it('mixes two complementary noisy members and beats each in cross-validation', () => {
    const truth = randomUnitRows(500, DIM, 4);
    const a = noisyCopy(truth, 1, 5);
    const b = noisyCopy(truth, 1.3, 6);
    const result = fitWeights({ a, b }, truth, DIM, { folds: 4, seed: 9 });
    console.log(`complementary: weights ${JSON.stringify(result.weights)}, members ${JSON.stringify(result.memberScores)}, CV ${result.cvScore.toFixed(4)}, folds ${result.folds.map((f) => f.ensemble.toFixed(4)).join(' ')}`);
    expect(result.weights.a).toBeGreaterThan(0.3);
    expect(result.weights.b).toBeGreaterThan(0.2);
    expect(result.weights.a).toBeGreaterThan(result.weights.b); // the less noisy member weighs more
    expect(result.cvScore).toBeGreaterThan(result.memberScores.a + 0.03);
    expect(result.cvScore).toBeGreaterThan(result.memberScores.b + 0.03);
    for (const f of result.folds) {
      expect(f.ensemble).toBeGreaterThan(f.members.a);
      expect(f.ensemble).toBeGreaterThan(f.members.b);
    }
    // The reported fit score is what the ensemble actually produces with those weights.
    const fallback = new Float32Array(DIM).fill(1 / Math.sqrt(DIM));
    const combined = combineMembers({ a, b }, { members: result.weights }, { rows: 500, dim: DIM, fallback });
    let mean = 0;
    for (let i = 0; i < 500; i++) mean += cosineOf(row(combined.vectors, i, DIM), row(truth, i, DIM)) / 500;
    expect(mean).toBeCloseTo(result.fitScore, 5);
    const config = toWeightsConfig(result, { clipModel: 'c', minilmModel: 'm' });
    expect(config.members).toEqual(result.weights);
    expect(config.cvScore).toBe(result.cvScore);
  });

  it('handles four members by gradient ascent and is reproducible for a seed', () => {
    const truth = randomUnitRows(300, DIM, 7);
    const members = {
      a: noisyCopy(truth, 1, 8),
      b: noisyCopy(truth, 1, 9),
      c: noisyCopy(truth, 1, 10),
      junk: randomUnitRows(300, DIM, 11),
    };
    const r1 = fitWeights(members, truth, DIM, { seed: 3 });
    const r2 = fitWeights(members, truth, DIM, { seed: 3 });
    expect(r2).toEqual(r1);
    console.log(`four members: ${JSON.stringify(r1.weights)}, CV ${r1.cvScore.toFixed(4)}`);
    for (const m of ['a', 'b', 'c']) expect(r1.weights[m]).toBeGreaterThan(0.2);
    expect(r1.weights.junk).toBeLessThan(0.03);
    expect(r1.cvScore).toBeGreaterThan(Math.max(r1.memberScores.a, r1.memberScores.b, r1.memberScores.c) + 0.05);
  });

  it('refuses fewer images than folds and bad input, with clear messages', () => {
    const truth = randomUnitRows(4, DIM, 12);
    expect(() => fitWeights({ a: truth }, truth, DIM, { label: 'val.csv' })).toThrow(
      'val.csv: 4 images with known prompts are too few for 5-fold cross-validation: need at least 5',
    );
    expect(() => fitWeights({ a: truth }, truth, DIM, { folds: 1 })).toThrow(new RangeError('fitWeights(): Expected an integer >= 2 for folds but received 1'));
    expect(() => fitWeights({}, truth, DIM, { folds: 2 })).toThrow(/no member predictions/);
    expect(() => fitWeights({ a: truth.subarray(DIM) }, truth, DIM, { folds: 2 })).toThrow(/member 'a': expected 4 rows/);
    const nan = new Float32Array(truth);
    nan[5] = NaN;
    expect(() => fitWeights({ a: nan }, truth, DIM, { folds: 2 })).toThrow(/member 'a' has a non-finite value for image 0/);
  });
});
