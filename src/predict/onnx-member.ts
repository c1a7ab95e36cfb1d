/**
 * An ONNX member: a user's model that regresses the 384-d prompt vector straight from the image (the
 * reference notebook's fine-tuned ViT, a timm or PyTorch export of one's own). It is opened once with
 * the engine and checked against its preprocessing description (preprocessing-description.ts) before
 * any image is read, so a model that cannot work is refused at open, naming the file and the mismatch,
 * not after minutes of banks and batches. Each CLIP batch's images are decoded again with the model's
 * own resize, crop and normalisation, run as one batch on the CLIP session's provider, and each output
 * row is L2-normalised like every other member's vector.
 */
import { loadBatches } from '../image/batch-loader.js';
import type { ExifMode } from '../image/decode.js';
import type { ImageInput } from '../image/image-input.js';
import { readPreprocessing, type ImagePreprocessing, type PreprocessingSource } from '../image/preprocessing-description.js';
import { sha256File } from '../models/sha256.js';
import { Session, tensor, type ExecutionProvider, type TensorInfo } from '../runtime/session.js';
import { EMBEDDING_DIM } from '../submission/submission-csv.js';
import { Img2PromptError } from '../util/errors.js';
import { normalizeRowInPlace } from '../util/rows.js';
import { onnxMemberName, type Member, type OnnxMemberName } from './members.js';

/** An ONNX member as the engine options give it: the name the user chose and the model file. */
export interface OnnxMemberSpec {
  name: string;
  file: string;
}

const shape = (dims: readonly (number | string)[]) => `[${dims.join(', ')}]`;

/** A fixed dimension of a signature (free dimensions are names, or -1). */
const fixed = (d: number | string | undefined): d is number => typeof d === 'number' && d >= 0;

/** The one tensor of `list` named `wanted`, or its only one; else an error naming the choices. */
function pick(list: readonly TensorInfo[], wanted: string | undefined, kind: 'input' | 'output', file: string, source: PreprocessingSource): TensorInfo {
  const names = list.map((t) => t.name).join(', ');
  if (wanted !== undefined) {
    const found = list.find((t) => t.name === wanted);
    if (!found) throw new Img2PromptError(file, `has no ${kind} '${wanted}', which ${source.where} names (${kind}s: ${names})`);
    return found;
  }
  if (list.length !== 1) throw new Img2PromptError(file, `has ${list.length} ${kind}s (${names}); name the image ${kind} in ${source.where} ("${kind}")`);
  return list[0]!;
}

/** Refuses an image input that cannot take [batch, 3, size, size] float32 pixels. */
function checkInput(info: TensorInfo, p: ImagePreprocessing, file: string, source: PreprocessingSource): void {
  const what = `input '${info.name}' ${shape(info.dims)}`;
  if (info.type !== 'float32') throw new Img2PromptError(file, `${what} takes ${info.type}; an ONNX member feeds float32 pixels`);
  if (info.dims.length !== 4) throw new Img2PromptError(file, `${what} is not an image batch [batch, 3, height, width]`);
  const [batch, channels, height, width] = info.dims;
  if (fixed(channels) && channels !== 3) {
    throw new Img2PromptError(file, `${what} takes ${channels} channels, but ${source.where} describes 3 (${p.channelOrder})`);
  }
  if ((fixed(height) && height !== p.size) || (fixed(width) && width !== p.size)) {
    throw new Img2PromptError(file, `${what} takes ${height}×${width} images, but ${source.where} says size ${p.size}`);
  }
  if (fixed(batch) && batch !== 1) throw new Img2PromptError(file, `${what} has a fixed batch of ${batch}; export it with a free batch dimension (or 1)`);
}

/** Refuses an output that is not one 384-d float32 vector per image. */
function checkOutput(info: TensorInfo, file: string): void {
  const what = `output '${info.name}' ${shape(info.dims)}`;
  if (info.type !== 'float32') throw new Img2PromptError(file, `${what} is ${info.type}; an ONNX member must give float32 vectors`);
  // A signature without a shape is checked on the first batch instead.
  if (info.dims.length === 0) return;
  if (info.dims.length !== 2) throw new Img2PromptError(file, `${what} is not [batch, ${EMBEDDING_DIM}]: an ONNX member gives one ${EMBEDDING_DIM}-d prompt vector per image`);
  const dim = info.dims[1];
  if (fixed(dim) && dim !== EMBEDDING_DIM) {
    throw new Img2PromptError(file, `${what} gives ${dim}-d vectors; an ONNX member must give ${EMBEDDING_DIM}-d ones (MiniLM's prompt space)`);
  }
}

/** Swaps the R and B planes of `n` images [n, 3, size, size] in place. */
function toBgr(pixels: Float32Array, n: number, size: number): void {
  const plane = size * size;
  for (let i = 0; i < n; i++) {
    const r = i * 3 * plane;
    const red = pixels.slice(r, r + plane);
    pixels.copyWithin(r, r + 2 * plane, r + 3 * plane);
    pixels.set(red, r + 2 * plane);
  }
}

/** An opened ONNX member: its session, its description and what the checkpoint fingerprint needs. */
export class OnnxMember {
  private session: Session | undefined;

  private constructor(
    readonly name: OnnxMemberName,
    readonly file: string,
    readonly sha256: string,
    readonly preprocessing: ImagePreprocessing,
    readonly source: PreprocessingSource,
    session: Session,
    private readonly input: TensorInfo,
    private readonly output: TensorInfo,
  ) {
    this.session = session;
  }

  /**
   * Opens `spec.file` on `providers` and checks it against its description.
   * @throws {Img2PromptError} naming the file: no description, or a model whose input or output does not fit it.
   */
  static async open(spec: OnnxMemberSpec, providers: ExecutionProvider[]): Promise<OnnxMember> {
    const { file } = spec;
    const { preprocessing, source } = await readPreprocessing(file);
    const sha256 = await sha256File(file);
    const session = await Session.open(file, { providers });
    try {
      const input = pick(session.inputs, preprocessing.input, 'input', file, source);
      checkInput(input, preprocessing, file, source);
      const output = pick(session.outputs, preprocessing.output, 'output', file, source);
      checkOutput(output, file);
      return new OnnxMember(onnxMemberName(spec.name), file, sha256, preprocessing, source, session, input, output);
    } catch (err) {
      session.close();
      throw err;
    }
  }

  /** What changes this member's vectors, for the checkpoint fingerprint. */
  fingerprint(): Record<string, unknown> {
    return { name: this.name, sha256: this.sha256, preprocessing: this.preprocessing };
  }

  /** The member function: the batch's images → their unit vectors (a zero row where the model's pixels could not be made). */
  member(): Member {
    return async (_embeds, rows, batch) => {
      const inputs = batch.inputs;
      if (!inputs || inputs.length !== rows) throw new Error(`internal: ONNX member ${this.name} got ${inputs?.length ?? 'no'} images for ${rows} rows`);
      return { vectors: await this.embed(inputs, batch.decode ?? { exif: 'apply', allowSvg: false }) };
    };
  }

  /** `inputs` → [inputs.length, 384] unit rows (zero where an image could not be read). */
  async embed(inputs: readonly ImageInput[], decode: { exif: ExifMode; allowSvg: boolean }): Promise<Float32Array> {
    const session = this.live();
    const p = this.preprocessing;
    const vectors = new Float32Array(inputs.length * EMBEDDING_DIM);
    if (inputs.length === 0) return vectors;
    const loader = loadBatches(inputs, {
      batchSize: inputs.length, size: p.size, mean: p.mean, std: p.std, processor: p.resize, exif: decode.exif, allowSvg: decode.allowSvg,
    });
    for await (const b of loader) {
      const n = b.loaded.length;
      if (n === 0) continue;
      if (p.channelOrder === 'bgr') toBgr(b.pixels, n, p.size);
      // A model exported with a batch of 1 takes its images one at a time.
      const step = this.input.dims[0] === 1 ? 1 : n;
      const per = 3 * p.size * p.size;
      for (let start = 0; start < n; start += step) {
        const count = Math.min(step, n - start);
        const feed = tensor('float32', b.pixels.subarray(start * per, (start + count) * per), [count, 3, p.size, p.size]);
        const out = (await session.run({ [this.input.name]: feed }, { outputNames: [this.output.name] }))[this.output.name]!;
        if (out.dims.length !== 2 || out.dims[0] !== count || out.dims[1] !== EMBEDDING_DIM) {
          throw new Img2PromptError(this.file, `output '${this.output.name}' came back as [${out.dims.join(', ')}] for ${count} images; an ONNX member must give [batch, ${EMBEDDING_DIM}]`);
        }
        const data = out.data as Float32Array;
        for (let i = 0; i < count; i++) {
          const row = b.loaded[start + i]!;
          vectors.set(data.subarray(i * EMBEDDING_DIM, (i + 1) * EMBEDDING_DIM), row * EMBEDDING_DIM);
          // A row without direction (zero or not finite) says nothing: the member has no vector for that image.
          if (!normalizeRowInPlace(vectors, row, EMBEDDING_DIM)) vectors.fill(0, row * EMBEDDING_DIM, (row + 1) * EMBEDDING_DIM);
        }
      }
    }
    return vectors;
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
  }

  private live(): Session {
    if (!this.session) throw new Img2PromptError(this.file, 'ONNX member is closed');
    return this.session;
  }
}
