import { native } from '../native/addon.js';
import { cudaReadiness } from '../gpu/readiness.js';

/**
 * Whether sessions can run on CUDA in this process, and the reason in one line when they cannot. ORT
 * lists the providers it was compiled with (onnxruntime-node's build lists CUDA and TensorRT even on a
 * machine without a GPU), which says nothing about this machine; cudaReadiness (src/gpu/readiness.ts)
 * does: the provider library installed, every library it needs resolvable, an NVIDIA device present.
 */

export interface CudaStatus {
  /** ORT was built with the CUDA provider (it is in availableProviders()). */
  compiledIn: boolean;
  usable: boolean;
  /** Why not, when not usable: the first problem, and how many more there are. */
  reason?: string;
}

export function cudaStatus(): CudaStatus {
  const compiledIn = native().availableProviders().includes('CUDAExecutionProvider');
  if (!compiledIn) return { compiledIn, usable: false, reason: 'this ONNX Runtime build has no CUDA provider' };
  const { usable, problems } = cudaReadiness();
  if (usable) return { compiledIn, usable };
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more: \`img2prompt gpu install --check\`)` : '';
  return { compiledIn, usable, reason: `${problems[0]}${more}` };
}

export interface ProviderReport {
  /** ORT's name, e.g. 'CUDAExecutionProvider'. */
  name: string;
  usable: boolean;
  reason?: string;
}

/** Every provider ORT was compiled with, and whether img2prompt can run on it here. */
export function providerReport(): ProviderReport[] {
  return native()
    .availableProviders()
    .map((name) => {
      if (name === 'CPUExecutionProvider') return { name, usable: true };
      if (name === 'CUDAExecutionProvider') {
        const { usable, reason } = cudaStatus();
        return usable ? { name, usable } : { name, usable, reason };
      }
      return { name, usable: false, reason: 'img2prompt runs on CUDA or the CPU only' };
    });
}
