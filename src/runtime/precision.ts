import type { ExecutionProvider } from './session.js';
import { PRECISION_VARIABLE, precisionVariable } from '../config.js';

/**
 * The float type of the towers' weights and activations. 'fp16' halves the memory traffic and runs
 * on the GPU's tensor cores; LayerNorm statistics, softmax, the final projection and normalisation
 * stay in float32 (see models/graph/onnx-builder.ts), and inputs and outputs are float32 either way.
 */
export type Precision = 'fp32' | 'fp16';

export const PRECISIONS: readonly Precision[] = ['fp32', 'fp16'];

export function parsePrecision(value: string, what = '--precision'): Precision {
  if (value === 'fp32' || value === 'fp16') return value;
  throw new RangeError(`${what} must be fp32 or fp16, got '${value}'`);
}

/**
 * The precision asked for: `explicit`, else IMG2PROMPT_PRECISION (the CLI's --precision sets it), else
 * undefined, meaning "choose by provider" (see precisionFor).
 */
export function requestedPrecision(explicit?: Precision): Precision | undefined {
  if (explicit !== undefined) return parsePrecision(explicit, 'precision');
  const env = precisionVariable();
  return env ? parsePrecision(env, PRECISION_VARIABLE) : undefined;
}

/**
 * fp16 when the session will be tried on CUDA first, fp32 on the CPU: ORT's CPU provider has few
 * fp16 kernels and wraps the rest in casts to float32, which makes fp16 slower there, not faster.
 */
export function precisionFor(providers: readonly ExecutionProvider[]): Precision {
  return providers[0] === 'cuda' ? 'fp16' : 'fp32';
}
