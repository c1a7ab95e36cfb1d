/** Largest |a − b| over a row, relative to the largest |b| of that row; the max over rows. */
export function maxRelativeError(got: Float32Array, want: readonly Float64Array[], width: number): number {
  let worst = 0;
  want.forEach((row, r) => {
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < width; i++) {
      diff = Math.max(diff, Math.abs(got[r * width + i]! - row[i]!));
      scale = Math.max(scale, Math.abs(row[i]!));
    }
    worst = Math.max(worst, diff / scale);
  });
  return worst;
}

/** Largest |a − b| over two arrays of the same length (a length mismatch is an error, not a small number). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maxAbsDiff: lengths differ (${a.length} vs ${b.length})`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
