import { native } from '../native/addon.js';
import { Img2PromptError } from '../util/errors.js';

/**
 * Similarity top-k over a label bank, on the native kernel: every query is scored against every bank
 * row by dot product, block by block, keeping only the best k per query (the B x N score matrix is
 * never built). Rows and queries are expected to be L2-normalised, so a score is a cosine
 * similarity; nothing here normalises them.
 */

/**
 * A row-major matrix, dims [rows, dim]. Bank data may be a Uint16Array of IEEE float16 bits (see
 * float16.ts); queries are always float32. A runtime `Tensor` of those types fits as is.
 */
export interface Matrix {
  data: Float32Array | Uint16Array;
  dims: readonly number[];
  type?: string;
}

export interface TopKOptions {
  /** Worker threads; 0 or unset: one per hardware thread (small jobs use fewer). */
  threads?: number;
  /** Names the bank in error messages (e.g. its file); default 'topk'. */
  label?: string;
  /** false forces the portable scalar kernel (for testing and comparisons). */
  simd?: boolean;
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
}

interface TopKAddon {
  topk(queries: Float32Array, queryDim: number, bank: Float32Array | Uint16Array, bankDim: number, k: number,
    options: { threads?: number; least?: boolean; simd?: boolean }): Promise<{ indices: Int32Array; scores: Float32Array; k: number }>;
  scoresAll(queries: Float32Array, queryDim: number, bank: Float32Array | Uint16Array, bankDim: number,
    options: { threads?: number; simd?: boolean }): Promise<Float32Array>;
  topkKernel(): string;
}

function addon(): TopKAddon {
  return native() as unknown as TopKAddon;
}

interface Checked {
  queries: Float32Array;
  bank: Float32Array | Uint16Array;
  rows: number;
  bankRows: number;
  dim: number;
}

function shapeOf(m: Matrix, what: string, label: string): { rows: number; dim: number } {
  const { dims, data } = m;
  if (!Array.isArray(dims) && !ArrayBuffer.isView(dims)) throw new Img2PromptError(label, `${what}: dims must be [rows, dim]`);
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

function check(queries: Matrix, bank: Matrix, options: TopKOptions): Checked {
  const label = options.label ?? 'topk';
  if (!(queries?.data instanceof Float32Array) || (queries.type !== undefined && queries.type !== 'float32')) {
    throw new Img2PromptError(label, 'queries must be float32 (a Float32Array)');
  }
  const bankIsHalf = bank?.data instanceof Uint16Array;
  if (!(bank?.data instanceof Float32Array || bankIsHalf)) {
    throw new Img2PromptError(label, 'bank must be a Float32Array, or a Uint16Array of float16 bits');
  }
  if (bank.type !== undefined && bank.type !== (bankIsHalf ? 'float16' : 'float32')) {
    throw new Img2PromptError(label, `bank of type '${bank.type}' does not match its ${bank.data.constructor.name}`);
  }
  const q = shapeOf(queries, 'queries', label);
  const b = shapeOf(bank, 'bank', label);
  if (q.dim !== b.dim) throw new Img2PromptError(label, `queries have dimension ${q.dim}, the bank has ${b.dim}`);
  if (b.rows > 0x7fffffff) throw new Img2PromptError(label, `bank has ${b.rows} rows, more than an Int32Array can index`);
  const data = queries.data;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw new Img2PromptError(label, `query ${Math.floor(i / q.dim)} contains ${Number.isNaN(data[i]) ? 'NaN' : 'Infinity'}`);
    }
  }
  const { threads } = options;
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 0 && threads <= 1024)) {
    throw new Img2PromptError(label, `threads must be an integer from 0 to 1024, got ${threads}`);
  }
  return { queries: data, bank: bank.data, rows: q.rows, bankRows: b.rows, dim: q.dim };
}

function checkK(k: number, options: TopKOptions): void {
  if (typeof k !== 'number' || !Number.isInteger(k) || k < 0) {
    throw new Img2PromptError(options.label ?? 'topk', `k must be a non-negative integer, got ${k}`);
  }
}

async function select(queries: Matrix, bank: Matrix, k: number, least: boolean, options: TopKOptions): Promise<TopKResult> {
  checkK(k, options);
  const c = check(queries, bank, options);
  const out = await addon().topk(c.queries, c.dim, c.bank, c.dim, k, { threads: options.threads, least, simd: options.simd });
  return { rows: c.rows, k: out.k, indices: out.indices, scores: out.scores };
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
  const c = check(queries, bank, options);
  const data = await addon().scoresAll(c.queries, c.dim, c.bank, c.dim, { threads: options.threads, simd: options.simd });
  return { data, dims: [c.rows, c.bankRows] };
}

/** The indices and scores of query `row` within a result (views, not copies). */
export function resultRow(result: TopKResult, row: number): { indices: Int32Array; scores: Float32Array } {
  const start = row * result.k;
  return { indices: result.indices.subarray(start, start + result.k), scores: result.scores.subarray(start, start + result.k) };
}

/** Which kernel the native side runs on this CPU ('avx2-fma-f16c' or 'scalar'). */
export function topkKernel(): string {
  return addon().topkKernel();
}
