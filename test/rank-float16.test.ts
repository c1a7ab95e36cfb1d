import { describe, expect, it } from 'vitest';
import { floatToHalfBits, fromFloat16, halfBitsToFloat, toFloat16 } from '../src/rank/float16.js';
import { scoresAll } from '../src/rank/topk.js';

const bitsOf = (values: number[]): number[] => Array.from(toFloat16(Float32Array.from(values)));

/** Float32 value of raw bits. */
function f32(bits: number): number {
  return new Float32Array(new Uint32Array([bits]).buffer)[0];
}

// Oracle: every finite half (plus 65536 standing in for the overflow to Infinity) sorted by value;
// the correct rounding of x is the nearest entry, ties to the even bit pattern.
const ladder: { value: number; bits: number }[] = [];
for (let h = 0; h < 0x7c00; h++) ladder.push({ value: halfBitsToFloat(h), bits: h });
ladder.push({ value: 65536, bits: 0x7c00 });

function nearestHalf(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  let lo = 0;
  let hi = ladder.length - 1;
  if (a >= ladder[hi].value) return sign | 0x7c00;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (ladder[mid].value <= a) lo = mid;
    else hi = mid;
  }
  const below = ladder[lo];
  const above = ladder[hi];
  const dBelow = a - below.value;
  const dAbove = above.value - a;
  const pick = dBelow < dAbove ? below : dAbove < dBelow ? above : (below.bits & 1) === 0 ? below : above;
  return sign | pick.bits;
}

describe('float16 conversion', () => {
  it('encodes edge values exactly (round to nearest, ties to even)', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.1, 0x2e66],
      [1 / 3, 0x3555],
      [65504, 0x7bff], // largest half
      [65519.99, 0x7bff], // just under the midpoint to 65536
      [65520, 0x7c00], // midpoint: ties to even, which is the overflow pattern
      [1e6, 0x7c00],
      [-1e6, 0xfc00],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // half of it: tie to even (zero)
      [f32(0x33000001), 0x0001], // the float just above 2^-25 rounds up
      [3 * 2 ** -25, 0x0002], // 1.5 units: tie to even (2)
      [-(5 * 2 ** -25), 0x8002], // 2.5 units: tie to even (2)
      [1023.5 * 2 ** -24, 0x0400], // between the largest subnormal and the smallest normal: tie to even
      [2 ** -26, 0x0000],
      [1 + 2 ** -11, 0x3c00], // tie, stays on the even 1.0
      [1 + 3 * 2 ** -11, 0x3c02], // tie, goes up to the even neighbour
      [1 + 2 ** -11 + 2 ** -23, 0x3c01], // just past the tie
      [2047.9999, 0x6800], // rounds up across a binade
    ];
    for (const [value, bits] of cases) {
      expect([value, floatToHalfBits(value)]).toEqual([value, bits]);
    }
    expect(bitsOf(cases.map((c) => c[0]))).toEqual(cases.map((c) => c[1]));
  });

  it('keeps NaN a NaN (quiet, sign kept)', () => {
    for (const bits of [0x7fc00000, 0xffc00000, 0x7f800001, 0x7fbfffff]) {
      const h = floatToHalfBits(f32(bits));
      expect(h & 0x7c00).toBe(0x7c00);
      expect(h & 0x03ff).not.toBe(0);
      expect(h & 0x8000).toBe(bits >>> 31 ? 0x8000 : 0);
      expect(Number.isNaN(halfBitsToFloat(h))).toBe(true);
    }
  });

  it('agrees with the nearest-half oracle on 200k random float32 bit patterns', () => {
    let seed = 12345;
    const next = (): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return (t ^ (t >>> 14)) >>> 0;
    };
    const values = new Float32Array(200_000);
    for (let i = 0; i < values.length; i++) {
      // Exponents concentrated around the half range (incl. subnormals and overflow), random mantissas.
      const exponent = 95 + (next() % 56);
      const bits = ((next() & 1) << 31) | (exponent << 23) | (next() & 0x7fffff);
      values[i] = f32(bits >>> 0);
    }
    const got = toFloat16(values);
    let mismatches = 0;
    for (let i = 0; i < values.length; i++) if (got[i] !== nearestHalf(values[i])) mismatches++;
    expect(mismatches).toBe(0);
  });

  it('round-trips every non-NaN half through float32', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const decoded = fromFloat16(all);
    const back = toFloat16(decoded);
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN) expect(Number.isNaN(decoded[h])).toBe(true);
      else expect(back[h]).toBe(h);
    }
  });

  it('decodes the same way as the native kernel (F16C and portable paths)', async () => {
    // One-hot queries pick single bank values out exactly: score = 1 * value + sum of 0 * finite.
    const dim = 16;
    const finite = Uint16Array.from({ length: 65536 }, (_, i) => i).filter((h) => (h & 0x7c00) !== 0x7c00);
    const bank = finite.slice(0, Math.floor(finite.length / dim) * dim);
    const queries = new Float32Array(dim * dim);
    for (let i = 0; i < dim; i++) queries[i * dim + i] = 1;
    const rows = bank.length / dim;
    const want = fromFloat16(bank);
    for (const simd of [true, false]) {
      const { data } = await scoresAll({ data: queries, dims: [dim, dim] }, { data: bank, dims: [rows, dim] }, { simd });
      let mismatches = 0;
      for (let r = 0; r < rows; r++) {
        for (let d = 0; d < dim; d++) if (!Object.is(data[d * rows + r] + 0, want[r * dim + d] + 0)) mismatches++;
      }
      expect(mismatches).toBe(0);
    }
  });
});
