import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { installCudaProvider, parseWheelRecord } from '../src/gpu/install.js';
import { cudaReadiness, CUDA_PROVIDER_LIB, SHARED_PROVIDER_LIB } from '../src/gpu/readiness.js';
import { readElfDynamic } from '../src/gpu/elf.js';
import { readLdconfigCache, type LoaderPaths } from '../src/gpu/library-search.js';
import { findProviderWheel } from '../src/gpu/pypi-wheel.js';
import { ortLibraryDir } from '../src/native/addon.js';
import { startFixtureServer, type FixtureServer } from './helpers/http-server.js';
import { storedZip } from './helpers/stored-zip.js';
import { runCli } from './helpers/cli.js';
import { tempDir } from './helpers/paths.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const b64url = (hex: string) => Buffer.from(hex, 'hex').toString('base64url');

/** What PyPI's RECORD of onnxruntime_gpu-1.30.0-cp311-cp311-manylinux_2_28_x86_64.whl says (checked with unzip + sha256sum). */
const REAL = {
  wheel: 'onnxruntime_gpu-1.30.0-cp311-cp311-manylinux_2_28_x86_64.whl',
  wheelSha256: '4fbf0c5d7b5fb99266c2e8a802e3e64af68bdc383e0f3c7349b985f1087eedaa',
  cuda: { size: 272049904, sha256: '9d7587acb137b31bf84e4d32dc444b969bb601d098b01395effcacfe4341e364' },
  shared: { size: 14632, sha256: '086ec1d5388f64153d9c63470d126693db9a182c8ce236d3a1119068471b8a0d' },
};

/** The real wheel is kept here across test runs, so it is downloaded once per machine, not once per run. */
const WHEEL_CACHE = path.join(os.tmpdir(), 'img2prompt-test-cache', 'onnxruntime-gpu');

/** A folder that looks like onnxruntime-node's: a copy of its libonnxruntime.so.1. */
async function ortDirCopy(): Promise<string> {
  const dir = tempDir('img2prompt-ortdir-');
  await fs.copyFile(path.join(ortLibraryDir(), 'libonnxruntime.so.1'), path.join(dir, 'libonnxruntime.so.1'));
  return dir;
}

/** The loader's real view minus every CUDA library it may hold, plus the folders a test plants. */
function loaderPaths(ldLibraryPath: string[], offPathDirs: string[]): LoaderPaths {
  const cache = new Map([...readLdconfigCache()].filter(([soname]) => !/^lib(cu|nv)/i.test(soname)));
  return { machine: 62, ldLibraryPath, cache, defaultDirs: ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu'], offPathDirs };
}

describe('parseWheelRecord', () => {
  it('turns base64url digests into hex and skips entries without a hash', () => {
    const digest = sha(Buffer.from('x'));
    const record = parseWheelRecord(`a/b.so,sha256=${b64url(digest)},1\r\npkg.dist-info/RECORD,,\n`);
    expect([...record]).toEqual([['a/b.so', { sha256: digest, size: 1 }]]);
  });
});

describe('readElfDynamic', () => {
  it('names a file that is not ELF', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'libfake.so.1');
    await fs.writeFile(file, 'INPUT(-lc)\n'); // a linker script, as some lib*.so files are
    expect(() => readElfDynamic(file)).toThrow(`${file}: not an ELF file`);
    expect(() => readElfDynamic(path.join(dir, 'absent.so'))).toThrow(`${path.join(dir, 'absent.so')}: cannot open: ENOENT`);
  });

  it('reads the needed libraries of the addon ORT itself loads', () => {
    const ort = readElfDynamic(path.join(ortLibraryDir(), 'libonnxruntime.so.1'));
    expect(ort.machine).toBe(62);
    expect(ort.soname).toBe('libonnxruntime.so.1');
    expect(ort.needed).toContain('libc.so.6');
  });
});

describe.skipIf(process.env.IMG2PROMPT_TEST_OFFLINE === '1' || process.platform !== 'linux' || process.arch !== 'x64')('gpu install with the real onnxruntime-gpu 1.30.0 wheel (network)', () => {
  let ortDir: string;

  beforeAll(async () => {
    ortDir = await ortDirCopy();
    // Downloads into WHEEL_CACHE on a fresh machine (about 247 MB), reuses the verified copy after that.
    const result = await installCudaProvider({ ortDir, version: '1.30.0', downloadDir: WHEEL_CACHE, keepWheel: true });
    expect(result.wheel).toMatchObject({ filename: REAL.wheel, sha256: REAL.wheelSha256, size: 246658419 });
  }, 600_000);

  afterAll(async () => {
    await fs.rm(ortDir, { recursive: true, force: true });
  });

  it('finds the Linux x64 wheel and its PyPI sha256 through the JSON API', async () => {
    const wheel = await findProviderWheel('1.30.0');
    expect(wheel).toMatchObject({ filename: REAL.wheel, sha256: REAL.wheelSha256, size: 246658419 });
    expect(wheel.url).toMatch(/^https:\/\/.*\/onnxruntime_gpu-1\.30\.0-cp311-cp311-manylinux_2_28_x86_64\.whl$/);
  });

  it('puts both provider libraries beside libonnxruntime.so.1, byte for byte as RECORD lists them, and nothing else', async () => {
    const names = (await fs.readdir(ortDir)).sort();
    expect(names).toEqual(['libonnxruntime.so.1', CUDA_PROVIDER_LIB, SHARED_PROVIDER_LIB].sort());
    const shared = readFileSync(path.join(ortDir, SHARED_PROVIDER_LIB));
    expect({ size: shared.length, sha256: sha(shared) }).toEqual(REAL.shared);
    const cuda = readFileSync(path.join(ortDir, CUDA_PROVIDER_LIB));
    expect({ size: cuda.length, sha256: sha(cuda) }).toEqual(REAL.cuda);
  });

  it('reads the CUDA provider\'s DT_NEEDED list: the CUDA 13 libraries, then glibc\'s', () => {
    const elf = readElfDynamic(path.join(ortDir, CUDA_PROVIDER_LIB));
    expect(elf.needed).toEqual([
      'libcublasLt.so.13', 'libcublas.so.13', 'libcurand.so.10', 'libcudart.so.13', 'libcuda.so.1',
      'libdl.so.2', 'librt.so.1', 'libpthread.so.0', 'libstdc++.so.6', 'libm.so.6', 'libgcc_s.so.1', 'libc.so.6', 'ld-linux-x86-64.so.2',
    ]);
    expect(elf.runpath).toEqual([]);
    expect(readElfDynamic(path.join(ortDir, SHARED_PROVIDER_LIB)).soname).toBe('libonnxruntime_providers_shared.so');
  });

  it('names every missing CUDA library with the PyPI package that provides it, and a copy off the loader path with the folder to add', async () => {
    const onPath = tempDir('img2prompt-ldpath-');
    const toolkit = tempDir('img2prompt-cuda-13.0-');
    const devDir = tempDir('img2prompt-dev-');
    // Any real x86-64 library stands in for a CUDA one: the loader checks names and architecture only.
    const stand = path.join(ortDir, SHARED_PROVIDER_LIB);
    await fs.copyFile(stand, path.join(onPath, 'libcublas.so.13'));
    await fs.copyFile(stand, path.join(toolkit, 'libcudart.so.13'));
    await fs.writeFile(path.join(onPath, 'libcurand.so.10'), 'not a library'); // skipped, as the loader skips it

    const r = cudaReadiness({ ortDir, paths: loaderPaths([onPath], [toolkit]), devDir });
    expect(r).toMatchObject({ usable: false, providerInstalled: true, cudaMajor: 13, devices: [] });
    const byName = new Map(r.libraries.map((l) => [l.soname, l]));
    expect(byName.get('libcublas.so.13')).toMatchObject({ status: 'found', via: 'LD_LIBRARY_PATH', path: path.join(onPath, 'libcublas.so.13') });
    expect(byName.get('libc.so.6')).toMatchObject({ status: 'found', cuda: false });
    expect(r.problems).toEqual([
      `libcublasLt.so.13 (cuBLASLt), needed by ${CUDA_PROVIDER_LIB}: missing; pip install 'nvidia-cublas==13.*' and add its site-packages/nvidia/cu13/lib to LD_LIBRARY_PATH, or install cuBLASLt for CUDA 13 system-wide`,
      `libcurand.so.10 (cuRAND), needed by ${CUDA_PROVIDER_LIB}: missing; pip install 'nvidia-curand==10.*' and add its site-packages/nvidia/cu13/lib to LD_LIBRARY_PATH, or install cuRAND for CUDA 13 system-wide`,
      `libcudart.so.13 (the CUDA runtime), needed by ${CUDA_PROVIDER_LIB}: not on the loader's path (found ${path.join(toolkit, 'libcudart.so.13')}); add ${toolkit} to LD_LIBRARY_PATH (or list it in /etc/ld.so.conf.d/ and run ldconfig)`,
      `libcuda.so.1 (the NVIDIA driver), needed by ${CUDA_PROVIDER_LIB}: missing; install the NVIDIA driver`,
      `libcudnn.so.9 (cuDNN), needed by ${CUDA_PROVIDER_LIB} (at run time): missing; pip install 'nvidia-cudnn-cu13==9.*' and add its site-packages/nvidia/cudnn/lib to LD_LIBRARY_PATH, or install cuDNN for CUDA 13 system-wide`,
      'no NVIDIA GPU device (/dev/nvidia0 …) on this machine',
    ]);
    // cuFFT serves only FFT operators: reported, but not a reason CUDA is unusable.
    expect(byName.get('libcufft.so.12')).toMatchObject({ status: 'missing', optional: true });
    expect(byName.get('libcufft.so.12')!.remedy).toContain("pip install 'nvidia-cufft==12.*'");

    // With every library in place and a device node, CUDA is usable.
    for (const n of ['libcublasLt.so.13', 'libcurand.so.10', 'libcudart.so.13', 'libcuda.so.1', 'libcudnn.so.9']) await fs.copyFile(stand, path.join(onPath, n));
    await fs.writeFile(path.join(devDir, 'nvidia0'), '');
    const ready = cudaReadiness({ ortDir, paths: loaderPaths([onPath], [toolkit]), devDir });
    expect(ready.problems).toEqual([]);
    expect(ready.usable).toBe(true);
    expect(ready.devices).toEqual([path.join(devDir, 'nvidia0')]);
  });

  it('gpu install reuses a verified wheel in $IMG2PROMPT_HOME/downloads, deletes it afterwards and exits 1 while CUDA libraries are missing', async () => {
    const home = tempDir('img2prompt-gpu-home-');
    const target = await ortDirCopy();
    await fs.mkdir(path.join(home, 'downloads'));
    const placed = path.join(home, 'downloads', REAL.wheel);
    await fs.link(path.join(WHEEL_CACHE, REAL.wheel), placed); // a hard link: deleting it keeps the cache
    const r = runCli(['gpu', 'install', '--ort-dir', target], home, { env: { LD_LIBRARY_PATH: '' } });
    expect(existsSync(placed)).toBe(false);
    expect(existsSync(path.join(WHEEL_CACHE, REAL.wheel))).toBe(true);
    expect(sha(readFileSync(path.join(target, SHARED_PROVIDER_LIB)))).toBe(REAL.shared.sha256);
    expect(r.stdout).toContain(`provider      installed in ${target} (built for CUDA 13)`);
    if (!existsSync('/dev/nvidia0')) {
      expect(r.code).toBe(1);
      const errors = r.stderr.split('\n').filter((l) => l.startsWith('img2prompt:'));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(/^img2prompt: CUDA is not usable yet: /);
    }
    expect(r.stderr).not.toContain('downloading');

    const check = runCli(['gpu', 'install', '--check', '--json', '--ort-dir', target], home);
    const report = JSON.parse(check.stdout) as { providerInstalled: boolean; libraries: { soname: string }[] };
    expect(report.providerInstalled).toBe(true);
    expect(report.libraries.map((l) => l.soname)).toEqual(expect.arrayContaining(['libcublas.so.13', 'libcudnn.so.9', 'libcuda.so.1']));
    await fs.rm(target, { recursive: true, force: true });
    await fs.rm(home, { recursive: true, force: true });
  });
});

describe('gpu install against a PyPI-like server (offline)', () => {
  let server: FixtureServer;
  const cudaBytes = Buffer.from('pretend CUDA provider '.repeat(3000));
  const sharedBytes = Buffer.from('pretend shared provider');
  const recordLine = (name: string, b: Buffer) => `onnxruntime/capi/${name},sha256=${b64url(sha(b))},${b.length}`;
  const wheelName = 'onnxruntime_gpu-9.9.9-cp312-cp312-manylinux_2_28_x86_64.whl';
  const good = storedZip({
    'onnxruntime/capi/libonnxruntime_providers_cuda.so': cudaBytes,
    'onnxruntime/capi/libonnxruntime_providers_shared.so': sharedBytes,
    'onnxruntime_gpu-9.9.9.dist-info/RECORD': [recordLine(CUDA_PROVIDER_LIB, cudaBytes), recordLine(SHARED_PROVIDER_LIB, sharedBytes), ''].join('\n'),
  });
  // Links relative to the page that lists them, as some mirrors answer: the release page is one level deeper.
  const listing = (wheel: Buffer, file = wheelName, up = '../../') => ({
    filename: file,
    url: `${up}files/${file}`,
    size: wheel.length,
    digests: { sha256: sha(wheel) },
  });

  beforeAll(async () => {
    server = await startFixtureServer();
  });
  afterAll(async () => {
    await server.close();
  });

  const serve = (version: string, wheel: Buffer, opts: { releasePage?: boolean; plan?: { drop: number }[] } = {}) => {
    const files = (up: string) => [
      listing(good, `onnxruntime_gpu-${version}-cp312-cp312-win_amd64.whl`, up),
      listing(good, `onnxruntime_gpu-${version}-cp313-cp313t-manylinux_2_28_x86_64.whl`, up),
      listing(wheel, wheelName.replace('9.9.9', version), up),
    ];
    if (opts.releasePage !== false) server.route(`/pypi/onnxruntime-gpu/${version}/json`, { body: Buffer.from(JSON.stringify({ urls: files('../../../') })) });
    server.route('/pypi/onnxruntime-gpu/json', { body: Buffer.from(JSON.stringify({ releases: { [version]: files('../../') } })) });
    server.route(`/files/${wheelName.replace('9.9.9', version)}`, { body: wheel, plan: opts.plan });
  };

  it('installs from a mirror without release pages, resuming a dropped download, and leaves no temporary files', async () => {
    serve('9.9.9', good, { releasePage: false, plan: [{ drop: 5000 }] });
    const ortDir = await ortDirCopy();
    const downloads = tempDir();
    const r = await installCudaProvider({ ortDir, version: '9.9.9', downloadDir: downloads, pypiBase: `${server.url}/pypi`, retryDelayMs: 1 });
    expect(r.wheel.filename).toBe(wheelName); // not the free-threaded build, not Windows
    expect(r.downloaded).toBe(true);
    expect(readFileSync(path.join(ortDir, CUDA_PROVIDER_LIB))).toEqual(cudaBytes);
    expect(readFileSync(path.join(ortDir, SHARED_PROVIDER_LIB))).toEqual(sharedBytes);
    expect(server.requestsFor(`/files/${wheelName}`).map((q) => q.range)).toEqual([undefined, 'bytes=5000-']);
    expect((await fs.readdir(ortDir)).sort()).toEqual(['libonnxruntime.so.1', CUDA_PROVIDER_LIB, SHARED_PROVIDER_LIB].sort());
    expect(await fs.readdir(downloads)).toEqual([]); // the wheel is deleted once extracted
    // These stand-ins are not libraries: the report says so instead of failing.
    expect(r.readiness).toMatchObject({ usable: false, providerInstalled: false });
    expect(r.readiness.problems).toEqual([`${path.join(ortDir, CUDA_PROVIDER_LIB)}: not an ELF file: reinstall it with \`img2prompt gpu install\``]);
  });

  it('refuses a library that does not match the wheel\'s RECORD and leaves the ORT folder as it was', async () => {
    const lying = storedZip({
      'onnxruntime/capi/libonnxruntime_providers_cuda.so': cudaBytes,
      'onnxruntime/capi/libonnxruntime_providers_shared.so': Buffer.from('tampered'),
      'onnxruntime_gpu-9.9.8.dist-info/RECORD': [recordLine(CUDA_PROVIDER_LIB, cudaBytes), recordLine(SHARED_PROVIDER_LIB, sharedBytes)].join('\n'),
    });
    serve('9.9.8', lying);
    const ortDir = await ortDirCopy();
    const downloads = tempDir();
    const wheel = path.join(downloads, wheelName.replace('9.9.9', '9.9.8'));
    await expect(installCudaProvider({ ortDir, version: '9.9.8', downloadDir: downloads, pypiBase: `${server.url}/pypi` })).rejects.toThrow(
      `${wheel}: onnxruntime/capi/${SHARED_PROVIDER_LIB} does not match the wheel's RECORD (sha256 ${sha(Buffer.from('tampered'))}, 8 bytes)`,
    );
    expect(await fs.readdir(ortDir)).toEqual(['libonnxruntime.so.1']);
  });

  it('refuses a download whose sha256 differs from PyPI\'s, deleting it', async () => {
    serve('9.9.7', good);
    const files = [{ ...listing(good, wheelName.replace('9.9.9', '9.9.7'), '../../../'), digests: { sha256: sha(Buffer.from('another file')) } }];
    server.route('/pypi/onnxruntime-gpu/9.9.7/json', { body: Buffer.from(JSON.stringify({ urls: files })) });
    const ortDir = await ortDirCopy();
    const downloads = tempDir();
    await expect(installCudaProvider({ ortDir, version: '9.9.7', downloadDir: downloads, pypiBase: `${server.url}/pypi` })).rejects.toThrow(/sha256 mismatch: expected .* \(download deleted\)/);
    expect(await fs.readdir(downloads)).toEqual([]);
    expect(await fs.readdir(ortDir)).toEqual(['libonnxruntime.so.1']);
  });

  it('says when PyPI has no such version, and refuses a folder without libonnxruntime.so.1', async () => {
    server.route('/pypi/onnxruntime-gpu/json', { body: Buffer.from(JSON.stringify({ releases: { '9.9.9': [] } })) });
    const ortDir = await ortDirCopy();
    await expect(installCudaProvider({ ortDir, version: '0.0.1', downloadDir: tempDir(), pypiBase: `${server.url}/pypi` })).rejects.toThrow(
      `${server.url}/pypi/onnxruntime-gpu/json: PyPI has no onnxruntime-gpu 0.0.1 (the ONNX Runtime version in use)`,
    );
    const empty = tempDir();
    await expect(installCudaProvider({ ortDir: empty, version: '9.9.9', pypiBase: `${server.url}/pypi` })).rejects.toThrow(
      `${empty}: no libonnxruntime.so.1 here: the provider must go beside the ONNX Runtime library it is loaded by`,
    );
  });

  it('gpu install --check reports a folder without the provider and exits 1 with one error line', () => {
    const home = tempDir();
    const r = runCli(['gpu', 'install', '--check', '--ort-dir', home], home);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('provider      not installed in');
    expect(r.stderr.trim()).toBe(
      `img2prompt: CUDA is not usable yet: ORT's CUDA provider is not installed (${SHARED_PROVIDER_LIB}, ${CUDA_PROVIDER_LIB} missing in ${home}): run \`img2prompt gpu install\``,
    );
  });
});
