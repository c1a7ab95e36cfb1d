/**
 * The CUDA libraries ORT's CUDA provider needs and where a user gets each one: PyPI's NVIDIA wheels
 * (which put them in `site-packages/<pipDir>`), or the driver for libcuda. The soname's major number
 * is the package's major version (libcublas.so.13 ↔ nvidia-cublas 13.x, libcufft.so.12 ↔ nvidia-cufft
 * 12.x), so a requirement pinned to it installs a library with exactly that name.
 */

export interface LibrarySource {
  /** PyPI package, or undefined for what PyPI does not ship (the driver). */
  pypi: string | undefined;
  /** Folder of the package's libraries inside site-packages. */
  pipDir?: string;
  /** What the library is, for people. */
  what: string;
}

interface SourceRule {
  prefix: string;
  source: (cudaMajor: number) => LibrarySource;
}

const cu = (major: number) => `nvidia/cu${major}/lib`;

/** Longest prefix first: libcublasLt must not be taken for libcublas. */
const RULES: SourceRule[] = [
  { prefix: 'libcublasLt.so', source: (m) => ({ pypi: 'nvidia-cublas', pipDir: cu(m), what: 'cuBLASLt' }) },
  { prefix: 'libcublas.so', source: (m) => ({ pypi: 'nvidia-cublas', pipDir: cu(m), what: 'cuBLAS' }) },
  { prefix: 'libcudnn', source: (m) => ({ pypi: `nvidia-cudnn-cu${m}`, pipDir: 'nvidia/cudnn/lib', what: 'cuDNN' }) },
  { prefix: 'libcufft.so', source: (m) => ({ pypi: 'nvidia-cufft', pipDir: cu(m), what: 'cuFFT' }) },
  { prefix: 'libcurand.so', source: (m) => ({ pypi: 'nvidia-curand', pipDir: cu(m), what: 'cuRAND' }) },
  { prefix: 'libcudart.so', source: (m) => ({ pypi: 'nvidia-cuda-runtime', pipDir: cu(m), what: 'the CUDA runtime' }) },
  { prefix: 'libnvrtc', source: (m) => ({ pypi: 'nvidia-cuda-nvrtc', pipDir: cu(m), what: 'NVRTC' }) },
  { prefix: 'libnvJitLink.so', source: (m) => ({ pypi: 'nvidia-nvjitlink', pipDir: cu(m), what: 'nvJitLink' }) },
  { prefix: 'libcusparse.so', source: (m) => ({ pypi: 'nvidia-cusparse', pipDir: cu(m), what: 'cuSPARSE' }) },
  { prefix: 'libcuda.so', source: () => ({ pypi: undefined, what: 'the NVIDIA driver' }) },
];

/** Where `soname` comes from, or undefined for a library that is not part of CUDA (libc, libstdc++ …). */
export function librarySource(soname: string, cudaMajor: number): LibrarySource | undefined {
  return RULES.find((r) => soname.startsWith(r.prefix))?.source(cudaMajor);
}

/** `nvidia-cublas==13.*` for libcublas.so.13: the package version whose library has this exact name. */
export function pipRequirement(soname: string, pypi: string): string {
  const major = /\.so\.(\d+)/.exec(soname)?.[1];
  return major ? `${pypi}==${major}.*` : pypi;
}

/** The CUDA major a provider was built for, from the libcudart it needs (libcudart.so.13 → 13). */
export function cudaMajorOf(needed: readonly string[]): number | undefined {
  for (const n of needed) {
    const m = /^libcudart\.so\.(\d+)$/.exec(n);
    if (m) return Number(m[1]);
  }
  return undefined;
}

export interface RuntimeLoadedLibrary {
  soname: (cudaMajor: number) => string;
  /** Missing optional libraries are reported but do not make CUDA unusable for this project's models. */
  optional: boolean;
  why: string;
}

/**
 * Libraries ORT's CUDA provider opens with dlopen when it needs them, so they are absent from its
 * DT_NEEDED list (read from the onnxruntime-gpu 1.30 provider: its "cuDNN library was not found" and
 * "cuFFT library was not found" paths). cuDNN is needed by the convolution of every CLIP image tower;
 * cuFFT only by FFT operators, which no model here uses.
 */
export const RUNTIME_LOADED: readonly RuntimeLoadedLibrary[] = [
  { soname: () => 'libcudnn.so.9', optional: false, why: 'loaded at run time by the CUDA provider (convolutions)' },
  // cuFFT's soname runs one behind CUDA's major (CUDA 12 ships libcufft.so.11, CUDA 13 libcufft.so.12).
  { soname: (m) => `libcufft.so.${m - 1}`, optional: true, why: 'loaded at run time by the CUDA provider (FFT operators only)' },
];
