import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers/paths.js';

/**
 * scripts/install-native.mjs, the `npm install` step, run from a copy of the package layout it expects
 * (scripts/, prebuilds/linux-x64/, node_modules/onnxruntime-node) with a PATH holding only `node`: the
 * machine without g++, cmake, make, apt-get and dpkg that the prebuilt addon is for.
 */
describe('install-native.mjs (npm install step)', () => {
  let root: string;
  let bareBin: string;
  const prebuilt = () => path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'img2prompt_native.node');
  const builtAddon = path.resolve('build', 'Release', 'img2prompt_native.node');

  beforeAll(() => {
    root = tempDir('img2prompt-install-');
    fs.mkdirSync(path.join(root, 'scripts'));
    fs.copyFileSync(path.resolve('scripts', 'install-native.mjs'), path.join(root, 'scripts', 'install-native.mjs'));
    fs.mkdirSync(path.join(root, 'node_modules'));
    // Where npm nests the dependency; the addon's rpath finds libonnxruntime.so.1 there.
    fs.symlinkSync(path.resolve('node_modules', 'onnxruntime-node'), path.join(root, 'node_modules', 'onnxruntime-node'));
    bareBin = path.join(root, 'bin');
    fs.mkdirSync(bareBin);
    fs.symlinkSync(process.execPath, path.join(bareBin, 'node'));
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  function install(env: Record<string, string> = {}) {
    const r = spawnSync(path.join(bareBin, 'node'), [path.join(root, 'scripts', 'install-native.mjs')], {
      env: { PATH: bareBin, ...env },
      encoding: 'utf8',
    });
    return { code: r.status, stderr: r.stderr };
  }

  function placePrebuilt(from: string | Buffer): void {
    fs.rmSync(path.join(root, 'prebuilds'), { recursive: true, force: true });
    fs.mkdirSync(path.dirname(prebuilt()), { recursive: true });
    if (typeof from === 'string') fs.copyFileSync(from, prebuilt());
    else fs.writeFileSync(prebuilt(), from);
  }

  it('takes a prebuilt addon that loads, builds nothing and needs no toolchain', () => {
    placePrebuilt(builtAddon);
    const r = install();
    expect(r.stderr).toMatch(/^img2prompt: using the prebuilt addon prebuilds\/linux-x64\/img2prompt_native\.node \(N-API 8, ONNX Runtime 1\.\d+\.\d+\); nothing to build$/m);
    expect(r.code).toBe(0);
    expect(fs.existsSync(path.join(root, 'build'))).toBe(false);
  });

  it('without a prebuilt, names every missing build tool in one message and fails', () => {
    fs.rmSync(path.join(root, 'prebuilds'), { recursive: true, force: true });
    const r = install();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`img2prompt: no prebuilt addon for ${process.platform}-${process.arch} (prebuilds/`);
    expect(r.stderr).toContain(
      'img2prompt: cannot build the native addon from source: missing cmake (>= 3.18), a C++17 compiler (g++ >= 10 or clang++), ' +
        'make (or ninja), apt-get (for the ONNX Runtime headers), dpkg (for the ONNX Runtime headers). Install them, then run `npm rebuild img2prompt`.',
    );
  });

  it('says why a prebuilt that does not load was passed over, then names the missing tools', () => {
    placePrebuilt(Buffer.from('not an ELF file'));
    const r = install();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^img2prompt: the prebuilt addon prebuilds\/linux-x64\/img2prompt_native\.node does not load here: .*(invalid ELF header|too short)/m);
    expect(r.stderr).toContain('missing cmake (>= 3.18)');
  });

  it('builds from source when asked, even with a prebuilt that loads; a CXX that is not there is named', () => {
    placePrebuilt(builtAddon);
    const r = install({ IMG2PROMPT_BUILD_FROM_SOURCE: '1', CXX: 'g++-99' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('img2prompt: building from source as asked (IMG2PROMPT_BUILD_FROM_SOURCE / --build-from-source)');
    expect(r.stderr).toContain('missing cmake (>= 3.18), the C++ compiler CXX=g++-99, make (or ninja)');
    expect(r.stderr).not.toContain('using the prebuilt addon');
  });
});
