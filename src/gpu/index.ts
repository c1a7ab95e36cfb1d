// CUDA support: installing ORT's CUDA provider from PyPI and telling whether CUDA can run here.
export { cudaReadiness, CUDA_PROVIDER_LIB, SHARED_PROVIDER_LIB } from './readiness.js';
export type { CudaReadiness, LibraryCheck, ReadinessOptions } from './readiness.js';
export { installCudaProvider } from './install.js';
export type { GpuInstallOptions, GpuInstallResult, InstalledLibrary } from './install.js';
