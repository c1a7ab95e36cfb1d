// `img2prompt/runtime`: the low-level layer under the front doors of `img2prompt` — ONNX Runtime
// sessions over the native addon (inputs borrowed, outputs not copied, runs off the JS thread) and the
// native similarity top-k over an embedding bank.
export { Session, tensor, availableProviders, ortVersion } from './session.js';
export type { Tensor, TensorInfo, TensorType, TensorData, SessionOptions, RunOptions, ExecutionProvider } from './session.js';
export { topk, bottomk, scoresAll, resultRow, topkKernel } from '../rank/topk.js';
export type { Matrix, TensorMatrix, TopKOptions, TopKResult } from '../rank/topk.js';
export type { Rows } from '../util/rows.js';
