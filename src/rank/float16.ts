/**
 * IEEE 754 half precision, carried as its 16 bits in a Uint16Array (what ONNX Runtime and the
 * native top-k kernel read). Used to halve the size of embedding banks: at cosine-similarity
 * scale (|x| <= 1) half keeps about 3 significant digits, plenty to rank labels.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The half nearest to `value` (ties to even), as bits. Overflow gives ±Infinity, NaN stays NaN. */
export function floatToHalfBits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;

  if (exponent === 0xff) return mantissa ? sign | 0x7e00 | (mantissa >>> 13) : sign | 0x7c00;
  if (exponent > 142) return sign | 0x7c00; // >= 2^16: beyond the largest half even before rounding
  if (exponent >= 113) {
    // Normal half. A carry out of the mantissa correctly bumps the exponent (and 65520.. to Infinity).
    let half = ((exponent - 112) << 10) | (mantissa >>> 13);
    const rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (half & 1) !== 0)) half += 1;
    return sign | half;
  }
  if (exponent < 102) return sign; // below 2^-25: rounds to (signed) zero
  // Subnormal half: count units of 2^-24 in the 24-bit significand, rounding the dropped bits.
  const significand = mantissa | 0x800000;
  const shift = 126 - exponent; // 14..24
  let half = significand >>> shift;
  const rest = significand & ((1 << shift) - 1);
  const midpoint = 1 << (shift - 1);
  if (rest > midpoint || (rest === midpoint && (half & 1) !== 0)) half += 1; // may become the smallest normal
  return sign | half;
}

/** Exact value of half `bits`. */
export function halfBitsToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  return sign * (1024 + mantissa) * 2 ** (exponent - 25);
}

/** Float32 values rounded to half precision (round to nearest, ties to even). */
export function toFloat16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = floatToHalfBits(values[i]);
  return out;
}

let table: Float32Array | undefined;

/** Half bits back to float32 (exact: every half is a float32). */
export function fromFloat16(bits: Uint16Array): Float32Array {
  table ??= Float32Array.from({ length: 65536 }, (_, h) => halfBitsToFloat(h));
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
  return out;
}
