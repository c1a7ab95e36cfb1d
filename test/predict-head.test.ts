// Fitted heads (fit-head's library): ridge recovers a planted linear relation exactly, the MLP beats
// ridge on a planted non-linear one (held-out images neither saw), and head files round-trip and
// are refused, naming the file, when damaged, of another kind or fitted for other models.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HEAD_LAMBDAS, PromptHead } from '../src/predict/head.js';
import { loadHead, saveHead } from '../src/predict/head-file.js';
import { seededRandom } from '../src/predict/seeded.js';
import { tempDir } from './helpers/paths.js';

const work = tempDir('img2prompt-head-');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const FOR = { clipModel: 'planted-clip@0123456789abcdef', minilmModel: 'minilm@fedcba9876543210' };

function gaussians(n: number, seed: number): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random()));
}

/** Mean cosine of rows of P and Y. */
function meanCosine(P: Float32Array, Y: Float32Array, dim: number): number {
  const n = Y.length / dim;
  let sum = 0;
  for (let r = 0; r < n; r++) {
    let pp = 0, yy = 0, py = 0;
    for (let j = 0; j < dim; j++) {
      const p = P[r * dim + j]!, y = Y[r * dim + j]!;
      pp += p * p; yy += y * y; py += p * y;
    }
    sum += pp > 0 && yy > 0 ? py / Math.sqrt(pp * yy) : 0;
  }
  return sum / n;
}

describe('ridge head', () => {
  it('recovers a planted linear relation Y = X·W + b (weights and bias), choosing the smallest λ by 5-fold CV', () => {
    const n = 240, dx = 12, dy = 6;
    const X = gaussians(n * dx, 1);
    const W = gaussians(dx * dy, 2);
    const b = gaussians(dy, 3);
    const Y = new Float32Array(n * dy);
    for (let r = 0; r < n; r++) for (let j = 0; j < dy; j++) {
      let s = b[j]!;
      for (let i = 0; i < dx; i++) s += X[r * dx + i]! * W[i * dy + j]!;
      Y[r * dy + j] = s;
    }
    const head = PromptHead.fit(X, dx, Y, dy, FOR, { kind: 'ridge', folds: 5 });
    expect(head.kind).toBe('ridge');
    expect(head.training.lambda).toBe(HEAD_LAMBDAS[0]);
    expect(head.training.lambdaScores).toHaveLength(HEAD_LAMBDAS.length);
    expect(head.training.heldOutCosine).toBeGreaterThan(0.999999);
    const fitted = (head.weights as { map: Float32Array }).map;
    let worst = 0;
    for (let i = 0; i < dx * dy; i++) worst = Math.max(worst, Math.abs(fitted[i]! - W[i]!));
    for (let j = 0; j < dy; j++) worst = Math.max(worst, Math.abs(fitted[dx * dy + j]! - b[j]!));
    expect(worst).toBeLessThan(1e-3);
    // The member's vectors: the planted outputs, normalised.
    const probe = X.subarray(0, 3 * dx);
    const unit = head.apply(probe);
    for (let r = 0; r < 3; r++) {
      const row = probe.subarray(r * dx, (r + 1) * dx);
      const norm = Math.hypot(...row);
      const want = Array.from({ length: dy }, (_, j) => b[j]! + row.reduce((s, x, i) => s + (x / norm) * W[i * dy + j]!, 0));
      const wn = Math.hypot(...want);
      for (let j = 0; j < dy; j++) expect(unit[r * dy + j]!).toBeCloseTo(want[j]! / wn, 4);
    }
  });
});

describe('MLP head', () => {
  it('fits a planted non-linear relation better than ridge on held-out rows', () => {
    // y_j = (b_j·x)(c_j·x) − b_j·c_j: quadratic with zero mean (x gaussian), which no affine map of x can follow.
    const n = 1000, dx = 6, dy = 8, train = 800;
    const X = gaussians(n * dx, 11);
    const B = gaussians(dy * dx, 12);
    const C = gaussians(dy * dx, 13);
    const Y = new Float32Array(n * dy);
    for (let r = 0; r < n; r++) for (let j = 0; j < dy; j++) {
      let u = 0, v = 0, mean = 0;
      for (let i = 0; i < dx; i++) {
        u += B[j * dx + i]! * X[r * dx + i]!;
        v += C[j * dx + i]! * X[r * dx + i]!;
        mean += B[j * dx + i]! * C[j * dx + i]!;
      }
      Y[r * dy + j] = u * v - mean;
    }
    const Xt = X.subarray(0, train * dx), Yt = Y.subarray(0, train * dy);
    const Xh = X.subarray(train * dx), Yh = Y.subarray(train * dy);
    const ridge = PromptHead.fit(Xt, dx, Yt, dy, FOR, { kind: 'ridge' });
    const mlp = PromptHead.fit(Xt, dx, Yt, dy, FOR, { kind: 'mlp', mlp: { hidden: 64, maxEpochs: 300, learningRate: 3e-3 } });
    expect(mlp.kind).toBe('mlp');
    expect(mlp.training.bestEpoch).toBeGreaterThan(0);
    const ridgeScore = meanCosine(ridge.project(Xh), Yh, dy);
    const mlpScore = meanCosine(mlp.project(Xh), Yh, dy);
    console.log(`planted non-linear, held-out mean cosine: ridge ${ridgeScore.toFixed(4)}, mlp ${mlpScore.toFixed(4)}`);
    expect(Math.abs(ridgeScore)).toBeLessThan(0.2);
    expect(mlpScore).toBeGreaterThan(0.8);
    expect(mlpScore).toBeGreaterThan(ridgeScore + 0.5);
  });

  it('checks its options through the options reader', () => {
    const X = gaussians(20 * 2, 1), Y = gaussians(20 * 2, 2);
    expect(() => PromptHead.fit(X, 2, Y, 2, FOR, { kind: 'lasso' as never })).toThrow(RangeError);
    expect(() => PromptHead.fit(X, 2, Y, 2, FOR, { kind: 'mlp', mlp: { hiden: 4 } as never })).toThrow('PromptHead.fit(): mlp: unknown option "hiden" (did you mean "hidden"?)');
  });

  it('is seeded: the same seed gives the same weights', () => {
    const X = gaussians(60 * 4, 21), Y = gaussians(60 * 3, 22);
    const a = PromptHead.fit(X, 4, Y, 3, FOR, { kind: 'mlp', seed: 7, mlp: { hidden: 8, maxEpochs: 5 } });
    const b = PromptHead.fit(X, 4, Y, 3, FOR, { kind: 'mlp', seed: 7, mlp: { hidden: 8, maxEpochs: 5 } });
    expect(a.project(X)).toEqual(b.project(X));
  });
});

describe('head files', () => {
  const X = gaussians(50 * 5, 31), Y = gaussians(50 * 4, 32);
  const ridge = PromptHead.fit(X, 5, Y, 4, FOR, { kind: 'ridge' });
  const mlp = PromptHead.fit(X, 5, Y, 4, FOR, { kind: 'mlp', mlp: { hidden: 6, maxEpochs: 3 } });

  it('round-trip both kinds exactly, with the models they were fitted for', async () => {
    for (const head of [ridge, mlp]) {
      const file = path.join(work, `${head.kind}.json`);
      await saveHead(file, head);
      const back = await loadHead(file, { clipModel: FOR.clipModel, minilmModel: FOR.minilmModel, clipDim: 5 });
      expect(back.kind).toBe(head.kind);
      expect(back.fittedFor).toEqual(FOR);
      expect(back.training).toEqual(head.training);
      expect(back.apply(X)).toEqual(head.apply(X));
    }
  });

  it('are refused naming the file: unreadable, not a head, damaged, another CLIP, another width', async () => {
    const file = path.join(work, 'ridge.json');
    await saveHead(file, ridge);
    const missing = path.join(work, 'nope.json');
    await expect(loadHead(missing)).rejects.toThrow(`${missing}: cannot read head:`);
    const garbage = path.join(work, 'garbage.json');
    fs.writeFileSync(garbage, '{"members":');
    await expect(loadHead(garbage)).rejects.toThrow(`${garbage}: cannot read head:`);
    const weights = path.join(work, 'weights.json');
    fs.writeFileSync(weights, JSON.stringify({ members: { knn: 1 } }));
    await expect(loadHead(weights)).rejects.toThrow(`${weights}: not a head file (format undefined, expected "img2prompt-head"): make one with \`img2prompt fit-head\``);
    const edited = path.join(work, 'edited.json');
    const record = JSON.parse(fs.readFileSync(file, 'utf8'));
    record.training.lambda = 42;
    fs.writeFileSync(edited, JSON.stringify(record));
    await expect(loadHead(edited)).rejects.toThrow(new RegExp(`^${edited}: head file: its content hashes to [0-9a-f]{64}, not the [0-9a-f]{64} recorded when it was written \\(changed or damaged since\\); refit it$`));
    await expect(loadHead(file, { clipModel: 'clip-vit-b-32@aaaa' })).rejects.toThrow(
      `${file}: head was fitted for clipModel '${FOR.clipModel}', this run uses 'clip-vit-b-32@aaaa'; fit it again with this model`,
    );
    await expect(loadHead(file, { clipDim: 512 })).rejects.toThrow(`${file}: head takes 5-d CLIP vectors, this run has 512-d ones`);
  });
});
