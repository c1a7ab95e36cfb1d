import { GraphBuilder } from './onnx-builder.js';

/**
 * Cosine top-k against a fixed label bank as an ONNX graph: scores = queries · bankᵀ (Gemm), then TopK.
 * The bank is an initializer, so an execution provider such as CUDA uploads it once at load time and
 * each call only moves the queries and the k results. Inputs: `queries` float32 [batch, dim], `k`
 * int64 [1]; outputs: `scores` float32 [batch, k], `indices` int64 [batch, k].
 */
export function buildBankTopKGraph(bank: Float32Array, rows: number, dim: number): Uint8Array {
  if (bank.length !== rows * dim) throw new RangeError(`bank holds ${bank.length} values, expected ${rows} x ${dim}`);
  const g = new GraphBuilder('bank_topk', { docString: `cosine top-k over a ${rows} x ${dim} bank` });
  const q = g.input('queries', 'float32', ['batch', dim]);
  const k = g.input('k', 'int64', [1]);
  const b = g.initializer('bank', bank, [rows, dim]);
  const scores = g.op('Gemm', [q, b], { transB: 1 }, 'scores_all');
  const [values, indices] = g.node('TopK', [scores, k], { axis: -1, largest: 1, sorted: 1 }, { outputs: 2, name: 'topk' });
  g.output(values!, 'scores', 'float32', ['batch', 'k']);
  g.output(indices!, 'indices', 'int64', ['batch', 'k']);
  return g.toBytes();
}
