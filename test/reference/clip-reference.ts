/**
 * An independent CLIP forward pass in plain TypeScript and float64, written straight from the
 * architecture (OpenAI CLIP / open_clip `VisionTransformer` and `TextTransformer`) to check the ONNX
 * graphs against. It shares no code with src/clip or models/graph: it reads the checkpoint's tensors
 * by their own names, in either layout, and loops over indices instead of building anything.
 *
 *   vision: conv patch embedding (stride = patch, no bias) → [class; patches] + positional
 *           → ln_pre → blocks → ln_post(class token) @ proj
 *   text:   token + positional embedding → blocks with a causal mask → ln_final
 *           → state at the EOT position → @ text_projection
 *   block:  x += out_proj(MHA(ln_1(x)));  x += c_proj(act(c_fc(ln_2(x))))
 */

export type RefLayout = 'open_clip' | 'hf';

export interface RefTensor {
  shape: readonly number[];
  data: Float64Array;
}

/** What the tensors cannot tell: heads, activation, LN epsilon and the text pooling rule. */
export interface RefTowerArch {
  heads: number;
  act: 'quick_gelu' | 'gelu';
  lnEps: number;
}

export interface RefArch {
  vision: RefTowerArch;
  text: RefTowerArch & { pooling: 'argmax' | 'first-eot'; eotId: number };
}

export interface RefEmbeddings {
  /** One float64 vector per input, before normalisation. */
  raw: Float64Array[];
  /** The same divided by its L2 norm. */
  unit: Float64Array[];
}

/** Read access to a checkpoint by tensor name, with a clear failure for a missing name. */
export class RefCheckpoint {
  constructor(
    private readonly tensors: ReadonlyMap<string, RefTensor>,
    readonly layout: RefLayout,
  ) {}

  get(name: string): RefTensor {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`reference: checkpoint has no tensor "${name}"`);
    return t;
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }
}

// ------------------------------------------------------------------------------------------------
// Scalar maths.

/** erf in float64: Maclaurin series below 3, continued fraction for erfc above (both to ~1e-14). */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = x;
    let sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  if (ax > 9) return Math.sign(x);
  // erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))), evaluated from the tail.
  let f = ax;
  for (let k = 80; k >= 1; k--) f = ax + k / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

function act(kind: 'quick_gelu' | 'gelu', x: number): number {
  return kind === 'gelu' ? 0.5 * x * (1 + erf(x / Math.SQRT2)) : x / (1 + Math.exp(-1.702 * x));
}

// ------------------------------------------------------------------------------------------------
// Row-major matrices as arrays of rows.

type Rows = Float64Array[];

/** y = x · Wᵀ + b for W stored [out, in] (nn.Linear). `rowOffset` selects rows of a packed W. */
function linearRows(x: Rows, w: Float64Array, inDim: number, outDim: number, bias?: Float64Array, rowOffset = 0): Rows {
  return x.map((row) => {
    const y = new Float64Array(outDim);
    for (let o = 0; o < outDim; o++) {
      const base = (rowOffset + o) * inDim;
      let s = bias ? bias[rowOffset + o]! : 0;
      for (let i = 0; i < inDim; i++) s += row[i]! * w[base + i]!;
      y[o] = s;
    }
    return y;
  });
}

/** y = x · M for M stored [in, out] (open_clip's proj / text_projection). */
function matmulRows(x: Rows, m: Float64Array, inDim: number, outDim: number): Rows {
  return x.map((row) => {
    const y = new Float64Array(outDim);
    for (let i = 0; i < inDim; i++) {
      const xi = row[i]!;
      for (let o = 0; o < outDim; o++) y[o]! += xi * m[i * outDim + o]!;
    }
    return y;
  });
}

function layerNormRows(x: Rows, w: Float64Array, b: Float64Array, eps: number): Rows {
  return x.map((row) => {
    const n = row.length;
    let mean = 0;
    for (const v of row) mean += v;
    mean /= n;
    let variance = 0;
    for (const v of row) variance += (v - mean) ** 2;
    variance /= n;
    const inv = 1 / Math.sqrt(variance + eps);
    return row.map((v, i) => (v - mean) * inv * w[i]! + b[i]!);
  });
}

function addRows(a: Rows, b: Rows): Rows {
  return a.map((row, r) => row.map((v, i) => v + b[r]![i]!));
}

function l2(v: Float64Array): Float64Array {
  let s = 0;
  for (const x of v) s += x * x;
  const n = Math.sqrt(s);
  return v.map((x) => x / n);
}

// ------------------------------------------------------------------------------------------------
// One residual block, with the layout deciding only where each parameter is read from.

interface BlockParams {
  ln1: [Float64Array, Float64Array];
  /** For q, k, v: the [out, in] matrix to read rows from, the row offset, and the bias vector. */
  q: [Float64Array, number, Float64Array];
  k: [Float64Array, number, Float64Array];
  v: [Float64Array, number, Float64Array];
  out: [Float64Array, Float64Array];
  ln2: [Float64Array, Float64Array];
  fc: [Float64Array, Float64Array];
  proj: [Float64Array, Float64Array];
}

function blockParams(ck: RefCheckpoint, prefix: string, width: number): BlockParams {
  const d = (n: string) => ck.get(prefix + n).data;
  if (ck.layout === 'open_clip') {
    // nn.MultiheadAttention packs [W_q; W_k; W_v] along the output rows of in_proj_weight.
    const inW = d('attn.in_proj_weight');
    const inB = d('attn.in_proj_bias');
    return {
      ln1: [d('ln_1.weight'), d('ln_1.bias')],
      q: [inW, 0, inB],
      k: [inW, width, inB],
      v: [inW, 2 * width, inB],
      out: [d('attn.out_proj.weight'), d('attn.out_proj.bias')],
      ln2: [d('ln_2.weight'), d('ln_2.bias')],
      fc: [d('mlp.c_fc.weight'), d('mlp.c_fc.bias')],
      proj: [d('mlp.c_proj.weight'), d('mlp.c_proj.bias')],
    };
  }
  return {
    ln1: [d('layer_norm1.weight'), d('layer_norm1.bias')],
    q: [d('self_attn.q_proj.weight'), 0, d('self_attn.q_proj.bias')],
    k: [d('self_attn.k_proj.weight'), 0, d('self_attn.k_proj.bias')],
    v: [d('self_attn.v_proj.weight'), 0, d('self_attn.v_proj.bias')],
    out: [d('self_attn.out_proj.weight'), d('self_attn.out_proj.bias')],
    ln2: [d('layer_norm2.weight'), d('layer_norm2.bias')],
    fc: [d('mlp.fc1.weight'), d('mlp.fc1.bias')],
    proj: [d('mlp.fc2.weight'), d('mlp.fc2.bias')],
  };
}

function residualBlock(x: Rows, p: BlockParams, arch: RefTowerArch, causal: boolean): Rows {
  const S = x.length;
  const W = x[0]!.length;
  const H = arch.heads;
  const D = W / H;
  const h = layerNormRows(x, p.ln1[0], p.ln1[1], arch.lnEps);
  const q = linearRows(h, p.q[0], W, W, p.q[2], p.q[1]);
  const k = linearRows(h, p.k[0], W, W, p.k[2], p.k[1]);
  const v = linearRows(h, p.v[0], W, W, p.v[2], p.v[1]);
  const ctx: Rows = Array.from({ length: S }, () => new Float64Array(W));
  const scale = 1 / Math.sqrt(D);
  for (let head = 0; head < H; head++) {
    const off = head * D;
    for (let i = 0; i < S; i++) {
      // Causal: position i sees 0..i only (open_clip's -inf above the diagonal).
      const last = causal ? i : S - 1;
      const scores = new Float64Array(last + 1);
      let max = -Infinity;
      for (let j = 0; j <= last; j++) {
        let s = 0;
        for (let dd = 0; dd < D; dd++) s += q[i]![off + dd]! * k[j]![off + dd]!;
        scores[j] = s * scale;
        if (scores[j]! > max) max = scores[j]!;
      }
      let total = 0;
      for (let j = 0; j <= last; j++) {
        scores[j] = Math.exp(scores[j]! - max);
        total += scores[j]!;
      }
      for (let j = 0; j <= last; j++) {
        const pj = scores[j]! / total;
        for (let dd = 0; dd < D; dd++) ctx[i]![off + dd]! += pj * v[j]![off + dd]!;
      }
    }
  }
  const attnOut = linearRows(ctx, p.out[0], W, W, p.out[1]);
  const x1 = addRows(x, attnOut);
  const h2 = layerNormRows(x1, p.ln2[0], p.ln2[1], arch.lnEps);
  const inter = p.fc[1].length;
  const fc = linearRows(h2, p.fc[0], W, inter, p.fc[1]).map((row) => row.map((z) => act(arch.act, z)));
  return addRows(x1, linearRows(fc, p.proj[0], inter, W, p.proj[1]));
}

function countLayers(ck: RefCheckpoint, prefix: string, probe: string): number {
  let n = 0;
  while (ck.has(`${prefix}${n}.${probe}`)) n++;
  return n;
}

// ------------------------------------------------------------------------------------------------
// Towers.

/**
 * Image embeddings for `batch` images in `pixels` ([batch, 3, N, N] row-major, already normalised).
 */
export function referenceImageEmbeds(ck: RefCheckpoint, arch: RefArch, pixels: ArrayLike<number>, batch: number): RefEmbeddings {
  const oc = ck.layout === 'open_clip';
  const conv = ck.get(oc ? 'visual.conv1.weight' : 'vision_model.embeddings.patch_embedding.weight');
  const [W, C, P] = conv.shape as [number, number, number, number];
  const N = Math.round(Math.sqrt(pixels.length / batch / C));
  const g = N / P;
  const cls = ck.get(oc ? 'visual.class_embedding' : 'vision_model.embeddings.class_embedding').data;
  const pos = ck.get(oc ? 'visual.positional_embedding' : 'vision_model.embeddings.position_embedding.weight').data;
  const pre = oc ? 'visual.ln_pre' : 'vision_model.pre_layrnorm';
  const post = oc ? 'visual.ln_post' : 'vision_model.post_layernorm';
  const blockPrefix = oc ? 'visual.transformer.resblocks.' : 'vision_model.encoder.layers.';
  const layers = countLayers(ck, blockPrefix, oc ? 'ln_1.weight' : 'layer_norm1.weight');
  const raw: Float64Array[] = [];
  for (let n = 0; n < batch; n++) {
    const img = (c: number, y: number, x: number) => pixels[((n * C + c) * N + y) * N + x]!;
    // Token 0 is the class embedding; tokens 1.. are patches in row-major order.
    let x: Rows = [Float64Array.from(cls)];
    for (let gy = 0; gy < g; gy++) {
      for (let gx = 0; gx < g; gx++) {
        const t = new Float64Array(W);
        for (let o = 0; o < W; o++) {
          let s = 0;
          for (let c = 0; c < C; c++)
            for (let ky = 0; ky < P; ky++)
              for (let kx = 0; kx < P; kx++) s += conv.data[((o * C + c) * P + ky) * P + kx]! * img(c, gy * P + ky, gx * P + kx);
          t[o] = s;
        }
        x.push(t);
      }
    }
    x = x.map((row, i) => row.map((v, d) => v + pos[i * W + d]!));
    x = layerNormRows(x, ck.get(`${pre}.weight`).data, ck.get(`${pre}.bias`).data, arch.vision.lnEps);
    for (let l = 0; l < layers; l++) x = residualBlock(x, blockParams(ck, `${blockPrefix}${l}.`, W), arch.vision, false);
    const pooled = layerNormRows([x[0]!], ck.get(`${post}.weight`).data, ck.get(`${post}.bias`).data, arch.vision.lnEps);
    let out: Rows;
    if (oc) {
      const proj = ck.get('visual.proj');
      out = matmulRows(pooled, proj.data, W, proj.shape[1]!);
    } else {
      const proj = ck.get('visual_projection.weight');
      out = linearRows(pooled, proj.data, W, proj.shape[0]!);
    }
    raw.push(out[0]!);
  }
  return { raw, unit: raw.map(l2) };
}

/** Text embeddings for token-id sequences (each may carry padding after its EOT). */
export function referenceTextEmbeds(ck: RefCheckpoint, arch: RefArch, sequences: readonly (readonly number[])[]): RefEmbeddings {
  const oc = ck.layout === 'open_clip';
  const tok = ck.get(oc ? 'token_embedding.weight' : 'text_model.embeddings.token_embedding.weight');
  const W = tok.shape[1]!;
  const pos = ck.get(oc ? 'positional_embedding' : 'text_model.embeddings.position_embedding.weight').data;
  const blockPrefix = oc ? 'transformer.resblocks.' : 'text_model.encoder.layers.';
  const layers = countLayers(ck, blockPrefix, oc ? 'ln_1.weight' : 'layer_norm1.weight');
  const fin = oc ? 'ln_final' : 'text_model.final_layer_norm';
  const raw: Float64Array[] = [];
  for (const ids of sequences) {
    let x: Rows = ids.map((id, i) => {
      const row = new Float64Array(W);
      for (let d = 0; d < W; d++) row[d] = tok.data[id * W + d]! + pos[i * W + d]!;
      return row;
    });
    for (let l = 0; l < layers; l++) x = residualBlock(x, blockParams(ck, `${blockPrefix}${l}.`, W), arch.text, true);
    x = layerNormRows(x, ck.get(`${fin}.weight`).data, ck.get(`${fin}.bias`).data, arch.text.lnEps);
    let at = 0;
    if (arch.text.pooling === 'argmax') {
      for (let i = 1; i < ids.length; i++) if (ids[i]! > ids[at]!) at = i;
    } else {
      at = Math.max(0, ids.indexOf(arch.text.eotId));
    }
    let out: Rows;
    if (oc) {
      const proj = ck.get('text_projection');
      out = matmulRows([x[at]!], proj.data, W, proj.shape[1]!);
    } else {
      const proj = ck.get('text_projection.weight');
      out = linearRows([x[at]!], proj.data, W, proj.shape[0]!);
    }
    raw.push(out[0]!);
  }
  return { raw, unit: raw.map(l2) };
}

/** A checkpoint file's tensors widened to float64 (reading the file is the only shared code). */
export function refCheckpointFromTensors(
  tensors: Iterable<{ name: string; shape: readonly number[]; values: ArrayLike<number> }>,
  layout: RefLayout,
): RefCheckpoint {
  const map = new Map<string, RefTensor>();
  for (const t of tensors) map.set(t.name, { shape: t.shape, data: Float64Array.from(t.values) });
  return new RefCheckpoint(map, layout);
}
