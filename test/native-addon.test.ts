import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { native } from '../src/native/addon.js';

describe('native addon loader', () => {
  it('loads an addon that has every declared function', () => {
    expect(native().ortVersion()).toMatch(/^1\.\d+\.\d+$/);
    expect(native().topkKernel()).toMatch(/^(avx2-fma-f16c|scalar)$/);
  });

  it('names the functions an addon built from other sources lacks', () => {
    // Some other N-API module: it loads, but exports none of ours.
    const other = path.resolve('node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node');
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', "import('./src/native/addon.ts').then((m) => m.native())"], {
      env: { ...process.env, IMG2PROMPT_NATIVE: other },
      encoding: 'utf8',
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(
      `${other}: built from older sources (it has no openSession, createIoBinding, availableProviders, ortVersion, initEnvironment, topk, scoresAll, topkKernel, ` +
        'clipPreprocess, clipGeometry, streamRead); rebuild it with `npm run build:native`',
    );
  });
});
