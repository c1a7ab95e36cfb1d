// img2prompt eval's numbers on a planted case with answers worked out by hand: each member's
// per-image cosine is known by construction, the ensemble's out-of-fold scores are checked against
// the per-fold results and an independent recomputation, and the bootstrap intervals are seeded and
// contain their means.
import { describe, expect, it } from 'vitest';
import { bootstrapMean } from '../src/eval/bootstrap.js';
import { ENSEMBLE, evaluate } from '../src/eval/evaluate.js';
import { imagesCsv } from '../src/eval/report.js';
import { distributionSvg, perImageSvg } from '../src/eval/charts.js';
import { fitWeights } from '../src/predict/fit-weights.js';

const DIM = 4;
const N = 10;
/** Each image's angle between member "angled" and the truth: its cosine is cos(θ_i). */
const THETA = Array.from({ length: N }, (_, i) => 0.1 + 0.13 * i);

/** Truth e1 (scaled, to show scale does not matter); "exact" = truth; "angled" = cos θ e1 + sin θ e2; "half" misses even images. */
function planted() {
  const truth = new Float32Array(N * DIM);
  const exact = new Float32Array(N * DIM);
  const angled = new Float32Array(N * DIM);
  const half = new Float32Array(N * DIM);
  for (let i = 0; i < N; i++) {
    truth[i * DIM] = 2;
    exact[i * DIM] = 1;
    angled[i * DIM] = Math.cos(THETA[i]!);
    angled[i * DIM + 1] = Math.sin(THETA[i]!);
    // "half": orthogonal to the truth on odd images (cosine 0), nothing on even ones (scored 0 too).
    if (i % 2 === 1) half[i * DIM + 2] = 1;
  }
  return { truth, predictions: { angled, exact, half } };
}

describe('evaluate', () => {
  it('scores each member by its mean cosine, image by image, as computed by hand', () => {
    const { truth, predictions } = planted();
    const e = evaluate(predictions, truth, DIM, { folds: 5, seed: 3, resamples: 500 });
    expect(e.scores.map((s) => s.name)).toEqual(['angled', 'exact', 'half', ENSEMBLE]);
    const byName = Object.fromEntries(e.scores.map((s) => [s.name, s]));
    THETA.forEach((t, i) => expect(byName['angled']!.perImage[i]).toBeCloseTo(Math.cos(t), 6));
    expect(byName['angled']!.mean).toBeCloseTo(THETA.reduce((s, t) => s + Math.cos(t), 0) / N, 6);
    expect(byName['exact']!.perImage.every((v) => Math.abs(v - 1) < 1e-6)).toBe(true);
    expect(byName['half']!.perImage).toEqual(new Array(N).fill(0));
    expect(byName['half']!.mean).toBe(0);
  });

  it('scores the ensemble out of fold: weights from the other folds, here all on the exact member', () => {
    const { truth, predictions } = planted();
    const e = evaluate(predictions, truth, DIM, { folds: 5, seed: 3, resamples: 500 });
    const ens = e.scores.find((s) => s.name === ENSEMBLE)!;
    // Any weight off "exact" tilts the sum away from the truth, so every fold puts all weight on it.
    expect(e.weights['exact']).toBeCloseTo(1, 9);
    for (const v of ens.perImage) expect(v).toBeCloseTo(1, 6);
    // Each image was held out exactly once; folds differ in size by at most one.
    const sizes = [0, 1, 2, 3, 4].map((f) => e.fold.filter((x) => x === f).length);
    expect(sizes).toEqual([2, 2, 2, 2, 2]);
  });

  it('out-of-fold ensemble scores are the cosines of the fold weights\' combination, recomputed independently', () => {
    // Two members that each carry part of the truth: the fitted weights mix them.
    const n = 12;
    const truth = new Float32Array(n * DIM);
    const a = new Float32Array(n * DIM);
    const b = new Float32Array(n * DIM);
    for (let i = 0; i < n; i++) {
      truth.set([1, 1, 0.2 * (i % 3), 0], i * DIM);
      a.set([1, 0.1 * i, 0, 0.3], i * DIM);
      b.set([0.2, 1, 0.5, -0.1 * (i % 4)], i * DIM);
    }
    const e = evaluate({ a, b }, truth, DIM, { folds: 3, seed: 1, resamples: 300 });
    const ens = e.scores.find((s) => s.name === ENSEMBLE)!;
    const unit = (v: number[]) => { const s = Math.hypot(...v); return v.map((x) => x / s); };
    // The weights each fold used come from the same fit as fit-weights reports (fold order = fold number).
    const fit = fitWeights({ a, b }, truth, DIM, { folds: 3, seed: 1 });
    for (let i = 0; i < n; i++) {
      const w = fit.folds[e.fold[i]!]!.weights;
      const ua = unit(Array.from(a.subarray(i * DIM, (i + 1) * DIM)));
      const ub = unit(Array.from(b.subarray(i * DIM, (i + 1) * DIM)));
      const mix = unit(ua.map((x, j) => w['a']! * x + w['b']! * ub[j]!));
      const t = unit(Array.from(truth.subarray(i * DIM, (i + 1) * DIM)));
      expect(ens.perImage[i]).toBeCloseTo(mix.reduce((s, x, j) => s + x * t[j]!, 0), 6);
    }
    // And their mean per fold is fit-weights' per-fold score.
    for (const f of fit.folds) {
      const held = ens.perImage.filter((_, i) => e.fold[i] === f.fold);
      expect(held.reduce((s, v) => s + v, 0) / held.length).toBeCloseTo(f.ensemble, 9);
    }
    expect(ens.mean).toBeCloseTo(fit.cvScore, 9);
  });

  it('gives seeded bootstrap intervals that contain the mean', () => {
    const { truth, predictions } = planted();
    const e1 = evaluate(predictions, truth, DIM, { folds: 5, seed: 3, resamples: 1000 });
    const e2 = evaluate(predictions, truth, DIM, { folds: 5, seed: 3, resamples: 1000 });
    expect(e2.scores).toEqual(e1.scores);
    for (const s of e1.scores) {
      expect(s.low).toBeLessThanOrEqual(s.mean);
      expect(s.high).toBeGreaterThanOrEqual(s.mean);
    }
    const angled = e1.scores[0]!;
    expect(angled.high - angled.low).toBeGreaterThan(0.01);
    // Constant values: the interval is the value itself.
    expect(bootstrapMean([0.5, 0.5, 0.5], { resamples: 50 })).toEqual({ mean: 0.5, low: 0.5, high: 0.5 });
    // Two values 0 and 1: resample means are k/2; the 95 % interval is [0, 1] and holds the mean 0.5.
    expect(bootstrapMean([0, 1], { resamples: 4000, seed: 9 })).toEqual({ mean: 0.5, low: 0, high: 1 });
  });

  it('refuses a member named like the ensemble and too few images for the folds', () => {
    const { truth, predictions } = planted();
    expect(() => evaluate({ [ENSEMBLE]: predictions.exact }, truth, DIM)).toThrow('a member may not be called "ensemble"');
    expect(() => evaluate(predictions, truth, DIM, { folds: 11, label: 'truth.csv' })).toThrow('truth.csv: 10 images with known prompts are too few for 11-fold cross-validation');
    expect(() => evaluate(predictions, truth, DIM, { fold: 3 } as never)).toThrow(new TypeError('evaluate(): unknown option "fold" (did you mean "folds"?)'));
    expect(() => bootstrapMean([1], { resamples: 0 })).toThrow(RangeError);
  });
});

describe('report pieces', () => {
  it('the CSV and the charts carry every image and member', () => {
    const { truth, predictions } = planted();
    const e = evaluate(predictions, truth, DIM, { folds: 5, resamples: 200 });
    const images = THETA.map((_, i) => ({ id: `img${i}`, file: `/x/img${i}.png`, truth: `a "quoted", prompt ${i}`, prompt: i === 0 ? null : `guess ${i}` }));
    const csv = imagesCsv(e, images).trimEnd().split('\n');
    expect(csv[0]).toBe('imgId,file,fold,angled,exact,half,ensemble,truth,prompt');
    expect(csv).toHaveLength(N + 1);
    expect(csv[1]).toBe(`img0,/x/img0.png,${e.fold[0]! + 1},${e.scores[0]!.perImage[0]},${e.scores[1]!.perImage[0]},0,${e.scores[3]!.perImage[0]},"a ""quoted"", prompt 0",`);
    const dist = distributionSvg(e.scores, 'T <&>');
    expect(dist).toContain('T &lt;&amp;&gt;');
    expect(dist.match(/<g class="series"/g)).toHaveLength(4);
    expect(dist.match(/<circle [^>]*r="3.2"/g)).toHaveLength(4 * N);
    const bars = perImageSvg(images.map((x) => x.id), e.scores, [3, 1], 'bars');
    expect(bars.match(/<g class="image"/g)).toHaveLength(2);
    expect(bars.indexOf('data-id="img3"')).toBeLessThan(bars.indexOf('data-id="img1"'));
  });
});

