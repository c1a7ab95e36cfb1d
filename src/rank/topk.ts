import { native, type NativeTopKOptions } from '../native/addon.js';
import { Img2PromptError } from '../util/errors.js';
import { readOptions } from '../util/options.js';
import type { Rows } from '../util/rows.js';

/**
 * Similarity top-k over a label bank, on the native kernel: every query is scored against every bank
 * row by dot product, block by block, keeping only the best k per query (the B x N score matrix is
 * never built). Rows and queries are expected to be L2-normalised, so a score is a cosine
 * similarity; nothing here normalises them.
 */

/** A row-major matrix shaped as a runtime `Tensor` is: dims [rows, dim], with its element type. */
export interface TensorMatrix {
  data: Float32Array | Uint16Array;
  dims: readonly number[];
  type?: string;
}

/**
 * A row-major matrix: the project's `Rows` (src/util/rows.ts), as the towers' output travels to
 * here, or a runtime `Tensor` of the same data as is. Bank data may be a Uint16Array of IEEE
 * float16 bits (see float16.ts); queries are always float32.
 */
export type Matrix = Rows<Float32Array | Uint16Array> | TensorMatrix;

/** [rows, dim] of a matrix, unchecked (topk's own checks name what is wrong). */
export function matrixShape(m: Matrix): [number, number] {
  return 'dims' in m ? [m.dims[0]!, m.dims[1]!] : [m.rows, m.dim];
}

function elementType(m: Matrix): string | undefined {
  return 'type' in m ? m.type : undefined;
}

export interface TopKOptions {
  /** Worker threads; 0 or unset: one per hardware thread (small jobs use fewer). */
  threads?: number;
  /** Names the bank in error messages (e.g. its file); default 'topk'. */
  label?: string;
  /** false forces the portable scalar kernel (for testing and comparisons). */
  simd?: boolean;
  /**
   * Testing knob: exactly this many worker threads (1 to 1024) whatever the job size, block b dealt to
   * worker b mod n, so a test can place rows in different workers' heaps. Not with `threads`.
   * @internal
   */
  forceThreads?: number;
  /**
   * Testing knob: bank rows per block (1 to 2^24; default about 128 KiB of bank), so a small bank spans many blocks.
   * @internal
   */
  blockRows?: number;
}

export interface TopKResult {
  /** Number of queries. */
  rows: number;
  /** Results per query: min(k, bank rows). */
  k: number;
  /** [rows x k] bank row indices, best first; equal scores list the lower index first. */
  indices: Int32Array;
  /** [rows x k] the matching scores. */
  scores: Float32Array;
  /** OS threads that ran the native kernel (absent from other engines and when there was nothing to do). */
  threads?: number;
}

interface Checked {
  queries: Float32Array;
  bank: Float32Array | Uint16Array;
  rows: number;
  bankRows: number;
  dim: number;
}

function shapeOf(m: Matrix, what: string, label: string): { rows: number; dim: number } {
  const data = m.data;
  let dims: readonly number[];
  if ('dims' in m) {
    dims = m.dims;
    if (!Array.isArray(dims) && !ArrayBuffer.isView(dims)) throw new Img2PromptError(label, `${what}: dims must be [rows, dim]`);
  } else {
    dims = [m.rows, m.dim];
  }
  if (dims.length !== 2 || !dims.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Img2PromptError(label, `${what}: dims must be two non-negative integers [rows, dim], got [${dims.join(', ')}]`);
  }
  const [rows, dim] = dims as [number, number];
  if (dim === 0) throw new Img2PromptError(label, `${what}: dimension must be at least 1`);
  if (data.length % dim !== 0) {
    throw new Img2PromptError(label, `${what}: ${data.length} values are not a multiple of the dimension ${dim}`);
  }
  if (rows * dim !== data.length) {
    throw new Img2PromptError(label, `${what}: dims [${rows}, ${dim}] need ${rows * dim} values, the array has ${data.length}`);
  }
  return { rows, dim };
}

function checkFloat32Queries(queries: Matrix, label: string): asserts queries is Matrix & { data: Float32Array } {
  const type = queries?.data instanceof Float32Array ? elementType(queries) : undefined;
  if (!(queries?.data instanceof Float32Array) || (type !== undefined && type !== 'float32')) {
    throw new Img2PromptError(label, 'queries must be float32 (a Float32Array)');
  }
}

function check(queries: Matrix, bank: Matrix, options: TopKOptions): Checked {
  const label = options.label ?? 'topk';
  checkFloat32Queries(queries, label);
  const bankIsHalf = bank?.data instanceof Uint16Array;
  if (!(bank?.data instanceof Float32Array || bankIsHalf)) {
    throw new Img2PromptError(label, 'bank must be a Float32Array, or a Uint16Array of float16 bits');
  }
  const bankType = elementType(bank);
  if (bankType !== undefined && bankType !== (bankIsHalf ? 'float16' : 'float32')) {
    throw new Img2PromptError(label, `bank of type '${bankType}' does not match its ${bank.data.constructor.name}`);
  }
  const q = shapeOf(queries, 'queries', label);
  const b = shapeOf(bank, 'bank', label);
  if (q.dim !== b.dim) throw new Img2PromptError(label, `queries have dimension ${q.dim}, the bank has ${b.dim}`);
  if (b.rows > 0x7fffffff) throw new Img2PromptError(label, `bank has ${b.rows} rows, more than an Int32Array can index`);
  checkFinite(queries.data, q.dim, label);
  return { queries: queries.data, bank: bank.data, rows: q.rows, bankRows: b.rows, dim: q.dim };
}

/** A NaN or an infinity in a query would rank the bank arbitrarily: name the query instead. */
function checkFinite(data: Float32Array, dim: number, label: string): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw new Img2PromptError(label, `query ${Math.floor(i / dim)} contains ${Number.isNaN(data[i]) ? 'NaN' : 'Infinity'}`);
    }
  }
}

/**
 * The checks topk() makes on queries and k, for other engines over a bank of dimension `dim` (the
 * ONNX ranker): float32, [rows, dim], every value finite, k a non-negative integer. Returns the rows.
 */
export function checkQueries(queries: Matrix, k: number, dim: number, label = 'topk'): number {
  checkK(k, { label });
  checkFloat32Queries(queries, label);
  const q = shapeOf(queries, 'queries', label);
  if (q.dim !== dim) throw new Img2PromptError(label, `queries have dimension ${q.dim}, the bank has ${dim}`);
  checkFinite(queries.data, q.dim, label);
  return q.rows;
}

/** `options` checked, unknown keys refused; `call` names the function in messages ('topk()'). */
function readTopKOptions(options: TopKOptions, call: string): TopKOptions {
  const o = readOptions(options, call);
  const checked: TopKOptions = {
    label: o.string('label'),
    threads: o.int('threads', { min: 0, max: 1024 }),
    simd: o.bool('simd'),
    forceThreads: o.int('forceThreads', { min: 1, max: 1024 }),
    blockRows: o.int('blockRows', { min: 1, max: 2 ** 24 }),
  };
  if (checked.threads !== undefined) o.refuse(['forceThreads'], 'with threads');
  o.done();
  return checked;
}

function nativeOptions(options: TopKOptions): NativeTopKOptions {
  const { threads, simd, forceThreads, blockRows } = options;
  return { threads, simd, forceThreads, blockRows };
}

function checkK(k: number, options: TopKOptions): void {
  if (typeof k !== 'number' || !Number.isInteger(k) || k < 0) {
    throw new Img2PromptError(options.label ?? 'topk', `k must be a non-negative integer, got ${k}`);
  }
}

async function select(queries: Matrix, bank: Matrix, k: number, least: boolean, options: TopKOptions): Promise<TopKResult> {
  options = readTopKOptions(options, least ? 'bottomk()' : 'topk()');
  checkK(k, options);
  const c = check(queries, bank, options);
  const out = await native().topk(c.queries, c.dim, c.bank, c.dim, k, { ...nativeOptions(options), least });
  const result: TopKResult = { rows: c.rows, k: out.k, indices: out.indices, scores: out.scores };
  if (out.threads > 0) result.threads = out.threads;
  return result;
}

/**
 * The k bank rows most similar to each query (k > bank rows gives all of them), best first, ties to
 * the lower index. Runs off the JS thread and reads both arrays in place: don't modify them until
 * the promise settles.
 */
export function topk(queries: Matrix, bank: Matrix, k: number, options: TopKOptions = {}): Promise<TopKResult> {
  return select(queries, bank, k, false, options);
}

/** The k least similar bank rows per query, lowest score first, ties to the lower index. */
export function bottomk(queries: Matrix, bank: Matrix, k: number, options: TopKOptions = {}): Promise<TopKResult> {
  return select(queries, bank, k, true, options);
}

/** Every query-row score, [queries x bank rows] row-major; meant for small banks. */
export async function scoresAll(queries: Matrix, bank: Matrix, options: TopKOptions = {}): Promise<{ data: Float32Array; dims: [number, number] }> {
  options = readTopKOptions(options, 'scoresAll()');
  const c = check(queries, bank, options);
  const data = await native().scoresAll(c.queries, c.dim, c.bank, c.dim, nativeOptions(options));
  return { data, dims: [c.rows, c.bankRows] };
}

/** The indices and scores of query `row` within a result (views, not copies). */
export function resultRow(result: TopKResult, row: number): { indices: Int32Array; scores: Float32Array } {
  const start = row * result.k;
  return { indices: result.indices.subarray(start, start + result.k), scores: result.scores.subarray(start, start + result.k) };
}

/** Which kernel the native side runs on this CPU ('avx2-fma-f16c' or 'scalar'). */
export function topkKernel(): string {
  return native().topkKernel();
}
