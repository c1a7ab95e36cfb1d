import { describe, expect, it } from 'vitest';
import {
  checkShape,
  checkUnitRows,
  normalizeRowInPlace,
  normalizeRowsInPlace,
  rowDefect,
  rowView,
  rowsAreUnit,
  unitRows,
  type Rows,
} from '../src/util/rows.js';
import { normaliseTowerRows } from '../src/clip/model.js';
import { Img2PromptError } from '../src/util/errors.js';

const rows = (values: number[], dim: number): Rows => ({ data: Float32Array.from(values), rows: values.length / dim, dim });

describe('the normaliser', () => {
  it('scales 3-4-0 to 0.6 0.8 0 (each value times the double 1/5, rounded to float32)', () => {
    const m = Float32Array.from([3, 4, 0, 1, 0, 0]);
    expect(normalizeRowInPlace(m, 0, 3)).toBe(true);
    expect(Array.from(m)).toEqual([Math.fround(0.6), Math.fround(0.8), 0, 1, 0, 0]);
    // Row 1 is already unit: unchanged, bit for bit.
    expect(normalizeRowInPlace(m, 1, 3)).toBe(true);
    expect(Array.from(m.subarray(3))).toEqual([1, 0, 0]);
  });

  it('leaves a zero row exactly as it is and says so', () => {
    const m = Float32Array.from([0, -0, 0]);
    expect(normalizeRowInPlace(m, 0, 3)).toBe(false);
    expect(Object.is(m[1], -0)).toBe(true);
    expect(Array.from(m)).toEqual([0, -0, 0]);
  });

  it('leaves a row with a NaN or an infinity exactly as it is and says so', () => {
    const m = Float32Array.from([1, NaN, 2, 3, Infinity, 4]);
    expect(normalizeRowInPlace(m, 0, 3)).toBe(false);
    expect(normalizeRowInPlace(m, 1, 3)).toBe(false);
    expect(Array.from(m)).toEqual([1, NaN, 2, 3, Infinity, 4]);
  });

  it('normalises a whole matrix, counting the rows it had to leave', () => {
    const m = Float32Array.from([0, 0, 6, 8, 0, 0, 1, 1]);
    expect(normalizeRowsInPlace(m, 2)).toBe(2);
    expect(Array.from(m)).toEqual([0, 0, Math.fround(0.6), Math.fround(0.8), 0, 0, Math.fround(Math.SQRT1_2), Math.fround(Math.SQRT1_2)]);
  });

  it('minNorm floors the divisor as F.normalize does: a row shorter than it is scaled by 1/minNorm', () => {
    const tiny = Float32Array.from([3e-13, 4e-13]); // norm 5e-13 < 1e-12
    expect(normalizeRowInPlace(tiny, 0, 2, { minNorm: 1e-12 })).toBe(true);
    expect(Array.from(tiny)).toEqual([Math.fround(Math.fround(3e-13) * 1e12), Math.fround(Math.fround(4e-13) * 1e12)]);
    // Without the floor the same row becomes unit: its float32 values are not exactly 3:4, so the
    // answer is x/|v| from the stored values, not 0.6 0.8.
    const plain = Float32Array.from([3e-13, 4e-13]);
    const [x, y] = [plain[0]!, plain[1]!];
    const inv = 1 / Math.sqrt(x * x + y * y);
    normalizeRowInPlace(plain, 0, 2);
    expect(Array.from(plain)).toEqual([Math.fround(x * inv), Math.fround(y * inv)]);
    expect(Math.hypot(plain[0]!, plain[1]!)).toBeCloseTo(1, 6);
    // Above the floor it changes nothing: the tower's rule gives the same bits as the plain one.
    const a = Float32Array.from([0.1, -2.5, 7, 1e-3]);
    const b = Float32Array.from(a);
    normalizeRowInPlace(a, 0, 4);
    expect(Array.from(normaliseTowerRows(b, 4))).toEqual(Array.from(a));
  });

  it('is a fixed point on its own output for ordinary rows (so a second pass downstream was a no-op)', () => {
    let seed = 7;
    const next = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
    const dim = 512;
    const m = Float32Array.from({ length: 64 * dim }, next);
    normalizeRowsInPlace(m, dim);
    const again = Float32Array.from(m);
    normalizeRowsInPlace(again, dim);
    expect(Array.from(again)).toEqual(Array.from(m));
  });
});

describe('unit checks', () => {
  it('rowsAreUnit: true for unit rows within the tolerance, false for a long, zero or non-finite row', () => {
    expect(rowsAreUnit(rows([0.6, 0.8, 0, 1], 2))).toBe(true);
    expect(rowsAreUnit(rows([0.6, 0.8005], 2))).toBe(true); // norm 1.0004
    expect(rowsAreUnit(rows([0.6, 0.8005], 2), 1e-4)).toBe(false);
    expect(rowsAreUnit(rows([0.6, 0.8, 3, 4], 2))).toBe(false);
    expect(rowsAreUnit(rows([0.6, 0.8, 0, 0], 2))).toBe(false);
    expect(rowsAreUnit(rows([0.6, 0.8, NaN, 1], 2))).toBe(false);
    expect(rowsAreUnit(rows([], 2))).toBe(true);
  });

  it('rowDefect names what is wrong', () => {
    const m = Float32Array.from([0.6, 0.8, 0, 0, Infinity, 0, 3, 4]);
    expect([0, 1, 2, 3].map((r) => rowDefect(m, r, 2))).toEqual([undefined, 'zero', 'not finite', 'not unit length']);
  });

  it('checkUnitRows returns the same rows, or names the first bad row and the fix', () => {
    const good = rows([0.6, 0.8], 2);
    expect(checkUnitRows(good, 'x', 'image embedding')).toBe(good);
    const bad = () => checkUnitRows(rows([0.6, 0.8, 3, 4], 2), 'emb.npy', 'image embedding', 'normalise it');
    expect(bad).toThrow(Img2PromptError);
    expect(bad).toThrow('emb.npy: image embedding 1 is not unit length (norm 5.00000; normalise it)');
    expect(() => checkUnitRows(rows([0, 0], 2), undefined, 'row')).toThrow('row 0 is zero');
  });

  it('unitRows keeps unit rows in place and normalises anything else into a copy', () => {
    const unit = rows([0.6, 0.8], 2);
    expect(unitRows(unit)).toBe(unit.data);
    const raw = rows([3, 4, 0, 0], 2);
    const out = unitRows(raw);
    expect(out).not.toBe(raw.data);
    expect(Array.from(out)).toEqual([Math.fround(0.6), Math.fround(0.8), 0, 0]);
    expect(Array.from(raw.data)).toEqual([3, 4, 0, 0]);
  });
});

describe('shapes and views', () => {
  it('rowView shares memory with the matrix', () => {
    const m = rows([1, 2, 3, 4, 5, 6], 3);
    const v = rowView(m, 1);
    expect(Array.from(v)).toEqual([4, 5, 6]);
    v[0] = 9;
    expect(m.data[3]).toBe(9);
  });

  it('checkShape refuses data that does not hold rows x dim values, or a wrong row count', () => {
    expect(() => checkShape(rows([1, 2, 3, 4], 2), 'm', 'f')).not.toThrow();
    expect(() => checkShape({ data: new Float32Array(5), rows: 2, dim: 2 }, 'm', 'f')).toThrow('f: m: 5 values are not a multiple of the dimension 2');
    expect(() => checkShape(rows([1, 2, 3, 4], 2), 'm', 'f', 3)).toThrow('f: m: expected 3 rows of 2, got 2');
    expect(() => checkShape({ data: new Float32Array(4), rows: 3, dim: 2 }, 'm', 'f')).toThrow('f: m: expected 3 rows of 2, got 2');
    expect(() => checkShape({ data: new Float32Array(4), rows: 1, dim: 2 }, 'm', 'f', 2)).toThrow('f: m: says 1 rows, expected 2');
  });
});
