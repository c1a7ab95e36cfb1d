import { GraphBuilder } from './onnx-builder.js';

/**
 * Cosine top-k against a label bank as an ONNX graph: scores = queries · bankᵀ (Gemm), then TopK. The
 * bank is an input of fixed shape, meant to be bound once through an IoBinding (runtime/io-binding.ts):
 * ORT copies a bound input to its device when it is bound, so on CUDA the bank is uploaded once and each
 * call moves only the queries and the k results (the graph stays a few hundred bytes, whatever the
 * bank's size). Inputs: `bank` float32 [rows, dim], `queries` float32 [batch, dim], `k` int64 [1];
 * outputs: `scores` float32 [batch, k], `indices` int64 [batch, k].
 */
export function buildBankTopKGraph(rows: number, dim: number): Uint8Array {
  const g = new GraphBuilder('bank_topk', { docString: `cosine top-k over a bound ${rows} x ${dim} bank` });
  const b = g.input('bank', 'float32', [rows, dim]);
  const q = g.input('queries', 'float32', ['batch', dim]);
  const k = g.input('k', 'int64', [1]);
  const scores = g.op('Gemm', [q, b], { transB: 1 }, 'scores_all');
  const [values, indices] = g.node('TopK', [scores, k], { axis: -1, largest: 1, sorted: 1 }, { outputs: 2, name: 'topk' });
  g.output(values!, 'scores', 'float32', ['batch', 'k']);
  g.output(indices!, 'indices', 'int64', ['batch', 'k']);
  return g.toBytes();
}
