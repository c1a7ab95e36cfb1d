/**
 * Percentile bootstrap intervals for a mean score: the images are resampled with replacement, the
 * mean taken of each resample, and the interval read off the sorted means. Seeded (mulberry32, as the
 * CV folds are), so a report's intervals are the same on every machine.
 */
import { seededRandom } from '../predict/seeded.js';
import { readOptions } from '../util/options.js';

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
  const o = readOptions(options, 'bootstrapMean()');
  const resamples = o.int('resamples', { min: 1 }) ?? 2000;
  const confidence = o.number('confidence', { min: 0, max: 1, minExclusive: true }) ?? 0.95;
  const seed = o.int('seed') ?? 0;
  o.done();
  const n = values.length;
  if (n === 0) return { mean: NaN, low: NaN, high: NaN };
  const mean = values.reduce((s, v) => s + v, 0) / n;
  const random = seededRandom(seed);
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
