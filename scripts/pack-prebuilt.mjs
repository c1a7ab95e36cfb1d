#!/usr/bin/env node
// `npm pack` hooks. prepack: build the addon (incrementally, as `npm run build:native` does), copy it
// to prebuilds/<platform>-<arch>/ where scripts/install-native.mjs and src/native/addon.ts look for it,
// check that the copy loads from there, and empty dist/ so that `prepare` (tsc, run next by npm) packs
// no stale output. postpack (`--clean`): remove prebuilds/ again, so a checkout never runs an old
// prebuilt in place of what it builds. The addon targets N-API 8 (CMakeLists.txt), so this one file
// serves every Node >= 20. It binds to the very libonnxruntime.so.1 it was linked against (ONNX Runtime
// versions its exported symbols per release, e.g. OrtGetApiBase@VERS_1.30.0), which is why package.json
// pins onnxruntime-node to one exact version.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const prebuilds = path.join(root, 'prebuilds');

function run(args) {
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: ['ignore', 2, 2] });
  if (r.status !== 0) {
    console.error(`pack-prebuilt: \`node ${args.map((a) => path.relative(root, a) || a).join(' ')}\` failed`);
    process.exit(r.status ?? 1);
  }
}

if (process.argv.includes('--clean')) {
  fs.rmSync(prebuilds, { recursive: true, force: true });
  process.exit(0);
}

run([path.join(root, 'scripts', 'fetch-ort-headers.mjs')]);
run([createRequire(import.meta.url).resolve('cmake-js/bin/cmake-js'), 'compile', '-O', 'build']);
const built = path.join(root, 'build', 'Release', 'img2prompt_native.node');
const target = path.join(prebuilds, `${process.platform}-${process.arch}`, 'img2prompt_native.node');
fs.rmSync(prebuilds, { recursive: true, force: true });
fs.mkdirSync(path.dirname(target), { recursive: true });
fs.copyFileSync(built, target);

// In a child, so this process never holds the file: it must find libonnxruntime.so.1 from its new place.
const probe = spawnSync(process.execPath, ['-p', `require(${JSON.stringify(target)}).ortVersion()`], { encoding: 'utf8' });
if (probe.status !== 0) {
  console.error(`pack-prebuilt: ${path.relative(root, target)} does not load: ${probe.stderr.split('\n').find((l) => l.includes('Error')) ?? probe.stderr.trim()}`);
  process.exit(1);
}
fs.rmSync(path.join(root, 'dist'), { recursive: true, force: true });
console.error(`pack-prebuilt: ${path.relative(root, target)} (${fs.statSync(target).size} bytes, ONNX Runtime ${probe.stdout.trim()})`);
