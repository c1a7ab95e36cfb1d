import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { startFixtureServer, type FixtureServer } from './helpers/http-server.js';
import { pullModel } from '../src/models/pull.js';
import { loadManifest, type ModelManifest } from '../src/models/manifest.js';
import { hashFile } from '../src/models/sha256.js';
import { Captioner } from '../src/caption/captioner.js';
import { captionArchitectureConfig } from '../src/caption/architectures.js';
import { writeRandomCaptionCheckpoint } from '../src/caption/random-checkpoint.js';
import { asset, KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';

/**
 * `models pull blip-large|blip-base|git-large-coco` against the local HTTP server: the shipped
 * manifests' repository, revision and file list are served with a random model of the same
 * architecture family standing in for the real bytes (their pinned hashes swapped for the stand-in's),
 * then the pulled folder captions an image. With the shipped hashes, the stand-in's weights are refused.
 */

const CASES = [
  { name: 'blip-large', arch: 'blip-tiny' },
  { name: 'blip-base', arch: 'blip-tiny' },
  { name: 'git-large-coco', arch: 'git-tiny' },
] as const;

describe('models pull of the captioners (local hub)', () => {
  let server: FixtureServer;
  const home = tempDir('img2prompt-caption-pull-');
  const saved = { ...process.env };

  beforeAll(async () => {
    server = await startFixtureServer();
    process.env.IMG2PROMPT_HOME = home;
    process.env.IMG2PROMPT_HF_ENDPOINT = server.url;
    delete process.env.HF_ENDPOINT;
  });

  afterAll(async () => {
    await server.close();
    process.env = { ...saved };
    await fs.rm(home, { recursive: true, force: true });
  });

  /** The shipped manifest with every file served from a random stand-in and its hash swapped in. */
  async function standIn(name: string, arch: string): Promise<{ manifest: ModelManifest; shipped: ModelManifest }> {
    const shipped = await loadManifest(name);
    const src = path.join(home, `src-${name}`);
    await writeRandomCaptionCheckpoint(src, captionArchitectureConfig(arch), 11, asset('tokenizers', 'minilm'));
    const hf = shipped.sources.hf!;
    const files = [];
    for (const f of shipped.files) {
      const file = path.join(src, f.path);
      // generation_config.json is not one the engine writes: serve a small stand-in.
      if (!(await fs.stat(file).catch(() => undefined))) await fs.writeFile(file, '{"bos_token_id": 101, "eos_token_id": 102}\n');
      const body = await fs.readFile(file);
      server.route(`/${hf.repo}/resolve/${hf.revision}/${f.path}`, { body });
      const { size, sha256 } = await hashFile(file);
      files.push({ path: f.path, size, sha256 });
    }
    return { manifest: { ...shipped, files }, shipped };
  }

  it.each(CASES)('$name: the shipped repository, revision and files install, and the model captions', async ({ name, arch }) => {
    const { manifest } = await standIn(name, arch);
    const result = await pullModel(name, { source: 'hf', manifest, retries: 1, retryDelayMs: 1 });
    expect(result.status).toBe('installed');
    const captioner = await Captioner.open(name, { sessionOptions: { providers: ['cpu'] } });
    const out = [];
    for await (const r of captioner.run([path.join(KAGGLE_SAMPLE, 'images', '20057f34d.png')], { numBeams: 2, maxLength: 8 })) out.push(r);
    captioner.close();
    expect(out).toHaveLength(1);
    expect(out[0]!.failure).toBeUndefined();
    expect(out[0]!.tokens!.length).toBeGreaterThan(1);
  }, 300_000);

  it('refuses weights that do not match the pinned sha256 of blip-large and installs nothing', async () => {
    const { shipped } = await standIn('blip-large', 'blip-tiny');
    const pinned = shipped.files.find((f) => f.path === 'model.safetensors')!.sha256;
    expect(pinned).toMatch(/^[0-9a-f]{64}$/);
    await fs.rm(path.join(home, 'models', 'blip-large'), { recursive: true, force: true });
    await expect(pullModel('blip-large', { source: 'hf', manifest: shipped, retries: 1, retryDelayMs: 1 })).rejects.toThrow(/model\.safetensors.*sha256 mismatch/);
    expect(await fs.stat(path.join(home, 'models', 'blip-large')).catch(() => undefined)).toBeUndefined();
  }, 300_000);
});
