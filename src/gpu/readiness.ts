import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { ortLibraryDir } from '../native/addon.js';
import { readElfDynamic, type ElfDynamicInfo } from './elf.js';
import { findOffLoaderPath, resolveLibrary, systemLoaderPaths, type FoundVia, type LoaderPaths } from './library-search.js';
import { RUNTIME_LOADED, cudaMajorOf, librarySource, pipRequirement } from './cuda-libraries.js';
import { readOptions } from '../util/options.js';

/** ORT's CUDA provider: both must sit beside libonnxruntime.so.1, which loads them by that path. */
export const CUDA_PROVIDER_LIB = 'libonnxruntime_providers_cuda.so';
export const SHARED_PROVIDER_LIB = 'libonnxruntime_providers_shared.so';
export const PROVIDER_LIBS = [SHARED_PROVIDER_LIB, CUDA_PROVIDER_LIB] as const;

export interface LibraryCheck {
  soname: string;
  /** The library that needs it (a file name), with "(at run time)" for dlopen'ed ones. */
  neededBy: string;
  /** 'off-path': present on this machine, but where the loader does not look. */
  status: 'found' | 'off-path' | 'missing';
  /** Where it was found, or the copy outside the loader's path. */
  path?: string;
  via?: FoundVia;
  /** Missing optional libraries do not make CUDA unusable. */
  optional: boolean;
  /** Part of CUDA (as opposed to libc, libstdc++ …). */
  cuda: boolean;
  /** What to do about an off-path or missing library. */
  remedy?: string;
}

export interface CudaReadiness {
  /** True when the provider is installed, every required library resolves and an NVIDIA device exists. */
  usable: boolean;
  ortDir: string;
  providerInstalled: boolean;
  /** The CUDA major the provider was built for (from the libcudart it needs). */
  cudaMajor: number | undefined;
  /** NVIDIA device nodes (/dev/nvidia0 …). */
  devices: string[];
  libraries: LibraryCheck[];
  /** One line per reason CUDA cannot be used; empty when usable. */
  problems: string[];
}

export interface ReadinessOptions {
  /** Folder of libonnxruntime.so.1 (default: onnxruntime-node's, the one the addon loads). */
  ortDir?: string;
  paths?: LoaderPaths;
  /** Where device nodes are looked for (default /dev). */
  devDir?: string;
}

function nvidiaDevices(devDir: string): string[] {
  try {
    return readdirSync(devDir).filter((n) => /^nvidia\d+$/.test(n)).sort().map((n) => path.join(devDir, n));
  } catch {
    return [];
  }
}

function remedyFor(soname: string, status: 'off-path' | 'missing', offPath: string | undefined, cudaMajor: number): string | undefined {
  if (status === 'off-path') {
    const dir = path.dirname(offPath!);
    return `add ${dir} to LD_LIBRARY_PATH (or list it in /etc/ld.so.conf.d/ and run ldconfig)`;
  }
  const source = librarySource(soname, cudaMajor);
  if (!source) return undefined;
  if (!source.pypi) return `install ${source.what}`;
  return `pip install '${pipRequirement(soname, source.pypi)}' and add its site-packages/${source.pipDir} to LD_LIBRARY_PATH, or install ${source.what} ${cudaMajor > 0 ? `for CUDA ${cudaMajor} ` : ''}system-wide`;
}

/**
 * Whether ORT's CUDA provider can run here, and why not: the provider libraries beside
 * libonnxruntime.so.1, every library they need (their DT_NEEDED, the CUDA libraries they open at
 * run time, and what those need in turn) resolved the way the loader would, and an NVIDIA device.
 * Synchronous and cheap (a few ELF headers and one `ldconfig -p`), so `info` and session setup can
 * call it.
 */
export function cudaReadiness(options: ReadinessOptions = {}): CudaReadiness {
  const o = readOptions(options, 'cudaReadiness()');
  // Loader paths are built by library-search.ts (tests pass their own); their shape is not checked here.
  options = { ortDir: o.string('ortDir', { nonEmpty: true }), paths: o.object<LoaderPaths>('paths'), devDir: o.string('devDir', { nonEmpty: true }) };
  o.done();
  const ortDir = options.ortDir ?? ortLibraryDir();
  const devices = nvidiaDevices(options.devDir ?? '/dev');
  const absent = PROVIDER_LIBS.filter((f) => !existsSync(path.join(ortDir, f)));
  if (absent.length > 0) {
    return {
      usable: false,
      ortDir,
      providerInstalled: false,
      cudaMajor: undefined,
      devices,
      libraries: [],
      problems: [`ORT's CUDA provider is not installed (${absent.join(', ')} missing in ${ortDir}): run \`img2prompt gpu install\``],
    };
  }
  const providerFile = path.join(ortDir, CUDA_PROVIDER_LIB);
  const shared = path.join(ortDir, SHARED_PROVIDER_LIB);
  let provider: ElfDynamicInfo;
  let sharedElf: ElfDynamicInfo;
  try {
    provider = readElfDynamic(providerFile);
    sharedElf = readElfDynamic(shared);
  } catch (err) {
    const reason = `${(err as Error).message}: reinstall it with \`img2prompt gpu install\``;
    return { usable: false, ortDir, providerInstalled: false, cudaMajor: undefined, devices, libraries: [], problems: [reason] };
  }
  const paths = options.paths ?? systemLoaderPaths();
  const cudaMajor = cudaMajorOf(provider.needed) ?? 0;

  const libraries: LibraryCheck[] = [];
  const seen = new Set<string>();
  const check = (soname: string, needer: { file: string; elf: ElfDynamicInfo }, optional: boolean, atRunTime: boolean) => {
    if (seen.has(soname)) return;
    seen.add(soname);
    const cuda = librarySource(soname, cudaMajor) !== undefined;
    const neededBy = path.basename(needer.file) + (atRunTime ? ' (at run time)' : '');
    const found = resolveLibrary(soname, { file: needer.file, runpath: needer.elf.runpath, rpath: needer.elf.rpath }, paths);
    if (found) {
      libraries.push({ soname, neededBy, status: 'found', path: found.path, via: found.via, optional, cuda });
      // What a CUDA library needs must resolve too (cuDNN's own dependencies, say); glibc's own are taken as given.
      if (cuda) {
        const elf = readElfDynamic(found.path);
        for (const n of elf.needed) check(n, { file: found.path, elf }, optional, false);
      }
      return;
    }
    const offPath = findOffLoaderPath(soname, paths);
    const status = offPath ? 'off-path' : 'missing';
    libraries.push({ soname, neededBy, status, path: offPath, optional, cuda, remedy: remedyFor(soname, status, offPath, cudaMajor) });
  };
  for (const n of sharedElf.needed) check(n, { file: shared, elf: sharedElf }, false, false);
  for (const n of provider.needed) check(n, { file: providerFile, elf: provider }, false, false);
  if (cudaMajor > 0) for (const lib of RUNTIME_LOADED) check(lib.soname(cudaMajor), { file: providerFile, elf: provider }, lib.optional, true);

  const problems: string[] = [];
  for (const lib of libraries) {
    if (lib.status === 'found' || lib.optional) continue;
    const where = lib.status === 'off-path' ? `not on the loader's path (found ${lib.path})` : 'missing';
    const what = librarySource(lib.soname, cudaMajor)?.what;
    problems.push(`${lib.soname}${what ? ` (${what})` : ''}, needed by ${lib.neededBy}: ${where}${lib.remedy ? `; ${lib.remedy}` : ''}`);
  }
  if (devices.length === 0) problems.push('no NVIDIA GPU device (/dev/nvidia0 …) on this machine');
  return { usable: problems.length === 0, ortDir, providerInstalled: true, cudaMajor: cudaMajor || undefined, devices, libraries, problems };
}
