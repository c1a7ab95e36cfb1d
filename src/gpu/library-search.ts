import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { ELF_MACHINE, readElfDynamic } from './elf.js';

/**
 * Where glibc's loader looks for a library named in DT_NEEDED (ld.so(8)): the needing object's
 * DT_RPATH when it has no DT_RUNPATH, LD_LIBRARY_PATH, its DT_RUNPATH, the ld.so.cache that
 * `ldconfig` maintains, then the default directories. A library elsewhere, such as in a CUDA toolkit
 * that was never added to ld.so.conf, is not found however present it is: `offPathDirs` lists where
 * such copies usually sit, so a report can name the directory to add instead of saying "install it".
 */
export interface LoaderPaths {
  machine: number;
  ldLibraryPath: string[];
  /** soname → path, from `ldconfig -p` for this machine's architecture. */
  cache: ReadonlyMap<string, string>;
  defaultDirs: string[];
  offPathDirs: string[];
}

export type FoundVia = 'rpath' | 'LD_LIBRARY_PATH' | 'runpath' | 'ld.so.cache' | 'default';

export interface Resolution {
  path: string;
  via: FoundVia;
}

const TRIPLET: Record<string, string> = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' };
const CUDA_TARGET: Record<string, string> = { x64: 'x86_64-linux', arm64: 'sbsa-linux' };
/** `ldconfig -p` tags each entry with its ABI; only this machine's can be loaded. */
const CACHE_ABI: Record<string, RegExp> = { x64: /x86-64/, arm64: /AArch64/i };

/** Runs `ldconfig -p` (from /sbin where PATH lacks it) and keeps this architecture's entries. */
export function readLdconfigCache(arch: string = process.arch): Map<string, string> {
  const cache = new Map<string, string>();
  for (const exe of ['/sbin/ldconfig', '/usr/sbin/ldconfig', 'ldconfig']) {
    let out: string;
    try {
      out = execFileSync(exe, ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    } catch {
      continue;
    }
    const abi = CACHE_ABI[arch];
    for (const line of out.split('\n')) {
      const m = /^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)\s*$/.exec(line);
      if (!m || (abi && !abi.test(m[2]!))) continue;
      if (!cache.has(m[1]!)) cache.set(m[1]!, m[3]!); // the first entry wins, as in the loader
    }
    break;
  }
  return cache;
}

/** CUDA toolkit library folders under /usr/local (cuda, cuda-13.0, …), newest name last. */
export function cudaToolkitDirs(arch: string = process.arch, root = '/usr/local'): string[] {
  let names: string[];
  try {
    names = readdirSync(root).filter((n) => /^cuda(-[\d.]+)?$/.test(n)).sort();
  } catch {
    return [];
  }
  const dirs: string[] = [];
  for (const n of names) {
    for (const sub of [path.join('targets', CUDA_TARGET[arch] ?? `${arch}-linux`, 'lib'), 'lib64']) {
      const d = path.join(root, n, sub);
      if (existsSync(d)) dirs.push(d);
    }
  }
  return dirs;
}

/** The loader's view of this process: its LD_LIBRARY_PATH, the ld.so cache and the usual CUDA folders. */
export function systemLoaderPaths(env: NodeJS.ProcessEnv = process.env): LoaderPaths {
  const triplet = TRIPLET[process.arch];
  return {
    machine: process.arch === 'arm64' ? ELF_MACHINE.arm64 : ELF_MACHINE.x64,
    ldLibraryPath: (env.LD_LIBRARY_PATH ?? '').split(/[:;]/).filter((d) => d !== ''),
    cache: readLdconfigCache(),
    defaultDirs: [...(triplet ? [`/lib/${triplet}`, `/usr/lib/${triplet}`] : []), '/lib64', '/usr/lib64', '/lib', '/usr/lib'],
    offPathDirs: cudaToolkitDirs(),
  };
}

/** `$ORIGIN` (the needing library's folder) and `$LIB` expanded, as the loader does in run paths. */
function expand(dir: string, origin: string): string {
  return dir.replace(/\$\{?ORIGIN\}?/g, origin).replace(/\$\{?LIB\}?/g, 'lib64');
}

/** A file the loader would accept: an ELF library of this machine's architecture. */
function loadable(file: string, machine: number): boolean {
  try {
    return readElfDynamic(file).machine === machine;
  } catch {
    return false; // missing, unreadable, a linker script or another architecture: the loader moves on
  }
}

/**
 * Where the loader would find `soname` when `needer` asks for it, or undefined. Names with a slash
 * are paths and are not searched, as in the loader.
 */
export function resolveLibrary(
  soname: string,
  needer: { file: string; runpath: string[]; rpath: string[] },
  paths: LoaderPaths,
): Resolution | undefined {
  const origin = path.dirname(needer.file);
  if (soname.includes('/')) return loadable(soname, paths.machine) ? { path: soname, via: 'default' } : undefined;
  const inDirs = (dirs: string[], via: FoundVia): Resolution | undefined => {
    for (const d of dirs) {
      const p = path.join(expand(d, origin), soname);
      if (loadable(p, paths.machine)) return { path: p, via };
    }
    return undefined;
  };
  const cached = paths.cache.get(soname);
  return (
    (needer.runpath.length === 0 ? inDirs(needer.rpath, 'rpath') : undefined) ??
    inDirs(paths.ldLibraryPath, 'LD_LIBRARY_PATH') ??
    inDirs(needer.runpath, 'runpath') ??
    (cached && loadable(cached, paths.machine) ? { path: cached, via: 'ld.so.cache' } : undefined) ??
    inDirs(paths.defaultDirs, 'default')
  );
}

/** A copy of `soname` outside the loader's search path (e.g. in /usr/local/cuda-13.0/…/lib), or undefined. */
export function findOffLoaderPath(soname: string, paths: LoaderPaths): string | undefined {
  for (const d of paths.offPathDirs) {
    const p = path.join(d, soname);
    if (loadable(p, paths.machine)) return p;
  }
  return undefined;
}
