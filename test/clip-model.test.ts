import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installRandomClip, importClip } from '../src/models/install-local.js';
import { ClipModel } from '../src/clip/model.js';
import { listImageFiles } from '../src/image/list-images.js';
import { readInstallRecord } from '../src/models/cache.js';
import { readNpy } from '../src/util/npy.js';
import { asset, KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { ClipTransform } from '../src/image/clip-transform.js';
import { decodeImage, type ExifMode } from '../src/image/decode.js';
import type { ClipImageProcessor } from '../src/image/image-processor.js';

const TOKENIZER = asset('tokenizers', 'clip', 'hf-openai-clip-vit-large-patch14');
const home = tempDir('img2prompt-clip-home-');
let saved: string | undefined;

beforeAll(async () => {
  saved = process.env.IMG2PROMPT_HOME;
  process.env.IMG2PROMPT_HOME = home;
  await installRandomClip({ arch: 'tiny', seed: 7, name: 'tiny-oc', layout: 'open_clip', tokenizerDir: TOKENIZER });
  await installRandomClip({ arch: 'tiny', seed: 7, name: 'tiny-hf', layout: 'hf', tokenizerDir: TOKENIZER });
});
afterAll(() => {
  if (saved === undefined) delete process.env.IMG2PROMPT_HOME;
  else process.env.IMG2PROMPT_HOME = saved;
  fs.rmSync(home, { recursive: true, force: true });
});

describe('random checkpoints in the model cache', () => {
  it('are recorded as random, with every file hashed', async () => {
    const record = await readInstallRecord(path.join(home, 'models', 'tiny-oc'));
    expect(record.random).toBe(true);
    expect(record.files.map((f) => f.path)).toContain('open_clip_model.safetensors');
    expect(record.files.map((f) => f.path)).toContain('tokenizer.json');
  });

  it('give the same embeddings from the open_clip and the Hugging Face layout of the same seed', async () => {
    const a = await ClipModel.open('tiny-oc');
    const b = await ClipModel.open('tiny-hf');
    expect(a.random).toBe(true);
    const texts = ['a photo of a cat', 'an oil painting of a lighthouse at dusk, trending on artstation'];
    expect(Array.from(await a.encodeTexts(texts))).toEqual(Array.from(await b.encodeTexts(texts)));
    a.close();
    b.close();
  });
});

describe('ClipModel', () => {
  let model: ClipModel;
  beforeAll(async () => {
    model = await ClipModel.open('tiny-oc');
  });
  afterAll(() => model.close());

  it('encodes a folder of images, reports an unreadable one and goes on', async () => {
    const dir = tempDir();
    for (const f of fs.readdirSync(path.join(KAGGLE_SAMPLE, 'images'))) fs.copyFileSync(path.join(KAGGLE_SAMPLE, 'images', f), path.join(dir, f));
    fs.writeFileSync(path.join(dir, '0000broken.png'), 'not a png');
    const { files } = await listImageFiles([dir]);
    expect(files.length).toBe(8);
    const r = await model.encodeImages(files, { batchSize: 3 });
    expect(r.ids).toEqual(['20057f34d', '227ef0887', '92e911621', 'a4e1c55a9', 'c98f79f71', 'd8edf2e40', 'f27825b2c']);
    expect(r.failures.map((f) => path.basename(f.file))).toEqual(['0000broken.png']);
    expect(r.failures[0]!.reason).toMatch(/unsupported image format|not a supported image/);
    for (let i = 0; i < r.ids.length; i++) {
      const row = r.embeds.subarray(i * model.dim, (i + 1) * model.dim);
      expect(Math.hypot(...row)).toBeCloseTo(1, 5);
    }
    // Batching does not change an image's embedding.
    const one = await model.encodeImages([files[3]!], { batchSize: 1 });
    const inBatch = r.embeds.subarray(2 * model.dim, 3 * model.dim);
    for (let j = 0; j < model.dim; j++) expect(one.embeds[j]).toBeCloseTo(inBatch[j]!, 5);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('gives the same text embeddings with dynamic padding as with padding to 77', async () => {
    const texts = ['a', 'a dog', 'portrait of a woman, highly detailed, by greg rutkowski', '', 'x '.repeat(100)];
    const dyn = await model.encodeTexts(texts, { batchSize: 2, padding: 'dynamic' });
    const fixed = await model.encodeTexts(texts, { batchSize: 2, padding: 'fixed' });
    let max = 0;
    for (let i = 0; i < dyn.length; i++) max = Math.max(max, Math.abs(dyn[i]! - fixed[i]!));
    expect(max).toBeLessThan(1e-5);
  });

  it('names the model folder when a model is not installed', async () => {
    await expect(ClipModel.open('no-such-model')).rejects.toThrow(/model "no-such-model" is not installed/);
  });
});

describe('image preprocessing follows the checkpoint layout (overridable), EXIF as asked', () => {
  const ROCKET = asset('images', 'skimage-rocket.jpg'); // 640x427: transformers crops one column left
  const ROTATED = asset('images', 'pillow-hopper_orientation_6.jpg');
  const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

  /** The model's embedding of `file` computed by hand: decode, ClipTransform with `processor`, encodePixels. */
  async function byHand(model: ClipModel, file: string, processor: ClipImageProcessor, exif: ExifMode): Promise<Float32Array> {
    const pixels = new Float32Array(3 * model.imageSize * model.imageSize);
    const transform = new ClipTransform({ size: model.imageSize, mean: model.config.imageMean, std: model.config.imageStd, processor });
    await transform.into(await decodeImage(file, { exif, alpha: 'keep' }), pixels, 0);
    return model.encodePixels(pixels, 1);
  }

  it('open_clip checkpoints get open_clip preprocessing, HF checkpoints and exports with a config.json get transformers\'', async () => {
    const oc = await ClipModel.open('tiny-oc', { towers: ['vision'] });
    const hf = await ClipModel.open('tiny-hf', { towers: ['vision'] });
    const ocAsHf = await ClipModel.open('tiny-oc', { towers: ['vision'], imageProcessor: 'hf' });
    try {
      expect([oc.imageProcessor, hf.imageProcessor, ocAsHf.imageProcessor]).toEqual(['open_clip', 'hf', 'hf']);
      const [a, b, c] = [oc, hf, ocAsHf].map(async (m) => (await m.encodeImages([ROCKET])).embeds);
      expect(same(await a, await byHand(oc, ROCKET, 'open_clip', 'apply'))).toBe(true);
      expect(same(await b, await byHand(hf, ROCKET, 'hf', 'apply'))).toBe(true);
      // The same random weights in both layouts: only the preprocessing tells them apart.
      expect(same(await b, await c)).toBe(true);
      expect(same(await a, await b)).toBe(false);
    } finally {
      for (const m of [oc, hf, ocAsHf]) m.close();
    }
    await expect(ClipModel.open('tiny-oc', { imageProcessor: 'timm' as never })).rejects.toThrow(new RangeError('ClipModel.open(): Expected one of "open_clip", "hf", "hf-pil", "hf-pil-resize" for imageProcessor but received "timm"'));
  });

  it("encodeImages exif: 'ignore' embeds the stored pixels of a rotated photo, 'apply' (default) the upright ones", async () => {
    const model = await ClipModel.open('tiny-hf', { towers: ['vision'] });
    try {
      const applied = (await model.encodeImages([ROTATED])).embeds;
      const ignored = (await model.encodeImages([ROTATED], { exif: 'ignore' })).embeds;
      expect(same(applied, await byHand(model, ROTATED, 'hf', 'apply'))).toBe(true);
      expect(same(ignored, await byHand(model, ROTATED, 'hf', 'ignore'))).toBe(true);
      expect(same(applied, ignored)).toBe(false);
    } finally {
      model.close();
    }
  });

  it('a graph cache written before the layout was recorded is rebuilt once, then records it', async () => {
    const { ensureClipOnnx } = await import('../src/clip/onnx-cache.js');
    const dir = path.join(home, 'models', 'tiny-hf');
    const sidecar = path.join(dir, 'clip-onnx.json');
    const record = JSON.parse(fs.readFileSync(sidecar, 'utf8')) as Record<string, unknown>;
    expect(record.layout).toBe('hf');
    delete record.layout;
    fs.writeFileSync(sidecar, JSON.stringify(record));
    const before = fs.statSync(path.join(dir, 'vision.onnx')).mtimeMs;
    await new Promise((r) => setTimeout(r, 20));
    expect((await ensureClipOnnx(dir)).layout).toBe('hf');
    expect(fs.statSync(path.join(dir, 'vision.onnx')).mtimeMs).toBeGreaterThan(before);
    expect(JSON.parse(fs.readFileSync(sidecar, 'utf8')).layout).toBe('hf');
  });
});

describe('img2prompt models import / embed-images', () => {
  it('imports a checkpoint folder and writes a .npy with its ids file', async () => {
    const src = path.join(home, 'models', 'tiny-hf');
    await importClip(src, 'tiny-imported');
    const out = path.join(tempDir(), 'emb.npy');
    const cli = path.resolve('dist/src/cli/bin.js');
    const images = path.join(KAGGLE_SAMPLE, 'images');
    const r = spawnSync(process.execPath, [cli, 'embed-images', images, '--model', 'tiny-imported', '-o', out], {
      env: { ...process.env, IMG2PROMPT_HOME: home },
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const npy = await readNpy(out);
    expect(npy.shape).toEqual([7, 32]);
    expect(fs.readFileSync(out.replace(/\.npy$/, '.ids.txt'), 'utf8').trim().split('\n')).toHaveLength(7);
    expect(r.stderr).toMatch(/RANDOM weights/);
  });
});

describe('towers written with ONNX external data (how ViT-H-14 fits)', () => {
  it('give the same embeddings as the inline graphs', async () => {
    const { ensureClipOnnx } = await import('../src/clip/onnx-cache.js');
    const { Session, tensor } = await import('../src/runtime/session.js');
    const dir = tempDir();
    for (const f of fs.readdirSync(path.join(home, 'models', 'tiny-oc'))) {
      if (f.endsWith('.safetensors') || f.endsWith('.json')) fs.copyFileSync(path.join(home, 'models', 'tiny-oc', f), path.join(dir, f));
    }
    fs.rmSync(path.join(dir, 'clip-onnx.json'), { force: true });
    const files = await ensureClipOnnx(dir, { externalAbove: 1024 });
    expect(fs.existsSync(`${files.vision}.data`)).toBe(true);
    expect(fs.statSync(files.vision).size).toBeLessThan(fs.statSync(`${files.vision}.data`).size);
    const external = await Session.open(files.vision, { providers: ['cpu'] });
    const inline = await Session.open(path.join(home, 'models', 'tiny-oc', 'vision.onnx'), { providers: ['cpu'] });
    const pixels = Float32Array.from({ length: 2 * 3 * 32 * 32 }, (_, i) => Math.sin(i));
    const a = await external.run({ pixel_values: tensor('float32', pixels, [2, 3, 32, 32]) });
    const b = await inline.run({ pixel_values: tensor('float32', pixels, [2, 3, 32, 32]) });
    expect(Array.from(a.image_embeds!.data as Float32Array)).toEqual(Array.from(b.image_embeds!.data as Float32Array));
    external.close();
    inline.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

/** A split ONNX export of the tiny-hf checkpoint with its weights in external .data files; returns its folder. */
async function writeExternalExport(visionName: string, textName: string): Promise<string> {
  const { loadClipCheckpoint } = await import('../src/clip/weights.js');
  const { clipVisionGraphBuilder } = await import('../models/graph/clip-vision.js');
  const { clipTextGraphBuilder } = await import('../models/graph/clip-text.js');
  const src = path.join(home, 'models', 'tiny-hf');
  const ckpt = await loadClipCheckpoint(src);
  const dir = tempDir();
  await clipVisionGraphBuilder(ckpt.config, ckpt.weights).writeModel(path.join(dir, visionName), { externalAbove: 1024 });
  await clipTextGraphBuilder(ckpt.config, ckpt.weights).writeModel(path.join(dir, textName), { externalAbove: 1024 });
  for (const f of ['config.json', 'preprocessor_config.json', 'tokenizer.json']) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  return dir;
}

/** An imported export of tiny-hf is used as an export and gives tiny-hf's own text and image embeddings. */
async function expectSameEmbeddingsAsTinyHf(name: string): Promise<void> {
  const exported = await ClipModel.open(name);
  const original = await ClipModel.open('tiny-hf');
  try {
    expect(exported.files.kind).toBe('export');
    expect(exported.imageProcessor).toBe(original.imageProcessor); // both 'hf', by the export's config.json
    expect(exported.dim).toBe(original.dim);
    const texts = ['a castle in the clouds', 'by greg rutkowski'];
    expect(Array.from(await exported.encodeTexts(texts))).toEqual(Array.from(await original.encodeTexts(texts)));
    const image = [path.join(KAGGLE_SAMPLE, 'images', '20057f34d.png')];
    expect(Array.from((await exported.encodeImages(image)).embeds)).toEqual(Array.from((await original.encodeImages(image)).embeds));
  } finally {
    exported.close();
    original.close();
  }
}

describe('ready ONNX exports (vision_model.onnx + text_model.onnx)', () => {
  it('are imported with their own file names and external-data files', async () => {
    // Names no fixed list knows, weights in .data files beside the graphs: only the I/O names tell the towers.
    const dir = await writeExternalExport('clip-image.onnx', 'clip-text.onnx');
    const installed = await importClip(dir, 'tiny-export-data');
    for (const f of ['clip-image.onnx', 'clip-image.onnx.data', 'clip-text.onnx', 'clip-text.onnx.data']) {
      // Buffer.equals: vitest's deep equality walks a buffer byte by byte (minutes for a few MB).
      expect(fs.readFileSync(path.join(installed, f)).equals(fs.readFileSync(path.join(dir, f))), f).toBe(true);
    }
    expect((await readInstallRecord(installed)).files.map((f) => f.path)).toEqual(expect.arrayContaining(['clip-image.onnx.data', 'clip-text.onnx.data']));
    fs.rmSync(dir, { recursive: true, force: true }); // the install must not read from the source folder
    await expectSameEmbeddingsAsTinyHf('tiny-export-data');
  });

  it('with an external-data file missing are refused at import, naming it', async () => {
    const dir = await writeExternalExport('vision_model.onnx', 'text_model.onnx');
    fs.rmSync(path.join(dir, 'text_model.onnx.data'));
    await expect(importClip(dir, 'tiny-export-broken')).rejects.toThrow(/text_model\.onnx: external data file text_model\.onnx\.data is missing/);
    expect(fs.existsSync(path.join(home, 'models', 'tiny-export-broken'))).toBe(false);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('are used as they are and give the embeddings of the checkpoint they came from', async () => {
    const src = path.join(home, 'models', 'tiny-hf');
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, 'onnx'));
    fs.copyFileSync(path.join(src, 'vision.onnx'), path.join(dir, 'onnx', 'vision_model.onnx'));
    fs.copyFileSync(path.join(src, 'text.onnx'), path.join(dir, 'onnx', 'text_model.onnx'));
    for (const f of ['config.json', 'preprocessor_config.json', 'tokenizer.json']) fs.copyFileSync(path.join(src, f), path.join(dir, f));
    await importClip(dir, 'tiny-export');
    await expectSameEmbeddingsAsTinyHf('tiny-export');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
