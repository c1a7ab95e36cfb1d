/**
 * Percentile bootstrap intervals for a mean score: the images are resampled with replacement, the
 * mean taken of each resample, and the interval read off the sorted means. Seeded (mulberry32, as the
 * CV folds are), so a report's intervals are the same on every machine.
 */
import { seededRandom } from '../predict/seeded.js';

export interface BootstrapOptions {
  /** Resamples; default 2000. */
  resamples?: number;
  /** Coverage of the interval; default 0.95. */
  confidence?: number;
  seed?: number;
}

export interface MeanInterval {
  mean: number;
  low: number;
  high: number;
}

/** The mean of `values` and its percentile bootstrap interval. */
export function bootstrapMean(values: readonly number[], options: BootstrapOptions = {}): MeanInterval {
  const n = values.length;
  if (n === 0) return { mean: NaN, low: NaN, high: NaN };
  const resamples = options.resamples ?? 2000;
  const confidence = options.confidence ?? 0.95;
  if (!(Number.isInteger(resamples) && resamples >= 1)) throw new RangeError(`bootstrap resamples must be a positive integer, got ${resamples}`);
  if (!(confidence > 0 && confidence < 1)) throw new RangeError(`bootstrap confidence must be between 0 and 1, got ${confidence}`);
  const mean = values.reduce((s, v) => s + v, 0) / n;
  const random = seededRandom(options.seed ?? 0);
  const means = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += values[Math.floor(random() * n)];
    means[b] = s / n;
  }
  means.sort();
  const tail = (1 - confidence) / 2;
  // Nearest-rank percentiles: the lowest and highest means that leave `tail` of the resamples outside.
  const at = (q: number) => means[Math.min(resamples - 1, Math.max(0, Math.ceil(q * resamples) - 1))];
  return { mean, low: at(tail), high: at(1 - tail) };
}
