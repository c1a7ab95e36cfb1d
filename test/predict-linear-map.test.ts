import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bankDataHash, LinearMap, weightsFileFor } from '../src/predict/linear-map.js';
import { PromptBank } from '../src/predict/prompt-bank.js';
import { fitAndSaveMap, obtainMap } from '../src/predict/map-store.js';
import { cholesky, choleskySolve, crossProducts } from '../src/predict/normal-equations.js';
import { estimateModalityGap } from '../src/predict/modality-gap.js';
import { Img2PromptError } from '../src/util/errors.js';
import { tempDir } from './helpers/paths.js';
import { cosineOf, gaussian, maxAbsDiff, randomMatrix, randomUnitRows, rng, row, unitRowsOf } from './helpers/predict-fakes.js';

let dir: string;
beforeEach(() => {
  dir = tempDir('img2prompt-linmap-');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Y = X·A + b + noise, row-major. */
function planted(n: number, dx: number, dy: number, noise: number, seed: number) {
  const X = randomMatrix(n, dx, seed);
  const A = randomMatrix(dx, dy, seed + 1, 1 / Math.sqrt(dx));
  const b = randomMatrix(1, dy, seed + 2, 0.5);
  const eps = randomMatrix(n, dy, seed + 3, noise);
  const Y = new Float32Array(n * dy);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < dy; j++) {
      let s = b[j] + eps[r * dy + j];
      for (let i = 0; i < dx; i++) s += X[r * dx + i] * A[i * dy + j];
      Y[r * dy + j] = s;
    }
  }
  return { X, A, b, Y };
}

function relativeError(estimate: ArrayLike<number>, truth: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < truth.length; i++) {
    num += (estimate[i] - truth[i]) ** 2;
    den += truth[i] ** 2;
  }
  return Math.sqrt(num / den);
}

describe('normal equations', () => {
  it('blocked XᵀX / XᵀY match a naive sum for odd sizes and partial panels', () => {
    const n = 301;
    const dx = 7;
    const dy = 5;
    const X = randomMatrix(n, dx, 11);
    const Y = randomMatrix(n, dy, 12);
    const p = crossProducts(X, dx, Y, dy);
    let worst = 0;
    for (let i = 0; i < dx; i++) {
      for (let j = 0; j < dx; j++) {
        let s = 0;
        for (let r = 0; r < n; r++) s += X[r * dx + i] * X[r * dx + j];
        worst = Math.max(worst, Math.abs(s - p.xx[i * dx + j]));
      }
      for (let j = 0; j < dy; j++) {
        let s = 0;
        for (let r = 0; r < n; r++) s += X[r * dx + i] * Y[r * dy + j];
        worst = Math.max(worst, Math.abs(s - p.xy[i * dy + j]));
      }
    }
    expect(worst).toBeLessThan(1e-9);
    const subset = crossProducts(X, dx, Y, dy, [3, 300, 17]);
    expect(subset.rows).toBe(3);
    expect(subset.sumX[2]).toBeCloseTo(X[3 * dx + 2] + X[300 * dx + 2] + X[17 * dx + 2], 10);
  });

  it('Cholesky solves a hand-checked SPD system and refuses a singular one', () => {
    // [[4, 2], [2, 3]] · w = [[2], [5]]  →  w = [-0.5, 2]
    const L = cholesky(new Float64Array([4, 2, 2, 3]), 2)!;
    expect(Array.from(L)).toEqual([2, 0, 1, Math.sqrt(2)]);
    const w = choleskySolve(L, 2, new Float64Array([2, 5]), 1);
    expect(w[0]).toBeCloseTo(-0.5, 12);
    expect(w[1]).toBeCloseTo(2, 12);
    expect(cholesky(new Float64Array([1, 1, 1, 1]), 2)).toBeNull();
  });
});

describe('LinearMap', () => {
  it('recovers a planted A and b from noisy data', () => {
    const dx = 48;
    const dy = 384;
    const { X, A, b, Y } = planted(3000, dx, dy, 0.01, 21);
    const map = LinearMap.fit(X, dx, Y, dy, { lambda: 1e-6 });
    const W = map.weights.subarray(0, dx * dy);
    const bias = map.weights.subarray(dx * dy);
    const errA = relativeError(W, A);
    const errB = relativeError(bias, b);
    console.log(`planted ridge: relative error A ${errA.toExponential(2)}, b ${errB.toExponential(2)}, fit cosine ${map.info.fitCosine.toFixed(6)}`);
    expect(errA).toBeLessThan(2e-3);
    expect(errB).toBeLessThan(2e-3);
    expect(map.info.samples).toBe(3000);
    expect(map.info.fitCosine).toBeGreaterThan(0.9999);
    // A strong ridge shrinks W toward zero.
    const shrunk = LinearMap.fit(X, dx, Y, dy, { lambda: 10 });
    const norm = (v: Float32Array): number => Math.hypot(...v);
    expect(norm(shrunk.weights.subarray(0, dx * dy))).toBeLessThan(0.2 * norm(W));
  });

  it('interpolates exactly at lambda 0 with as many rows as parameters, and refuses a singular system', () => {
    const dx = 16;
    const dy = 384;
    const n = dx + 1; // the affine map has dx + 1 parameters per output: any Y is fitted exactly
    const X = randomMatrix(n, dx, 31);
    const Y = randomMatrix(n, dy, 32);
    const map = LinearMap.fit(X, dx, Y, dy, { lambda: 0 });
    const err = maxAbsDiff(map.project(X), Y);
    console.log(`lambda 0, ${n} rows of ${dx}: max |XW + b - Y| = ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-3);
    // Odd output sizes go through the padded kernels too.
    const small = LinearMap.fit(X.subarray(0, 5 * 3), 3, Y.subarray(0, 5 * 5), 5, { lambda: 0 });
    expect(small.project(X.subarray(0, 4 * 3)).length).toBe(20);
    const naive = (r: number, j: number): number => small.weights[3 * 5 + j] + [0, 1, 2].reduce((s, i) => s + X[r * 3 + i] * small.weights[i * 5 + j], 0);
    const projected = small.project(X.subarray(0, 5 * 3));
    for (let r = 0; r < 5; r++) for (let j = 0; j < 5; j++) expect(projected[r * 5 + j]).toBeCloseTo(naive(r, j), 5);
    expect(() => LinearMap.fit(X.subarray(0, dx * dx), dx, Y.subarray(0, dx * dy), dy, { lambda: 0, label: 'bank.npy' })).toThrow(
      /bank\.npy: XᵀX is singular \(16 rows of dimension 16, fewer rows than dimensions\); use lambda > 0/,
    );
    expect(() => LinearMap.fit(X, dx, Y.subarray(1), dy)).toThrow(Img2PromptError);
    expect(() => LinearMap.fit(X, dx, Y, dy, { lambda: -1 })).toThrow(/lambda must be/);
  });

  it('selects a larger lambda by holdout when the data is too small for the dimension', () => {
    const dx = 96;
    const dy = 384;
    const { X, Y } = planted(240, dx, dy, 1.0, 41); // noise as large as the signal
    const map = LinearMap.fit(X, dx, Y, dy, { select: { fraction: 0.25, seed: 7 } });
    const sel = map.info.selection!;
    console.log('holdout cosine by lambda:', sel.scores.map((s) => `${s.lambda}: ${s.cosine.toFixed(4)}`).join(', '));
    expect(sel.holdout).toBe(60);
    const best = Math.max(...sel.scores.map((s) => s.cosine));
    expect(sel.scores.find((s) => s.lambda === map.info.lambda)!.cosine).toBe(best);
    expect(map.info.lambda).toBeGreaterThan(1e-3);
    expect(best).toBeGreaterThan(sel.scores[0].cosine + 0.01);
  });

  it('applies to gap-corrected image embeddings', () => {
    const dx = 32;
    const dy = 384;
    const n = 400;
    // Texts sit around coordinate 0 = -0.4; the images of the same content are shifted by +0.8 there.
    const jitter = rng(53);
    const texts = randomUnitRows(n, dx, 51);
    for (let r = 0; r < n; r++) {
      const t = texts.subarray(r * dx, (r + 1) * dx);
      t[0] = -0.4 + 0.1 * (jitter() - 0.5);
      const s = Math.sqrt(1 - t[0] * t[0]) / Math.hypot(...t.subarray(1));
      for (let i = 1; i < dx; i++) t[i] *= s;
    }
    const images = new Float32Array(texts);
    for (let r = 0; r < n; r++) images[r * dx] += 0.8;
    const target = unitRowsOf(randomMatrix(n, dy, 52), dy);
    const map = LinearMap.fit(texts, dx, target, dy, { lambda: 1e-3 });
    const gap = estimateModalityGap(images, texts, dx).vector;
    expect(gap[0]).toBeGreaterThan(0.7);
    const fromTexts = unitRowsOf(map.project(texts), dy);
    const meanCos = (pred: Float32Array): number => {
      let s = 0;
      for (let r = 0; r < n; r++) s += cosineOf(row(pred, r, dy), row(fromTexts, r, dy));
      return s / n;
    };
    const corrected = map.apply(images, { gap });
    const uncorrected = map.apply(images);
    console.log(`gap-corrected images vs their texts through the map: cosine ${meanCos(corrected).toFixed(4)} (uncorrected ${meanCos(uncorrected).toFixed(4)})`);
    expect(meanCos(corrected)).toBeGreaterThan(0.99);
    expect(meanCos(uncorrected)).toBeLessThan(meanCos(corrected) - 0.05);
    for (let r = 0; r < 5; r++) expect(Math.hypot(...row(corrected, r, dy))).toBeCloseTo(1, 5);
    // An unusable image maps to a zero row.
    const withBad = new Float32Array(images.subarray(0, 2 * dx));
    withBad.fill(0, dx);
    expect(Array.from(row(map.apply(withBad, { gap }), 1, dy)).every((x) => x === 0)).toBe(true);
  });

  it('fits on a prompt bank through its unit rows, with a matching data hash', () => {
    const clip = randomMatrix(300, 24, 81, 4);
    const minilm = randomMatrix(300, 384, 82, 0.3);
    const bank = new PromptBank({ texts: Array.from({ length: 300 }, String), clip: { data: clip, rows: 300, dim: 24 }, minilm: { data: minilm, rows: 300, dim: 384 } });
    const viaBank = LinearMap.fitOnBank(bank);
    const direct = LinearMap.fit(unitRowsOf(clip, 24), 24, unitRowsOf(minilm, 384), 384);
    expect(maxAbsDiff(viaBank.weights, direct.weights)).toBeLessThan(1e-5);
    expect(viaBank.info.dataHash).toBe(bankDataHash(bank));
  });

  it('saves and loads with its model ids and data hash, refusing other models and torn pairs', async () => {
    const { X, Y } = planted(200, 24, 384, 0.1, 61);
    const map = LinearMap.fit(X, 24, Y, 384);
    const file = path.join(dir, 'map.json');
    const fittedFor = { clipModel: 'ViT-L-14/openai', minilmModel: 'all-MiniLM-L6-v2' };
    await map.save(file, fittedFor);
    expect(fs.readdirSync(dir).sort()).toEqual(['map.json', 'map.weights.npy']);
    const back = await LinearMap.load(file, { ...fittedFor, dataHash: map.info.dataHash });
    expect(Buffer.from(back.weights.buffer).equals(Buffer.from(map.weights.buffer))).toBe(true);
    expect(back.info).toEqual(map.info);
    expect(back.fittedFor).toEqual(fittedFor);
    await expect(LinearMap.load(file, { clipModel: 'ViT-B-32/openai' })).rejects.toThrow(
      `${file}: linear map was fitted for clipModel 'ViT-L-14/openai', this run uses 'ViT-B-32/openai'; refit it`,
    );
    await expect(LinearMap.load(file, { dataHash: 'abc' })).rejects.toThrow(/different prompt bank/);
    const npy = weightsFileFor(file);
    const bytes = fs.readFileSync(npy);
    bytes[bytes.length - 1] ^= 0xff;
    fs.writeFileSync(npy, bytes);
    await expect(LinearMap.load(file)).rejects.toThrow(/map\.weights\.npy: weights do not match map\.json/);
    fs.writeFileSync(file, '{"format": "something else"}');
    await expect(LinearMap.load(file)).rejects.toThrow(/not a linear map manifest/);
  });

  it('refuses a saved map whose manifest changed after saving; predict\'s default map is refitted then, with the reason', async () => {
    const { X, Y } = planted(200, 24, 384, 0.1, 62);
    const map = LinearMap.fit(X, 24, Y, 384);
    const file = path.join(dir, 'sealed.json');
    const fittedFor = { clipModel: 'c', minilmModel: 'm' };
    await map.save(file, fittedFor);
    const text = fs.readFileSync(file, 'utf8');
    // A changed λ is still a valid map file: only its own hash shows the change.
    const edited = text.replace(/"lambda": ([0-9.e-]+)/, (_, x: string) => `"lambda": ${Number(x) * 2}`);
    expect(edited).not.toBe(text);
    fs.writeFileSync(file, edited);
    await expect(LinearMap.load(file)).rejects.toThrow(
      new RegExp(`^${file}: linear map manifest: its content hashes to [0-9a-f]{64}, not the [0-9a-f]{64} recorded when it was written \\(changed or damaged since\\); refit it$`),
    );

    const bank = new PromptBank({ texts: Array.from({ length: 200 }, String), clip: { data: X, rows: 200, dim: 24 }, minilm: { data: Y, rows: 200, dim: 384 } });
    await fitAndSaveMap(bank, file, fittedFor, { lambda: 0.1 });
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/"lambda": ([0-9.e-]+)/, '"lambda": 0.2'));
    const notices: string[] = [];
    const got = await obtainMap(bank, fittedFor, { defaultFile: file, onNotice: (m) => notices.push(m) });
    expect(got.fitted).toBe(true);
    expect(notices).toEqual([expect.stringMatching(/^fitting the linear map on 200 prompts \(linear map manifest: its content hashes to .+\(changed or damaged since\); refit it\) → /)]);
    expect((await LinearMap.load(file)).info.lambda).toBe(got.map.info.lambda);
  });

  it('fits CLIP-size inputs (1024 -> 384) in seconds', () => {
    const dx = 1024;
    const dy = 384;
    const n = 4096;
    const g = gaussian(rng(71));
    const X = unitRowsOf(Float32Array.from({ length: n * dx }, g), dx);
    const Y = unitRowsOf(Float32Array.from({ length: n * dy }, g), dy);
    const t0 = performance.now();
    const map = LinearMap.fit(X, dx, Y, dy);
    const seconds = (performance.now() - t0) / 1000;
    console.log(`fit ${n} x ${dx} -> ${dy}: ${seconds.toFixed(2)} s`);
    expect(map.weights.length).toBe((dx + 1) * dy);
    expect(seconds).toBeLessThan(60);
  });
});
