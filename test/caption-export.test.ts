import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Captioner } from '../src/caption/captioner.js';
import { captionArchitectureConfig } from '../src/caption/architectures.js';
import { writeRandomCaptionCheckpoint } from '../src/caption/random-checkpoint.js';
import { loadCaptionCheckpoint, type BlipWeights } from '../src/caption/weights.js';
import type { BlipCaptionConfig } from '../src/caption/config.js';
import { classifyCaptionGraph } from '../src/caption/export-io.js';
import { importCaptioner } from '../src/caption/install.js';
import { Img2PromptError } from '../src/util/errors.js';
import { blipExportDecoderGraph, blipExportImageGraph } from './helpers/blip-export-graphs.js';
import { generationOptionsOf } from './helpers/generate-options.js';
import { asset, KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';

/**
 * A ready ONNX export of BLIP (vision_model.onnx + a text decoder with past key/values, as published
 * exports are laid out) is recognised by its tensors and captions exactly as transformers does:
 *   - the interface of exports torch made from transformers' own modules (recorded by
 *     scripts/fixtures/caption_export.py; too large to commit) is classified as it should be;
 *   - an export-shaped folder built from the seeded blip-tiny checkpoint of the parity fixtures gives
 *     transformers' generate() token ids for every setting of test/fixtures/caption/blip-tiny.json.
 * (By hand, the torch exports themselves gave the same 91/91 sequences, with and without a cache.)
 */

const FIXTURES = path.resolve('test', 'fixtures', 'caption');
const parity = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'blip-tiny.json'), 'utf8')) as {
  seed: number;
  images: string[];
  generate: { options: Record<string, unknown> & { prefix: string }; tokens: number[][] }[];
};
const recorded = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'blip-export-io.json'), 'utf8')) as Record<string, Record<string, { inputs: string[]; outputs: string[] }>>;

describe('the interface of torch exports of transformers\' BLIP', () => {
  it('tells the image graph from the decoder, and counts the cached layers', () => {
    const withPast = recorded.with_past!;
    expect(classifyCaptionGraph('vision_model.onnx', withPast['vision_model.onnx']!)).toEqual({ role: 'image', output: 'last_hidden_state' });
    expect(classifyCaptionGraph('d.onnx', withPast['text_decoder_with_past_model.onnx']!)).toEqual({
      role: 'decoder', cachedLayers: 2, attentionMask: true, encoderAttentionMask: false, useCacheBranch: false,
    });
    expect(classifyCaptionGraph('d.onnx', recorded.no_cache!['text_decoder_model.onnx']!)).toMatchObject({ role: 'decoder', cachedLayers: 0 });
  });

  it('refuses graphs that are neither part, or whose cache does not pair up, naming the file and its tensors', () => {
    expect(() => classifyCaptionGraph('m.onnx', { inputs: ['input_ids'], outputs: ['text_embeds'] })).toThrow(/m\.onnx: not part of a captioner export.*inputs: input_ids; outputs: text_embeds/);
    expect(() => classifyCaptionGraph('d.onnx', { inputs: ['input_ids', 'encoder_hidden_states', 'past_key_values.0.key'], outputs: ['logits', 'present.0.key'] })).toThrow(/do not pair up/);
    expect(() => classifyCaptionGraph('d.onnx', { inputs: ['input_ids', 'encoder_hidden_states', 'position_ids'], outputs: ['logits'] })).toThrow(/does not know how to feed: position_ids/);
  });
});

describe('a ready BLIP export folder', () => {
  const root = tempDir('img2prompt-caption-export-');
  const dir = path.join(root, 'blip-tiny-onnx');
  const files = parity.images.map((f) => path.join(KAGGLE_SAMPLE, 'images', f));

  beforeAll(async () => {
    await writeRandomCaptionCheckpoint(dir, captionArchitectureConfig('blip-tiny'), parity.seed, asset('tokenizers', 'minilm'));
    const ckpt = await loadCaptionCheckpoint(dir);
    const config = ckpt.config as BlipCaptionConfig;
    const weights = ckpt.weights as BlipWeights;
    fs.mkdirSync(path.join(dir, 'onnx'));
    await blipExportImageGraph(config, weights).writeModel(path.join(dir, 'onnx', 'vision_model.onnx'));
    await blipExportDecoderGraph(config, weights, { merged: true }).writeModel(path.join(dir, 'onnx', 'text_decoder_model_merged.onnx'));
    fs.rmSync(path.join(dir, 'model.safetensors'));
  }, 300_000);

  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('is opened as an export and gives transformers\' token ids for every setting of the parity fixture', async () => {
    await using captioner = await Captioner.open(dir, { sessionOptions: { providers: ['cpu'] } });
    expect(captioner.files.kind).toBe('export');
    expect(captioner.files.exportIo?.decoder).toMatchObject({ cachedLayers: 2, useCacheBranch: true });
    let compared = 0;
    for (const g of parity.generate) {
      const got: number[][] = [];
      for await (const r of captioner.run(files, { ...generationOptionsOf(g.options), batchSize: files.length })) got.push(r.tokens!);
      expect(got, JSON.stringify(g.options)).toEqual(g.tokens);
      compared += got.length;
    }
    expect(compared).toBe(parity.generate.length * files.length);
  }, 300_000);

  it('is imported into the cache with its graphs, and captions the same', async () => {
    const home = tempDir('img2prompt-caption-export-home-');
    const before = process.env.IMG2PROMPT_HOME;
    process.env.IMG2PROMPT_HOME = home;
    try {
      const installed = await importCaptioner(dir, 'my-blip-onnx');
      expect(fs.existsSync(path.join(installed, 'onnx', 'text_decoder_model_merged.onnx'))).toBe(true);
      await using a = await Captioner.open('my-blip-onnx', { sessionOptions: { providers: ['cpu'] } });
      await using b = await Captioner.open(dir, { sessionOptions: { providers: ['cpu'] } });
      const first = async (c: Captioner) => { for await (const r of c.run(files.slice(0, 2), { numBeams: 1, maxLength: 12 })) return r.caption; };
      expect(await first(a)).toBe(await first(b));
      expect(a.modelId.split('@')[1]).toBe(b.modelId.split('@')[1]);
    } finally {
      if (before === undefined) delete process.env.IMG2PROMPT_HOME;
      else process.env.IMG2PROMPT_HOME = before;
      fs.rmSync(home, { recursive: true, force: true });
    }
  }, 300_000);

  it('refuses a folder with a decoder but no image graph, and a decoder caching other layers than config.json says', async () => {
    const half = path.join(root, 'half');
    fs.cpSync(dir, half, { recursive: true });
    fs.rmSync(path.join(half, 'onnx', 'vision_model.onnx'));
    const err = await Captioner.open(half).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Img2PromptError);
    expect((err as Img2PromptError).code).toBe('MODEL_MISSING');
    expect(String((err as Error).message)).toMatch(/half: ONNX files but no captioner image graph/);

    const other = path.join(root, 'other-layers');
    fs.cpSync(dir, other, { recursive: true });
    const config = JSON.parse(fs.readFileSync(path.join(other, 'config.json'), 'utf8'));
    config.text_config.num_hidden_layers = 3;
    fs.writeFileSync(path.join(other, 'config.json'), JSON.stringify(config));
    await expect(Captioner.open(other)).rejects.toThrow(/text_decoder_model_merged\.onnx: caches 2 decoder layers but config.json says 3/);
  });
});
