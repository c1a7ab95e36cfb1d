import { Img2PromptError } from '../util/errors.js';
import { writeAtomically, type AtomicFile } from '../util/atomic-write.js';
import { imgIdProblem } from './img-id.js';
import { forEachLine } from './line-reader.js';

/** Length of an all-MiniLM-L6-v2 embedding: each image has rows `<imgId>_0` .. `<imgId>_383`. */
export const EMBEDDING_DIM = 384;
export const SUBMISSION_HEADER = 'imgId_eId,val';

/** Ids in file order and their vectors, row-major `[ids.length, EMBEDDING_DIM]`. */
export interface Submission {
  ids: string[];
  vectors: Float32Array;
}

/**
 * Format a float32 so it parses back to the identical float32. 9 significant digits always suffice; fewer
 * usually do, so the shortest of 6..9 that reads back is used (as in Kaggle's own sample_submission.csv),
 * which keeps a 6-million-row file about 10% smaller. Going through Number drops trailing zeros.
 */
export function formatValue(v: number): string {
  const f = Math.fround(v);
  for (let digits = 6; digits < 9; digits++) {
    const text = f.toPrecision(digits);
    if (Math.fround(Number(text)) === f) return String(Number(text));
  }
  return String(Number(f.toPrecision(9)));
}

/**
 * Write a Kaggle submission (`imgId_eId,val`, 384 rows per image, images in the order given) atomically:
 * on any error no output and no temp file remain. Refuses bad ids, a wrong vector length and NaN/Inf
 * before anything is written. `vectors` holds the images' 384-d vectors one after the other.
 *
 * @example
 * ```ts
 * import { embedPrompts, openMiniLMEmbedder, readPromptsCsv, writeSubmission } from 'img2prompt';
 *
 * const rows = await readPromptsCsv('prompts.csv');               // imgId,prompt
 * const vectors = await embedPrompts(rows, await openMiniLMEmbedder());
 * await writeSubmission('submission.csv', rows.map((r) => r.imgId), vectors);
 * ```
 * @throws {Img2PromptError} naming `file` for an id Kaggle refuses or a duplicate, a vector count that
 *   is not 384 per id, a NaN or an infinity, or an output folder that cannot be written.
 */
export async function writeSubmission(file: string, ids: readonly string[], vectors: Float32Array): Promise<void> {
  checkSubmissionInput(file, ids, vectors);
  await writeAtomically(file, (out) => writeSubmissionRows(out, ids, vectors));
}

/** The rows of a checked submission, into an open output file. */
export async function writeSubmissionRows(out: AtomicFile, ids: readonly string[], vectors: Float32Array): Promise<void> {
  // A few hundred images per write keeps memory flat for test sets of any size.
  const imagesPerChunk = 256;
  let chunk = SUBMISSION_HEADER + '\n';
  for (let i = 0; i < ids.length; i++) {
    chunk += submissionLines(ids[i], vectors, i * EMBEDDING_DIM);
    if ((i + 1) % imagesPerChunk === 0) {
      await out.write(chunk);
      chunk = '';
    }
  }
  if (chunk !== '') await out.write(chunk);
}

/** The 384 rows (newline included) of image `id`, whose vector starts at `vectors[base]`. */
export function submissionLines(id: string, vectors: Float32Array, base = 0): string {
  const lines = new Array<string>(EMBEDDING_DIM);
  for (let e = 0; e < EMBEDDING_DIM; e++) lines[e] = `${id}_${e},${formatValue(vectors[base + e])}\n`;
  return lines.join('');
}

/** Throws, naming `file`, what would make the submission invalid before a byte of it is written. */
export function checkSubmissionInput(file: string, ids: readonly string[], vectors: Float32Array): void {
  const refuse = (reason: string): never => {
    throw new Img2PromptError(file, `cannot write submission: ${reason}`);
  };
  if (ids.length === 0) refuse('no images');
  if (vectors.length !== ids.length * EMBEDDING_DIM) {
    refuse(`expected ${ids.length} x ${EMBEDDING_DIM} = ${ids.length * EMBEDDING_DIM} values for ${ids.length} images, got ${vectors.length}`);
  }
  const seen = new Set<string>();
  for (const id of ids) {
    const problem = imgIdProblem(id);
    if (problem) refuse(problem);
    if (seen.has(id)) refuse(`duplicate imgId "${id}"`);
    seen.add(id);
  }
  for (let i = 0; i < vectors.length; i++) {
    if (!Number.isFinite(vectors[i])) {
      const image = Math.floor(i / EMBEDDING_DIM);
      refuse(`value ${vectors[i]} for ${ids[image]}_${i % EMBEDDING_DIM} is not finite`);
    }
  }
}

function l2Norm(v: Float32Array): number {
  let sum = 0;
  for (let e = 0; e < v.length; e++) sum += v[e]! ** 2;
  return Math.sqrt(sum);
}

/** Called with each problem found; the line is absent for whole-file problems (e.g. an empty file). */
export type ProblemSink = (line: number | undefined, reason: string) => void;

const EID = /^(0|[1-9][0-9]*)$/;
/** A value as the submission format writes it (a plain decimal, an optional exponent). */
export const SUBMISSION_VALUE = /^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/;

interface ImageRows {
  id: string;
  index: number;
  firstLine: number;
  lastLine: number;
  seen: Uint8Array;
  count: number;
  lastEId: number;
  outOfOrderReported: boolean;
}

/** `seen` of an image whose block closed complete: every row is there, so any row that turns up again is a duplicate. */
const ALL_SEEN = new Uint8Array(EMBEDDING_DIM).fill(1);

/**
 * Line-by-line checker of the canonical submission layout: header `imgId_eId,val`, then per image one
 * contiguous block of rows `<imgId>_0` .. `<imgId>_383` in eId order (the layout of Kaggle's
 * sample_submission.csv and of `writeSubmission`). Every problem goes to `report`; in strict mode `report` is
 * expected to throw, in lenient mode (`validate`) scanning continues and later problems are found too.
 *
 * With `keepVectors: false` (validating, not reading) an image whose block closes complete keeps only
 * its vector's norm and the line its block ended on: scanning millions of images then holds a few dozen
 * bytes per image instead of its 384 values and row flags.
 */
export class SubmissionScanner {
  readonly ids: string[] = [];
  /** Number of data rows seen (well-formed or not). */
  rows = 0;
  private readonly blocks: (Float32Array | null)[] = [];
  /** L2 norm of each image's vector, by image index, once its block closed complete (keepVectors: false). */
  private readonly norms: number[] = [];
  /** An image in progress or incomplete, or (a number) the last line of a block that closed complete. */
  private readonly images = new Map<string, ImageRows | number>();
  private current: ImageRows | undefined;
  private sawHeader = false;
  private headerBad = false;

  constructor(
    private readonly report: ProblemSink,
    private readonly strict: boolean,
    private readonly options: { keepVectors?: boolean } = {},
  ) {}

  feed(text: string, line: number): void {
    if (this.headerBad) return;
    if (!this.sawHeader) {
      if (text === '') return; // blank lines before the header, as pandas allows
      this.sawHeader = true;
      this.checkHeader(text, line);
      return;
    }
    if (text === '') return;
    this.rows++;
    this.feedRow(text, line);
  }

  /** Whole-file checks once every line has been fed. */
  finish(): void {
    if (this.headerBad) return;
    if (!this.sawHeader) {
      this.report(undefined, `empty file: expected a header line "${SUBMISSION_HEADER}" and ${EMBEDDING_DIM} rows per image`);
      return;
    }
    if (this.rows === 0) {
      this.report(undefined, 'no rows after the header');
      return;
    }
    if (this.current) this.close(this.current);
    for (const image of this.images.values()) if (typeof image !== 'number') this.checkComplete(image);
  }

  /** Ids (first-appearance order) and their vectors; rows never seen are 0. */
  result(): Submission {
    const vectors = new Float32Array(this.ids.length * EMBEDDING_DIM);
    if (this.options.keepVectors === false) throw new Error('internal: a scanner that keeps no vectors has no result');
    this.blocks.forEach((block, i) => vectors.set(block!, i * EMBEDDING_DIM));
    return { ids: this.ids, vectors };
  }

  /** Ids of images that have all 384 rows, each exactly once. */
  completeIds(): string[] {
    return this.ids.filter((id) => {
      const image = this.images.get(id)!;
      return typeof image === 'number' || image.count === EMBEDDING_DIM;
    });
  }

  /** The L2 norm of the vector of image `index` (in `ids`), if its block closed complete. */
  normOf(index: number): number | undefined {
    if (this.options.keepVectors !== false) {
      const block = this.blocks[index];
      return block ? l2Norm(block) : undefined;
    }
    return this.norms[index];
  }

  private checkHeader(text: string, line: number): void {
    if (text === SUBMISSION_HEADER) return;
    this.headerBad = true;
    const looksLikePrompts = /^"?imgId"?,/.test(text) && /(^|,)"?prompt"?(,|$)/.test(text);
    const hint = looksLikePrompts
      ? ' (this looks like a prompts CSV; run `img2prompt embed` to turn it into a submission)'
      : '';
    this.report(line, `bad header ${JSON.stringify(text.slice(0, 80))}: expected "${SUBMISSION_HEADER}"${hint}`);
  }

  private feedRow(text: string, line: number): void {
    const comma = text.indexOf(',');
    if (comma < 0 || text.indexOf(',', comma + 1) >= 0) {
      const fields = text.split(',').length;
      this.report(line, `expected 2 fields "<imgId>_<eId>,<value>", got ${fields}`);
      return;
    }
    const key = text.slice(0, comma);
    const valueText = text.slice(comma + 1);
    const underscore = key.lastIndexOf('_');
    if (underscore <= 0) {
      this.report(line, `bad key ${JSON.stringify(key)}: expected "<imgId>_<eId>"`);
      return;
    }
    const id = key.slice(0, underscore);
    const eIdText = key.slice(underscore + 1);
    const idProblem = imgIdProblem(id);
    if (idProblem) {
      this.report(line, idProblem);
      return;
    }
    if (!EID.test(eIdText) || Number(eIdText) >= EMBEDDING_DIM) {
      this.report(line, `bad eId ${JSON.stringify(eIdText)} in "${key}": expected an integer 0..${EMBEDDING_DIM - 1}`);
      return;
    }
    const eId = Number(eIdText);
    if (!SUBMISSION_VALUE.test(valueText)) {
      this.report(line, `value ${JSON.stringify(valueText.slice(0, 40))} of ${key} is not a finite number`);
      return;
    }
    const value = Math.fround(Number(valueText));
    if (!Number.isFinite(value)) {
      this.report(line, `value ${valueText} of ${key} is out of float32 range`);
      return;
    }
    this.store(this.imageFor(id, line), eId, value, line);
  }

  private imageFor(id: string, line: number): ImageRows {
    if (this.current?.id === id) return this.current;
    if (this.current && this.strict) this.checkComplete(this.current);
    if (this.current) this.close(this.current);
    const known = this.images.get(id);
    let image: ImageRows;
    if (known !== undefined) {
      const lastLine = typeof known === 'number' ? known : known.lastLine;
      this.report(line, `rows of image "${id}" are not contiguous: its block ended on line ${lastLine} and it appears again here`);
      // A block that closed complete comes back with every row seen: what follows are duplicates.
      image = typeof known === 'number'
        ? { id, index: this.ids.indexOf(id), firstLine: lastLine, lastLine, seen: ALL_SEEN, count: EMBEDDING_DIM, lastEId: EMBEDDING_DIM - 1, outOfOrderReported: false }
        : known;
      this.images.set(id, image);
    } else {
      image = {
        id,
        index: this.ids.length,
        firstLine: line,
        lastLine: line,
        seen: new Uint8Array(EMBEDDING_DIM),
        count: 0,
        lastEId: -1,
        outOfOrderReported: false,
      };
      this.images.set(id, image);
      this.ids.push(id);
      this.blocks.push(new Float32Array(EMBEDDING_DIM));
    }
    this.current = image;
    return image;
  }

  private store(image: ImageRows, eId: number, value: number, line: number): void {
    image.lastLine = line;
    if (image.seen[eId]) {
      this.report(line, `duplicate row ${image.id}_${eId}`);
      return;
    }
    const expected = image.lastEId + 1;
    if (eId > expected && this.strict) {
      // Leniently, a skipped row is reported later: as out of order if it turns up, else as missing.
      this.report(line, `missing row ${image.id}_${expected} (the next row is ${image.id}_${eId})`);
    } else if (eId < expected && !image.outOfOrderReported) {
      // Once per image: a file sorted as text (_0, _1, _10, _100, ...) would otherwise give ~380 problems per image.
      image.outOfOrderReported = true;
      this.report(line, `rows of image "${image.id}" are out of order: ${image.id}_${eId} comes after ${image.id}_${image.lastEId}`);
    }
    image.seen[eId] = 1;
    image.count++;
    image.lastEId = eId;
    this.blocks[image.index]![eId] = value;
  }

  /** The block of `image` ends; without keepVectors a complete one is reduced to its norm and last line. */
  private close(image: ImageRows): void {
    if (this.options.keepVectors !== false || image.count !== EMBEDDING_DIM || image.seen === ALL_SEEN) return;
    this.norms[image.index] = l2Norm(this.blocks[image.index]!);
    this.blocks[image.index] = null;
    this.images.set(image.id, image.lastLine);
  }

  private checkComplete(image: ImageRows): void {
    if (image.count === EMBEDDING_DIM) return;
    const missing: number[] = [];
    for (let e = 0; e < EMBEDDING_DIM; e++) if (!image.seen[e]) missing.push(e);
    const listed = missing.slice(0, 8).join(', ') + (missing.length > 8 ? ', ...' : '');
    this.report(
      image.lastLine,
      `image "${image.id}" (from line ${image.firstLine}) has ${image.count} of ${EMBEDDING_DIM} rows; missing eId ${listed}`,
    );
  }
}

/**
 * Read a submission strictly: the first problem (bad header, malformed row, non-numeric value, missing,
 * duplicate or out-of-order rows, wrong row count per image) throws naming the file and line.
 */
export async function readSubmission(file: string): Promise<Submission> {
  const fail: ProblemSink = (line, reason) => {
    throw new Img2PromptError(file, line === undefined ? reason : `line ${line}: ${reason}`, { code: 'FILE_INVALID' });
  };
  const scanner = new SubmissionScanner(fail, true);
  await forEachLine(file, (text, line) => scanner.feed(text, line));
  scanner.finish();
  return scanner.result();
}
