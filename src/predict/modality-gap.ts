import { Img2PromptError } from '../util/errors.js';
import { checkRows, meanOfUnitRows, normalizeRowInPlace } from '../util/rows.js';

/**
 * The CLIP modality gap: image and text embeddings occupy two separate cones of the sphere, so an
 * image embedding is far from the text embedding of its own caption in absolute terms even when it
 * ranks that caption first. A map trained on text embeddings (linear-map.ts) sees image embeddings as
 * out of distribution unless they are first moved by the difference of the two cones' centres.
 *
 * gap = mean(unit image rows) - mean(unit text rows); an image is corrected as unit(unit(img) - gap).
 */

/** Running mean of unit-normalised rows, fed batch by batch (images arrive in batches). */
export class UnitMean {
  private readonly sum: Float64Array;
  private n = 0;

  constructor(readonly dim: number) {
    this.sum = new Float64Array(dim);
  }

  /** Adds the rows of `data` ([rows, dim]); rows with no direction are skipped. Returns rows used. */
  add(data: Float32Array, label = 'modality gap'): number {
    checkRows(data, this.dim, 'embeddings', label);
    const { mean, count } = meanOfUnitRows(data, this.dim);
    for (let i = 0; i < this.dim; i++) this.sum[i] += mean[i] * count;
    this.n += count;
    return count;
  }

  get count(): number {
    return this.n;
  }

  mean(): Float64Array {
    const m = new Float64Array(this.dim);
    if (this.n > 0) for (let i = 0; i < this.dim; i++) m[i] = this.sum[i] / this.n;
    return m;
  }
}

export interface ModalityGap {
  /** mean(image) - mean(text), [dim]. */
  vector: Float32Array;
  /** Rows each mean was estimated from. */
  images: number;
  texts: number;
}

/** The gap between the centres of the image rows and the text rows (both [*, dim]). */
export function estimateModalityGap(images: Float32Array | UnitMean, texts: Float32Array | UnitMean, dim: number, label = 'modality gap'): ModalityGap {
  const centre = (x: Float32Array | UnitMean, what: string): UnitMean => {
    if (x instanceof UnitMean) {
      if (x.dim !== dim) throw new Img2PromptError(label, `${what} mean has dimension ${x.dim}, expected ${dim}`);
      return x;
    }
    const m = new UnitMean(dim);
    m.add(x, label);
    return m;
  };
  const img = centre(images, 'image');
  const txt = centre(texts, 'text');
  if (img.count === 0) throw new Img2PromptError(label, 'no usable image embeddings to estimate the modality gap from');
  if (txt.count === 0) throw new Img2PromptError(label, 'no usable text embeddings to estimate the modality gap from');
  const mi = img.mean();
  const mt = txt.mean();
  const vector = new Float32Array(dim);
  for (let i = 0; i < dim; i++) vector[i] = mi[i] - mt[i];
  return { vector, images: img.count, texts: txt.count };
}

/**
 * unit(unit(img) - gap) for every row of `images` [rows, dim], as a new array. Rows with no
 * direction (zero, not finite, or exactly the gap) come out as zero rows, which downstream members
 * treat as failed images.
 */
export function removeModalityGap(images: Float32Array, gap: Float32Array, label = 'modality gap'): Float32Array {
  const dim = gap.length;
  const rows = checkRows(images, dim, 'image embeddings', label);
  const out = new Float32Array(images.length);
  const tmp = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    tmp.set(images.subarray(o, o + dim));
    if (!normalizeRowInPlace(tmp, 0, dim)) continue;
    for (let i = 0; i < dim; i++) tmp[i] -= gap[i];
    if (!normalizeRowInPlace(tmp, 0, dim)) continue;
    for (let i = 0; i < dim; i++) out[o + i] = tmp[i];
  }
  return out;
}
