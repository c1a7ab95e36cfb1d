#!/usr/bin/env node
// The `npm install` step of img2prompt. A tarball made by `npm pack` carries a prebuilt addon
// (prebuilds/<platform>-<arch>/, placed by scripts/pack-prebuilt.mjs); when it loads here, nothing is
// built and no compiler is needed. Otherwise (no prebuilt for this platform, a glibc too old for it,
// a git checkout, or IMG2PROMPT_BUILD_FROM_SOURCE=1 / `npm install --build-from-source`) the addon is
// built from source, after checking that every tool the build needs is on PATH and naming the missing
// ones in one message when not.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
// Same place src/native/addon.ts loads it from.
const prebuilt = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'img2prompt_native.node');
const ortHeader = path.join(root, '.deps', 'ort-headers', 'usr', 'include', 'onnxruntime', 'onnxruntime_c_api.h');

function say(message) {
  console.error(`img2prompt: ${message}`);
}

/** Why the prebuilt addon cannot serve this machine, or null when it loads (it is then used as is). */
function prebuiltProblem() {
  const rel = path.relative(root, prebuilt);
  if (!fs.existsSync(prebuilt)) return `no prebuilt addon for ${process.platform}-${process.arch} (${rel})`;
  try {
    // Loading it proves what matters: glibc and libstdc++ are new enough and onnxruntime-node's
    // libonnxruntime.so.1 is found through the addon's rpath from where npm put the two packages.
    const addon = require(prebuilt);
    if (typeof addon.ortVersion !== 'function') return `${rel} is not an img2prompt addon`;
    say(`using the prebuilt addon ${rel} (N-API 8, ONNX Runtime ${addon.ortVersion()}); nothing to build`);
    return null;
  } catch (err) {
    return `the prebuilt addon ${rel} does not load here: ${String(err.message).split('\n')[0]}`;
  }
}

function isExecutable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function onPath(tool) {
  if (tool.includes('/')) return isExecutable(tool);
  return (process.env.PATH ?? '').split(path.delimiter).some((dir) => dir !== '' && isExecutable(path.join(dir, tool)));
}

/** The tools a source build needs that this machine lacks, each as the user would install it. */
function missingTools() {
  const missing = [];
  if (!onPath('cmake')) missing.push('cmake (>= 3.18)');
  // CMake takes $CXX when set, else the first of these it finds.
  const cxx = process.env.CXX?.trim().split(/\s+/)[0];
  if (cxx ? !onPath(cxx) : !['c++', 'g++', 'clang++'].some(onPath)) {
    missing.push(cxx ? `the C++ compiler CXX=${cxx}` : 'a C++17 compiler (g++ >= 10 or clang++)');
  }
  if (!onPath('make') && !onPath('ninja')) missing.push('make (or ninja)');
  if (!fs.existsSync(ortHeader)) {
    // scripts/fetch-ort-headers.mjs takes the ONNX Runtime C headers from Debian's libonnxruntime-dev.
    for (const tool of ['apt-get', 'dpkg']) if (!onPath(tool)) missing.push(`${tool} (for the ONNX Runtime headers)`);
  }
  return missing;
}

function run(args) {
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const forced = process.env.IMG2PROMPT_BUILD_FROM_SOURCE === '1' || process.env.npm_config_build_from_source === 'true';
const problem = forced ? 'building from source as asked (IMG2PROMPT_BUILD_FROM_SOURCE / --build-from-source)' : prebuiltProblem();
if (problem === null) process.exit(0);

say(problem);
const missing = missingTools();
if (missing.length > 0) {
  say(`cannot build the native addon from source: missing ${missing.join(', ')}. ` +
    'Install them, then run `npm rebuild img2prompt`.');
  process.exit(1);
}
say('building the native addon from source');
run([path.join(root, 'scripts', 'fetch-ort-headers.mjs')]);
run([require.resolve('cmake-js/bin/cmake-js'), 'compile', '-O', 'build']);
