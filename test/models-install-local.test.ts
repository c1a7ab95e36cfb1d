import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { installRandomClip } from '../src/models/install-local.js';
import { readInstallRecord } from '../src/models/cache.js';
import { runCli, type CliResult } from './helpers/cli.js';
import { asset, tempDir } from './helpers/paths.js';

/** `models random` and `models import` never replace a model by accident, and never take a pullable model's name. */

const TOKENIZER = asset('tokenizers', 'clip', 'hf-openai-clip-vit-large-patch14');
let work: string;
let home: string;
let savedHome: string | undefined;
const modelsDir = () => path.join(home, 'models');
const origin = async (name: string) => (await readInstallRecord(path.join(modelsDir(), name))).origin;

/** Exit 1 and one error line (after any "writing …" status line). */
function expectOneLine(r: CliResult, text: string): void {
  expect(r.code).toBe(1);
  expect(r.stderr.split('\n').filter((l) => l.startsWith('img2prompt: '))).toEqual([`img2prompt: ${text}`]);
}

beforeAll(async () => {
  work = tempDir();
  home = path.join(work, 'home');
  savedHome = process.env.IMG2PROMPT_HOME;
  process.env.IMG2PROMPT_HOME = home;
  await installRandomClip({ arch: 'tiny', seed: 0, name: 'mine', tokenizerDir: TOKENIZER });
});

afterAll(() => {
  if (savedHome === undefined) delete process.env.IMG2PROMPT_HOME;
  else process.env.IMG2PROMPT_HOME = savedHome;
  fs.rmSync(work, { recursive: true, force: true });
});

describe('models random / import over an installed model', () => {
  it('refuses without --force, naming the model and what it holds; --force replaces it', async () => {
    const dir = path.join(modelsDir(), 'mine');
    const before = await origin('mine');
    expect(before).toMatch(/seed 0/);

    const random = runCli(['models', 'random', '--arch', 'tiny', '--seed', '1', '--name', 'mine'], home);
    expectOneLine(random, `${dir}: model "mine" is already installed (random: ${before}); use --force to replace it`);
    expect(await origin('mine')).toBe(before);

    const imported = runCli(['models', 'import', dir, '--name', 'mine'], home);
    expectOneLine(imported, `${dir}: model "mine" is already installed (random: ${before}); use --force to replace it`);

    const forced = runCli(['models', 'random', '--arch', 'tiny', '--seed', '1', '--name', 'mine', '--force'], home);
    expect(forced.code).toBe(0);
    expect(await origin('mine')).toMatch(/seed 1/);
    expect(fs.readdirSync(modelsDir()).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});

describe('names of pullable models', () => {
  it('are never given to random weights, even with --force', () => {
    for (const extra of [[], ['--force']]) {
      const r = runCli(['models', 'random', '--arch', 'tiny', '--name', 'minilm', ...extra], home);
      expectOneLine(
        r,
        `"minilm" is the name of a model \`img2prompt models pull\` installs (models/manifests/minilm.json): it is reserved for those weights; choose another --name`,
      );
      expect(fs.existsSync(path.join(modelsDir(), 'minilm'))).toBe(false);
    }
  });

  it('take an import only when its files match the weights the manifest pins', () => {
    const src = path.join(modelsDir(), 'mine');
    const pinned = runCli(['models', 'import', src, '--name', 'clip-vit-l-14', '--force'], home);
    expect(pinned.code).toBe(1);
    expect(pinned.stderr).toMatch(
      /^img2prompt: "clip-vit-l-14" is the name of a model `img2prompt models pull` installs \(models\/manifests\/clip-vit-l-14\.json\): it is reserved for those weights, and .+ does not hold them \(model\.safetensors: missing\); choose another --name\n$/,
    );
    // A manifest that pins nothing cannot tell its real weights from others.
    const unpinned = runCli(['models', 'import', src, '--name', 'clip-vit-b-32'], home);
    expect(unpinned.code).toBe(1);
    expect(unpinned.stderr).toContain('"clip-vit-b-32" is the name of a model `img2prompt models pull` installs');
    expect(unpinned.stderr).toContain('its manifest pins no sha256 to recognise them by; choose another --name');
    expect(fs.readdirSync(modelsDir()).sort()).toEqual(['mine']);
  });
});
