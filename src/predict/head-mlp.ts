/**
 * The MLP head: one hidden ReLU layer from a CLIP image embedding to a MiniLM prompt vector, trained
 * on the competition's own loss (1 − cosine with the true prompt's vector) with Adam, and stopped
 * early on a held-out fold.
 *
 * Written by hand rather than with a library: the network is two small matrix products, the npm
 * options (tfjs-node, brain.js, synaptic) bring a second native runtime or lack a cosine loss and
 * seeded, bit-reproducible initialisation, and ONNX Runtime's training API is not in the Node
 * package. A few hundred lines of typed-array loops keep the fit seeded, dependency-free and
 * reproducible.
 */
import { Img2PromptError } from '../util/errors.js';
import { checkRows } from '../util/rows.js';
import { readOptions } from '../util/options.js';
import { seededPermutation, seededRandom } from './seeded.js';

export interface MlpWeights {
  inputDim: number;
  hidden: number;
  outputDim: number;
  /** [inputDim, hidden], [hidden], [hidden, outputDim], [outputDim]; row-major. */
  w1: Float32Array;
  b1: Float32Array;
  w2: Float32Array;
  b2: Float32Array;
}

export interface MlpFitOptions {
  /** Hidden units; default 512. */
  hidden?: number;
  /** Most passes over the training rows; default 200. */
  maxEpochs?: number;
  /** Epochs without a better held-out cosine before stopping; default 15. */
  patience?: number;
  /** Adam step size; default 1e-3. */
  learningRate?: number;
  /** Rows per Adam step; default 64. */
  batchSize?: number;
  /** The held-out fold is 1/folds of the rows (at least one); default 5. */
  folds?: number;
  /** Seeds the initial weights, the split and the batch order; default 0. */
  seed?: number;
  /** Names the data in error messages. */
  label?: string;
  /** Told after each epoch. */
  onEpoch?: (epoch: number, heldOutCosine: number) => void;
}

export interface MlpFit {
  weights: MlpWeights;
  /** Mean cosine on the held-out fold at the epoch kept. */
  heldOutCosine: number;
  /** The epoch kept (1-based) and the epochs run. */
  bestEpoch: number;
  epochs: number;
  /** Rows trained on and held out. */
  trainRows: number;
  heldOutRows: number;
}

/** C[m, n] = A[m, k] · B[k, n] (+ bias[n] on every row when given). */
function matmul(A: Float32Array, B: Float32Array, m: number, k: number, n: number, bias?: Float32Array): Float32Array {
  const C = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    const ci = i * n;
    if (bias) C.set(bias, ci);
    for (let t = 0; t < k; t++) {
      const a = A[i * k + t];
      if (a === 0) continue;
      const bt = t * n;
      for (let j = 0; j < n; j++) C[ci + j] += a * B[bt + j];
    }
  }
  return C;
}

/** C[m, n] += Aᵀ · B for A [rows, m], B [rows, n]: the weight gradient of a layer. */
function addTransposeProduct(A: Float32Array, B: Float32Array, rows: number, m: number, n: number, C: Float32Array): void {
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < m; i++) {
      const a = A[r * m + i];
      if (a === 0) continue;
      const ci = i * n;
      const br = r * n;
      for (let j = 0; j < n; j++) C[ci + j] += a * B[br + j];
    }
  }
}

/** C[m, k] = A[m, n] · Bᵀ for B [k, n]: the gradient passed back through a layer. */
function productWithTranspose(A: Float32Array, B: Float32Array, m: number, n: number, k: number): Float32Array {
  const C = new Float32Array(m * k);
  for (let i = 0; i < m; i++) {
    for (let t = 0; t < k; t++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += A[i * n + j] * B[t * n + j];
      C[i * k + t] = s;
    }
  }
  return C;
}

/** Rows `index` of X [*, dim]. */
function gather(X: Float32Array, dim: number, index: ArrayLike<number>): Float32Array {
  const out = new Float32Array(index.length * dim);
  for (let r = 0; r < index.length; r++) out.set(X.subarray(index[r] * dim, (index[r] + 1) * dim), r * dim);
  return out;
}

/** The network on rows X [n, inputDim]: the hidden pre-activations and the raw outputs. */
function forward(w: MlpWeights, X: Float32Array, n: number): { z1: Float32Array; out: Float32Array } {
  const z1 = matmul(X, w.w1, n, w.inputDim, w.hidden, w.b1);
  const a1 = z1.map((v) => (v > 0 ? v : 0));
  return { z1, out: matmul(a1, w.w2, n, w.hidden, w.outputDim, w.b2) };
}

/** The MLP's raw outputs [n, outputDim] for rows X [n, inputDim] (not normalised). */
export function mlpForward(w: MlpWeights, X: Float32Array): Float32Array {
  const n = X.length / w.inputDim;
  return forward(w, X, n).out;
}

/** Cosine of row r of P with row r of Y, and (with `grad`) d(−cos)/dP written into grad's row r. */
function rowCosine(P: Float32Array, Y: Float32Array, r: number, dim: number, grad?: Float32Array, scale = 1): number {
  let pp = 0, yy = 0, py = 0;
  const o = r * dim;
  for (let j = 0; j < dim; j++) {
    pp += P[o + j] * P[o + j];
    yy += Y[o + j] * Y[o + j];
    py += P[o + j] * Y[o + j];
  }
  if (!(pp > 0 && yy > 0)) return 0;
  const np = Math.sqrt(pp);
  const ny = Math.sqrt(yy);
  const cos = py / (np * ny);
  if (grad) {
    // d cos / dp = y / (|p||y|) − cos · p / |p|²
    for (let j = 0; j < dim; j++) grad[o + j] = -scale * (Y[o + j] / (np * ny) - (cos * P[o + j]) / pp);
  }
  return cos;
}

/** Mean cosine of the network's outputs on X with Y. */
export function mlpMeanCosine(w: MlpWeights, X: Float32Array, Y: Float32Array): number {
  const n = X.length / w.inputDim;
  if (n === 0) return 0;
  const out = mlpForward(w, X);
  let sum = 0;
  for (let r = 0; r < n; r++) sum += rowCosine(out, Y, r, w.outputDim);
  return sum / n;
}

/** He-initialised weights (gaussian by Box-Muller from the seeded generator), zero biases. */
function initialWeights(inputDim: number, hidden: number, outputDim: number, seed: number): MlpWeights {
  const random = seededRandom(seed ^ 0x5eed);
  const gaussian = (): number => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
  const fill = (n: number, fanIn: number): Float32Array => {
    const s = Math.sqrt(2 / fanIn);
    return Float32Array.from({ length: n }, () => gaussian() * s);
  };
  return {
    inputDim, hidden, outputDim,
    w1: fill(inputDim * hidden, inputDim), b1: new Float32Array(hidden),
    w2: fill(hidden * outputDim, hidden), b2: new Float32Array(outputDim),
  };
}

const copyWeights = (w: MlpWeights): MlpWeights => ({ ...w, w1: w.w1.slice(), b1: w.b1.slice(), w2: w.w2.slice(), b2: w.b2.slice() });

/** Adam's moment estimates for one parameter array. */
class AdamSlot {
  private readonly m: Float32Array;
  private readonly v: Float32Array;
  constructor(size: number) {
    this.m = new Float32Array(size);
    this.v = new Float32Array(size);
  }

  step(param: Float32Array, grad: Float32Array, lr: number, t: number): void {
    const b1 = 0.9, b2 = 0.999, eps = 1e-8;
    const c1 = 1 - b1 ** t;
    const c2 = 1 - b2 ** t;
    for (let i = 0; i < param.length; i++) {
      const g = grad[i];
      this.m[i] = b1 * this.m[i] + (1 - b1) * g;
      this.v[i] = b2 * this.v[i] + (1 - b2) * g * g;
      param[i] -= (lr * (this.m[i] / c1)) / (Math.sqrt(this.v[i] / c2) + eps);
    }
  }
}

/**
 * Fits the MLP on X [N, inputDim] → Y [N, outputDim]: the rows of one seeded fold are held out, the
 * rest trained on in shuffled mini-batches, and the weights of the epoch with the best held-out mean
 * cosine are kept (stopping after `patience` epochs without one).
 */
export function fitMlp(X: Float32Array, inputDim: number, Y: Float32Array, outputDim: number, options: MlpFitOptions = {}, call = 'fitMlp()'): MlpFit {
  const o = readOptions(options, call);
  const hidden = o.int('hidden', { min: 1 }) ?? 512;
  const maxEpochs = o.int('maxEpochs', { min: 1 }) ?? 200;
  const patience = o.int('patience', { min: 1 }) ?? 15;
  const lr = o.number('learningRate', { min: 0, minExclusive: true }) ?? 1e-3;
  const batchSize = o.int('batchSize', { min: 1 }) ?? 64;
  const folds = o.int('folds', { min: 2 }) ?? 5;
  const seed = o.int('seed') ?? 0;
  const label = o.string('label') ?? 'MLP head';
  const onEpoch = o.func<NonNullable<MlpFitOptions['onEpoch']>>('onEpoch');
  o.done();
  const n = checkRows(X, inputDim, 'image embeddings', label);
  checkRows(Y, outputDim, 'prompt vectors', label, n);
  const heldCount = Math.max(1, Math.floor(n / folds));
  if (n - heldCount < 2) throw new Img2PromptError(label, `${n} rows are too few to hold out a fold of ${heldCount} and train on the rest`);

  const order = seededPermutation(n, seed);
  const heldIndex = order.subarray(0, heldCount);
  const trainIndex = order.subarray(heldCount);
  const Xh = gather(X, inputDim, heldIndex);
  const Yh = gather(Y, outputDim, heldIndex);
  const Xt = gather(X, inputDim, trainIndex);
  const Yt = gather(Y, outputDim, trainIndex);
  const nt = trainIndex.length;

  const w = initialWeights(inputDim, hidden, outputDim, seed);
  const slots = { w1: new AdamSlot(w.w1.length), b1: new AdamSlot(hidden), w2: new AdamSlot(w.w2.length), b2: new AdamSlot(outputDim) };
  let best = { weights: copyWeights(w), cosine: mlpMeanCosine(w, Xh, Yh), epoch: 0 };
  let step = 0;
  let epoch = 0;
  const random = seededRandom(seed + 1);
  const batch = new Int32Array(nt);
  for (epoch = 1; epoch <= maxEpochs; epoch++) {
    // A fresh seeded shuffle of the training rows each epoch.
    for (let i = 0; i < nt; i++) batch[i] = i;
    for (let i = nt - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      const t = batch[i]; batch[i] = batch[j]; batch[j] = t;
    }
    for (let s = 0; s < nt; s += batchSize) {
      const rows = batch.subarray(s, Math.min(nt, s + batchSize));
      const m = rows.length;
      const xb = gather(Xt, inputDim, rows);
      const yb = gather(Yt, outputDim, rows);
      const { z1, out } = forward(w, xb, m);
      const a1 = z1.map((v) => (v > 0 ? v : 0));
      const dOut = new Float32Array(m * outputDim);
      for (let r = 0; r < m; r++) rowCosine(out, yb, r, outputDim, dOut, 1 / m);
      const gw2 = new Float32Array(w.w2.length);
      addTransposeProduct(a1, dOut, m, hidden, outputDim, gw2);
      const gb2 = new Float32Array(outputDim);
      for (let r = 0; r < m; r++) for (let j = 0; j < outputDim; j++) gb2[j] += dOut[r * outputDim + j];
      const dz1 = productWithTranspose(dOut, w.w2, m, outputDim, hidden);
      for (let i = 0; i < dz1.length; i++) if (!(z1[i] > 0)) dz1[i] = 0;
      const gw1 = new Float32Array(w.w1.length);
      addTransposeProduct(xb, dz1, m, inputDim, hidden, gw1);
      const gb1 = new Float32Array(hidden);
      for (let r = 0; r < m; r++) for (let j = 0; j < hidden; j++) gb1[j] += dz1[r * hidden + j];
      step++;
      slots.w1.step(w.w1, gw1, lr, step);
      slots.b1.step(w.b1, gb1, lr, step);
      slots.w2.step(w.w2, gw2, lr, step);
      slots.b2.step(w.b2, gb2, lr, step);
    }
    const cosine = mlpMeanCosine(w, Xh, Yh);
    onEpoch?.(epoch, cosine);
    if (cosine > best.cosine) best = { weights: copyWeights(w), cosine, epoch };
    else if (epoch - best.epoch >= patience) break;
  }
  return {
    weights: best.weights,
    heldOutCosine: best.cosine,
    bestEpoch: best.epoch,
    epochs: Math.min(epoch, maxEpochs),
    trainRows: nt,
    heldOutRows: heldCount,
  };
}
