import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { cudaStatus } from '../src/runtime/cuda-status.js';
import { CUDA_PROVIDER_LIB } from '../src/gpu/readiness.js';
import { ortLibraryDir } from '../src/native/addon.js';
import { modelDir } from '../src/models/cache.js';
import { runCli } from './helpers/cli.js';
import { KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';

/** `info` and sessions tell the truth about CUDA: compiled in is not usable, and CUDA asked for never runs on the CPU silently. */

const work = tempDir();
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));
const here = cudaStatus();

describe('img2prompt info', () => {
  it('lists the providers ORT was compiled with apart from the ones usable here, with the reason for each that is not', () => {
    const r = runCli(['info', '--json'], path.join(work, 'home'));
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.ortProviders).toEqual(expect.arrayContaining(['CPUExecutionProvider', 'CUDAExecutionProvider']));
    const cuda = info.providers.find((p: { name: string }) => p.name === 'CUDAExecutionProvider');
    expect(cuda).toEqual(here.usable ? { name: 'CUDAExecutionProvider', usable: true } : { name: 'CUDAExecutionProvider', usable: false, reason: here.reason });
    expect(info.providers.find((p: { name: string }) => p.name === 'CPUExecutionProvider')).toEqual({ name: 'CPUExecutionProvider', usable: true });
    for (const p of info.providers) if (p.name !== 'CPUExecutionProvider' && p.name !== 'CUDAExecutionProvider') expect(p.usable).toBe(false);
    expect(info.defaultProviders).toEqual(here.usable ? ['cuda', 'cpu'] : ['cpu']);
    if (!fs.existsSync(path.join(ortLibraryDir(), CUDA_PROVIDER_LIB))) {
      expect(cuda.reason).toMatch(/^ORT's CUDA provider is not installed \(.+ missing in .+\): run `img2prompt gpu install`/);
    }
    expect(info.cudaUsable).toBe(here.usable ? 'yes' : `no: ${here.reason}`);
    const text = runCli(['info'], path.join(work, 'home'));
    expect(text.stdout).toMatch(/^ortProviders +.*CUDAExecutionProvider.* \(compiled in\)$/m);
    expect(text.stdout).toMatch(here.usable ? /^CUDAExecutionProvider +usable$/m : /^CUDAExecutionProvider +not usable: .{20,}$/m);
  });
});

describe.skipIf(here.usable)('IMG2PROMPT_PROVIDERS with CUDA where it cannot be used', () => {
  const embed = (providers: string, out: string) =>
    runCli(['embed', '--prompts', path.join(KAGGLE_SAMPLE, 'prompts.csv'), '-o', out], path.join(work, 'home'), { env: { IMG2PROMPT_PROVIDERS: providers } });
  const minilmHome = () => {
    // The CLI needs the pulled MiniLM in its home: link the one global setup pulled.
    const models = path.join(work, 'home', 'models');
    fs.mkdirSync(models, { recursive: true });
    const link = path.join(models, 'minilm');
    if (!fs.existsSync(link)) fs.symlinkSync(modelDir('minilm'), link);
  };

  it('cuda alone: exit 1 with one line saying why, and nothing written', () => {
    minilmHome();
    const out = path.join(work, 'cuda-only.csv');
    const r = embed('cuda', out);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `img2prompt: CUDA was asked for (IMG2PROMPT_PROVIDERS=cuda) but cannot be used here: ${here.reason}; list cpu too to fall back to it (e.g. IMG2PROMPT_PROVIDERS=cuda,cpu)\n`,
    );
    expect(fs.existsSync(out)).toBe(false);
  });

  it('cuda,cpu: runs on the CPU and says so, once', () => {
    minilmHome();
    const r = embed('cuda,cpu', path.join(work, 'fallback.csv'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('warning: '))).toEqual([
      `warning: CUDA was asked for (IMG2PROMPT_PROVIDERS=cuda,cpu) but cannot be used here: ${here.reason}; running on the CPU`,
    ]);
  });
});
