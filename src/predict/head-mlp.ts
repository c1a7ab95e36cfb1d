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
import { rowsTimesRows } from './normal-equations.js';

export interface MlpWeights {
  inputDim: number;
  hidden: number;
  outputDim: number;
  /**
   * w1 [hidden, inputDim], b1 [hidden], w2 [outputDim, hidden], b2 [outputDim]: row-major, each layer's
   * matrix output-major as torch's nn.Linear keeps it, so h = relu(W1·x + b1), y = W2·h + b2.
   */
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
  /** The epoch kept (1-based; 0: the initial weights were never bettered) and the epochs run. */
  bestEpoch: number;
  epochs: number;
  /** Rows trained on and held out. */
  trainRows: number;
  heldOutRows: number;
}

/** The layer widths. */
type Dims = Pick<MlpWeights, 'inputDim' | 'hidden' | 'outputDim'>;

/** The weights in float64, as training updates them. */
interface Params {
  w1: Float64Array;
  b1: Float64Array;
  w2: Float64Array;
  b2: Float64Array;
}

/** `rows` copied into `padded` rows of width k (zeros after). */
function padRows(A: Float64Array, rows: number, padded: number, k: number): Float64Array {
  const out = new Float64Array(padded * k);
  out.set(A.subarray(0, rows * k));
  return out;
}

/**
 * A·Bᵀ [na, nb] for A [na, k] and B [nb, k]: every product of the network goes through the register-
 * blocked kernel the ridge solver uses (normal-equations.ts), which wants na even and nb a multiple
 * of 4, so odd shapes are padded with zero rows here.
 */
function timesTransposed(A: Float64Array, na: number, B: Float64Array, nb: number, k: number): Float64Array {
  const pa = na + (na % 2);
  const pb = Math.ceil(nb / 4) * 4;
  const out = new Float64Array(pa * pb);
  rowsTimesRows(pa === na ? A : padRows(A, na, pa, k), pa, pb === nb ? B : padRows(B, nb, pb, k), pb, k, out);
  if (pb === nb) return pa === na ? out : out.slice(0, na * nb);
  const trimmed = new Float64Array(na * nb);
  for (let i = 0; i < na; i++) trimmed.set(out.subarray(i * pb, i * pb + nb), i * nb);
  return trimmed;
}

/** Aᵀ [cols, rows] of A [rows, cols]. */
function transpose(A: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = A[r * cols + c];
  return out;
}

/** Rows `index` of X [*, dim], in float64. */
function gather(X: Float32Array, dim: number, index: ArrayLike<number>): Float64Array {
  const out = new Float64Array(index.length * dim);
  for (let r = 0; r < index.length; r++) out.set(X.subarray(index[r] * dim, (index[r] + 1) * dim), r * dim);
  return out;
}

/** `bias` added to every row of M [rows, bias.length], in place. */
function addBias(M: Float64Array, bias: Float64Array): Float64Array {
  const n = bias.length;
  for (let o = 0; o < M.length; o += n) for (let j = 0; j < n; j++) M[o + j] += bias[j];
  return M;
}

/** The network on rows X [n, inputDim]: the hidden pre-activations, the activations and the raw outputs. */
function forward(p: Params, dims: Dims, X: Float64Array, n: number) {
  const z1 = addBias(timesTransposed(X, n, p.w1, dims.hidden, dims.inputDim), p.b1);
  const a1 = z1.map((v) => (v > 0 ? v : 0));
  return { z1, a1, out: addBias(timesTransposed(a1, n, p.w2, dims.outputDim, dims.hidden), p.b2) };
}

const toParams = (w: MlpWeights): Params => ({ w1: Float64Array.from(w.w1), b1: Float64Array.from(w.b1), w2: Float64Array.from(w.w2), b2: Float64Array.from(w.b2) });

/** The MLP's raw outputs [n, outputDim] for rows X [n, inputDim] (not normalised). */
export function mlpForward(w: MlpWeights, X: Float32Array): Float32Array {
  const n = X.length / w.inputDim;
  return Float32Array.from(forward(toParams(w), w, Float64Array.from(X), n).out);
}

/** Cosine of row r of P with row r of Y, and (with `grad`) scale · d(−cos)/dP written into grad's row r. */
function rowCosine(P: Float64Array, Y: Float64Array, r: number, dim: number, grad?: Float64Array, scale = 1): number {
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
function meanCosine(p: Params, dims: Dims, X: Float64Array, Y: Float64Array): number {
  const n = X.length / dims.inputDim;
  if (n === 0) return 0;
  const { out } = forward(p, dims, X, n);
  let sum = 0;
  for (let r = 0; r < n; r++) sum += rowCosine(out, Y, r, dims.outputDim);
  return sum / n;
}

/** He-initialised weights (gaussian by Box-Muller from the seeded generator), zero biases. */
function initialParams(inputDim: number, hidden: number, outputDim: number, seed: number): Params {
  const random = seededRandom(seed ^ 0x5eed);
  const gaussian = (): number => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
  const fill = (n: number, fanIn: number): Float64Array => {
    const s = Math.sqrt(2 / fanIn);
    return Float64Array.from({ length: n }, () => gaussian() * s);
  };
  return { w1: fill(hidden * inputDim, inputDim), b1: new Float64Array(hidden), w2: fill(outputDim * hidden, hidden), b2: new Float64Array(outputDim) };
}

const copyParams = (p: Params): Params => ({ w1: p.w1.slice(), b1: p.b1.slice(), w2: p.w2.slice(), b2: p.b2.slice() });

/** Column sums of M [rows, cols]: a bias's gradient. */
function columnSums(M: Float64Array, cols: number): Float64Array {
  const out = new Float64Array(cols);
  for (let o = 0; o < M.length; o += cols) for (let j = 0; j < cols; j++) out[j] += M[o + j];
  return out;
}

/** Adam's moment estimates for one parameter array. */
class AdamSlot {
  private readonly m: Float64Array;
  private readonly v: Float64Array;
  constructor(size: number) {
    this.m = new Float64Array(size);
    this.v = new Float64Array(size);
  }

  step(param: Float64Array, grad: Float64Array, lr: number, t: number): void {
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
  const Xh = gather(X, inputDim, order.subarray(0, heldCount));
  const Yh = gather(Y, outputDim, order.subarray(0, heldCount));
  const trainIndex = order.subarray(heldCount);
  const nt = trainIndex.length;
  const dims: Dims = { inputDim, hidden, outputDim };

  const p = initialParams(inputDim, hidden, outputDim, seed);
  const slots = { w1: new AdamSlot(p.w1.length), b1: new AdamSlot(hidden), w2: new AdamSlot(p.w2.length), b2: new AdamSlot(outputDim) };
  let best = { params: copyParams(p), cosine: meanCosine(p, dims, Xh, Yh), epoch: 0 };
  let step = 0;
  let epoch = 0;
  const random = seededRandom(seed + 1);
  const shuffled = Int32Array.from(trainIndex);
  for (epoch = 1; epoch <= maxEpochs; epoch++) {
    // A fresh seeded shuffle of the training rows each epoch.
    for (let i = nt - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      const t = shuffled[i]; shuffled[i] = shuffled[j]; shuffled[j] = t;
    }
    for (let s = 0; s < nt; s += batchSize) {
      const rows = shuffled.subarray(s, Math.min(nt, s + batchSize));
      const m = rows.length;
      const xb = gather(X, inputDim, rows);
      const yb = gather(Y, outputDim, rows);
      const { z1, a1, out } = forward(p, dims, xb, m);
      const dOut = new Float64Array(m * outputDim);
      for (let r = 0; r < m; r++) rowCosine(out, yb, r, outputDim, dOut, 1 / m);
      // Layer 2: dW2 = dOutᵀ·a1 [outputDim, hidden]; the gradient passed back is dOut·W2 [m, hidden].
      const dOutT = transpose(dOut, m, outputDim);
      const gw2 = timesTransposed(dOutT, outputDim, transpose(a1, m, hidden), hidden, m);
      const dz1 = timesTransposed(dOut, m, transpose(p.w2, outputDim, hidden), hidden, outputDim);
      for (let i = 0; i < dz1.length; i++) if (!(z1[i] > 0)) dz1[i] = 0;
      // Layer 1: dW1 = dz1ᵀ·x [hidden, inputDim].
      const gw1 = timesTransposed(transpose(dz1, m, hidden), hidden, transpose(xb, m, inputDim), inputDim, m);
      step++;
      slots.w1.step(p.w1, gw1, lr, step);
      slots.b1.step(p.b1, columnSums(dz1, hidden), lr, step);
      slots.w2.step(p.w2, gw2, lr, step);
      slots.b2.step(p.b2, columnSums(dOut, outputDim), lr, step);
    }
    const cosine = meanCosine(p, dims, Xh, Yh);
    onEpoch?.(epoch, cosine);
    if (cosine > best.cosine) best = { params: copyParams(p), cosine, epoch };
    else if (epoch - best.epoch >= patience) break;
  }
  const weights: MlpWeights = {
    inputDim, hidden, outputDim,
    w1: Float32Array.from(best.params.w1), b1: Float32Array.from(best.params.b1),
    w2: Float32Array.from(best.params.w2), b2: Float32Array.from(best.params.b2),
  };
  return {
    weights,
    heldOutCosine: best.cosine,
    bestEpoch: best.epoch,
    epochs: Math.min(epoch, maxEpochs),
    trainRows: nt,
    heldOutRows: heldCount,
  };
}
