import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { combineMembers, equalWeights, fallbackVector, loadEnsembleWeights, saveEnsembleWeights } from '../src/predict/ensemble.js';
import { maxAbsDiff, randomMatrix, randomUnitRows, row, unitRowsOf } from './helpers/predict-fakes.js';
import { tempDir } from './helpers/paths.js';

const DIM = 384;

let dir: string;
beforeEach(() => {
  dir = tempDir('img2prompt-ensemble-');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Unit vector along axis `i`. */
const axis = (i: number): Float32Array => {
  const v = new Float32Array(DIM);
  v[i] = 1;
  return v;
};

describe('combineMembers', () => {
  it('weights unit member rows, renormalises over present members, and L2-normalises', () => {
    const rows = 3;
    // bank: axis 0 (scaled by 5: members are normalised first); map: axis 1; caption: axis 2.
    const bank = new Float32Array(rows * DIM);
    const map = new Float32Array(rows * DIM);
    for (let r = 0; r < rows; r++) {
      bank[r * DIM] = 5;
      map[r * DIM + 1] = 1;
    }
    map.fill(0, 2 * DIM, 3 * DIM); // the map failed on image 2
    const fallback = axis(3);
    const result = combineMembers(
      { bank, map, caption: undefined, extra: bank },
      { members: { bank: 0.6, map: 0.3, caption: 0.1 } },
      { rows, dim: DIM, fallback, failed: [1] },
    );
    expect(result.present).toEqual(['bank', 'map']);
    expect(result.absent).toEqual(['caption']);
    expect(result.unweighted).toEqual(['extra']);
    // Image 0: 0.6 e0 + 0.3 e1, normalised.
    const n = Math.hypot(0.6, 0.3);
    expect(result.vectors[0]).toBeCloseTo(0.6 / n, 6);
    expect(result.vectors[1]).toBeCloseTo(0.3 / n, 6);
    // Image 1 failed upstream: fallback. Image 2: only the bank is left, so it is the bank's direction.
    expect(maxAbsDiff(row(result.vectors, 1, DIM), fallback)).toBe(0);
    expect(maxAbsDiff(row(result.vectors, 2, DIM), axis(0))).toBeLessThan(1e-7);
    expect(result.fallbackRows).toEqual([1]);
  });

  it('gives the fallback to images no member predicted and refuses when no weighted member ran', () => {
    const a = new Float32Array(2 * DIM);
    a[0] = 1;
    a[DIM + 5] = NaN;
    const fallback = axis(7);
    const r = combineMembers({ a }, equalWeights(['a', 'b']), { rows: 2, dim: DIM, fallback });
    expect(r.fallbackRows).toEqual([1]);
    expect(maxAbsDiff(row(r.vectors, 1, DIM), fallback)).toBe(0);
    expect(() => combineMembers({ c: a }, { members: { a: 1, b: 0 } }, { rows: 2, dim: DIM, fallback, label: 'run' })).toThrow(
      'run: none of the weighted members (a) produced predictions',
    );
    expect(() => combineMembers({ a: a.subarray(DIM) }, { members: { a: 1 } }, { rows: 2, dim: DIM, fallback })).toThrow(/expected 2 rows/);
    expect(() => combineMembers({ a }, { members: { a: -1 } }, { rows: 2, dim: DIM, fallback })).toThrow(/weight of member 'a' must be a finite number >= 0/);
  });

  it('fallback vector is the normalised mean of the bank rows', () => {
    const bank = randomUnitRows(50, DIM, 1);
    const mean = new Float64Array(DIM);
    for (let r = 0; r < 50; r++) for (let i = 0; i < DIM; i++) mean[i] += bank[r * DIM + i];
    const expected = unitRowsOf(Float32Array.from(mean), DIM);
    expect(maxAbsDiff(fallbackVector(bank, DIM), expected)).toBeLessThan(1e-6);
    // Rows of any length count by direction only.
    const scaled = bank.map((x, i) => x * (1 + (Math.floor(i / DIM) % 3)));
    expect(maxAbsDiff(fallbackVector(scaled, DIM), expected)).toBeLessThan(1e-6);
    expect(() => fallbackVector(new Float32Array(DIM), DIM, 'bank')).toThrow('bank: cannot form a fallback vector');
  });
});

describe('weights file', () => {
  const models = { clipModel: 'ViT-L-14/openai', minilmModel: 'all-MiniLM-L6-v2' };

  it('round-trips and checks the models it was fitted for', async () => {
    const file = path.join(dir, 'weights.json');
    await saveEnsembleWeights(file, { members: { bank: 0.7, map: 0.3 }, fittedFor: models, cvScore: 0.61, memberScores: { bank: 0.58 } });
    const { weights, warnings } = await loadEnsembleWeights(file, { expect: models });
    expect(warnings).toEqual([]);
    expect(weights.members).toEqual({ bank: 0.7, map: 0.3 });
    expect(weights.cvScore).toBe(0.61);
    expect(weights.memberScores).toEqual({ bank: 0.58 });
    expect(typeof weights.date).toBe('string');

    const other = { ...models, clipModel: 'ViT-B-32/openai' };
    await expect(loadEnsembleWeights(file, { expect: other })).rejects.toThrow(
      `${file}: weights were fitted for clipModel 'ViT-L-14/openai', this run uses 'ViT-B-32/openai'; refit them (fit-weights) or allow the mismatch explicitly`,
    );
    const allowed = await loadEnsembleWeights(file, { expect: other, allowModelMismatch: true });
    expect(allowed.warnings).toEqual([`${file}: weights were fitted for clipModel 'ViT-L-14/openai', this run uses 'ViT-B-32/openai'; using them anyway`]);
  });

  it('rejects malformed files with the file name', async () => {
    const write = (name: string, body: string): string => {
      const f = path.join(dir, name);
      fs.writeFileSync(f, body);
      return f;
    };
    const cases: [string, string, RegExp][] = [
      ['notjson.json', '{members', /cannot read ensemble weights/],
      ['array.json', '[]', /must be a JSON object/],
      ['nomembers.json', '{"cvScore": 1}', /'members' object/],
      ['empty.json', '{"members": {}}', /name no members/],
      ['negative.json', '{"members": {"a": -0.5}}', /weight of member 'a'/],
      ['string.json', '{"members": {"a": "1"}}', /weight of member 'a'/],
      ['zeros.json', '{"members": {"a": 0, "b": 0}}', /all member weights are zero/],
    ];
    for (const [name, body, pattern] of cases) {
      const f = write(name, body);
      await expect(loadEnsembleWeights(f)).rejects.toThrow(pattern);
      await expect(loadEnsembleWeights(f)).rejects.toThrow(`${f}: `);
    }
    const unfitted = write('unfitted.json', '{"members": {"a": 1}}');
    const { warnings } = await loadEnsembleWeights(unfitted, { expect: models });
    expect(warnings[0]).toMatch(/do not say which clipModel/);
  });
});

describe('combine with random members', () => {
  it('equal weights of two members equal the normalised sum of their unit rows', () => {
    const a = randomMatrix(10, DIM, 2, 3);
    const b = randomMatrix(10, DIM, 3, 0.1);
    const ua = unitRowsOf(a, DIM);
    const ub = unitRowsOf(b, DIM);
    const expected = unitRowsOf(ua.map((x, i) => x + ub[i]), DIM);
    const r = combineMembers({ a, b }, equalWeights(['a', 'b']), { rows: 10, dim: DIM, fallback: axis(0) });
    expect(maxAbsDiff(r.vectors, expected)).toBeLessThan(1e-6);
  });
});
