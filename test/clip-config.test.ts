import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  OPENAI_CLIP_MEAN,
  OPENAI_CLIP_STD,
  loadHfClipConfig,
  loadOpenClipConfig,
  parseHfClipConfig,
  parseOpenClipConfig,
  tinyClipConfig,
  toHfClipConfigJson,
  toOpenClipConfigJson,
  toOpenClipHubConfigJson,
  visionTokenCount,
} from '../src/clip/config.js';
import { Img2PromptError } from '../src/util/errors.js';
import { asset, tempDir } from './helpers/paths.js';

const OPEN_CLIP = (name: string) => asset('configs', 'open_clip', `${name}.json`);
const HF_L14 = asset('tokenizers', 'clip', 'hf-openai-clip-vit-large-patch14');

describe('open_clip configs', () => {
  it('ViT-B-32: 12×768 vision (12 heads of 64), 12×512 text, GELU unless told QuickGELU', async () => {
    const c = await loadOpenClipConfig(OPEN_CLIP('ViT-B-32'));
    expect(c.embedDim).toBe(512);
    expect(c.vision).toEqual({ imageSize: 224, patchSize: 32, width: 768, layers: 12, heads: 12, intermediate: 3072, act: 'gelu', lnEps: 1e-5 });
    expect(c.text).toEqual({
      contextLength: 77,
      vocabSize: 49408,
      width: 512,
      layers: 12,
      heads: 8,
      intermediate: 2048,
      act: 'gelu',
      lnEps: 1e-5,
      eotPooling: 'argmax',
      eotTokenId: 49407,
    });
    expect(visionTokenCount(c.vision)).toBe(50);
    expect(c.imageMean).toEqual(OPENAI_CLIP_MEAN);
    expect(c.imageStd).toEqual(OPENAI_CLIP_STD);
    // OpenAI-pretrained weights need the override.
    const q = await loadOpenClipConfig(OPEN_CLIP('ViT-B-32'), { quickGelu: true });
    expect([q.vision.act, q.text.act]).toEqual(['quick_gelu', 'quick_gelu']);
  });

  it('ViT-L-14: 24×1024 vision, patch 14 (257 tokens), 12×768 text', async () => {
    const c = await loadOpenClipConfig(OPEN_CLIP('ViT-L-14'), { quickGelu: true });
    expect(c.embedDim).toBe(768);
    expect(c.vision).toMatchObject({ imageSize: 224, patchSize: 14, width: 1024, layers: 24, heads: 16, intermediate: 4096, act: 'quick_gelu' });
    expect(c.text).toMatchObject({ width: 768, layers: 12, heads: 12, intermediate: 3072, act: 'quick_gelu' });
    expect(visionTokenCount(c.vision)).toBe(257);
  });

  it('ViT-H-14: head_width 80 gives 16 heads; GELU (LAION)', async () => {
    const c = await loadOpenClipConfig(OPEN_CLIP('ViT-H-14'));
    expect(c.embedDim).toBe(1024);
    expect(c.vision).toMatchObject({ width: 1280, layers: 32, heads: 16, intermediate: 5120, patchSize: 14, act: 'gelu' });
    expect(c.text).toMatchObject({ width: 1024, layers: 24, heads: 16, intermediate: 4096, act: 'gelu' });
  });

  it('reads quick_gelu, norm eps and preprocessing from a hub open_clip_config.json', () => {
    const c = parseOpenClipConfig({
      model_cfg: {
        embed_dim: 16,
        quick_gelu: true,
        vision_cfg: { image_size: [32, 32], layers: 1, width: 32, head_width: 16, patch_size: 8, mlp_ratio: 2, norm_kwargs: { eps: 1e-6 } },
        text_cfg: { width: 32, heads: 2, layers: 1 },
      },
      preprocess_cfg: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
    });
    expect(c.vision).toMatchObject({ imageSize: 32, heads: 2, intermediate: 64, act: 'quick_gelu', lnEps: 1e-6 });
    expect(c.text).toMatchObject({ act: 'quick_gelu', lnEps: 1e-5, intermediate: 128 });
    expect(c.imageMean).toEqual([0.5, 0.5, 0.5]);
    expect(c.imageStd).toEqual([0.25, 0.25, 0.25]);
  });

  it('refuses architectures the graphs do not implement, naming the file and key', () => {
    const base = JSON.parse(fs.readFileSync(OPEN_CLIP('ViT-B-32'), 'utf-8'));
    const withVision = (extra: object) => ({ ...base, vision_cfg: { ...base.vision_cfg, ...extra } });
    expect(() => parseOpenClipConfig(withVision({ timm_model_name: 'convnext_base' }), 'x.json')).toThrow(/x\.json: unsupported vision tower: "vision_cfg\.timm_model_name"/);
    expect(() => parseOpenClipConfig(withVision({ attentional_pool: true }), 'x.json')).toThrow(/attentional pooling/);
    expect(() => parseOpenClipConfig({ ...base, text_cfg: { ...base.text_cfg, pool_type: 'last' } }, 'x.json')).toThrow(/text pooling/);
    expect(() => parseOpenClipConfig(withVision({ width: 'big' }), 'x.json')).toThrow(/"vision_cfg\.width" must be a positive integer/);
    expect(() => parseOpenClipConfig(withVision({ patch_size: 30 }), 'x.json')).toThrow(/not a multiple of patch size/);
    expect(() => parseOpenClipConfig({ hello: 1 }, 'x.json')).toThrow(Img2PromptError);
  });
});

describe('Hugging Face configs', () => {
  it('openai/clip-vit-large-patch14: ViT-L/14 towers, QuickGELU, legacy eos id 2 → argmax pooling', async () => {
    const c = await loadHfClipConfig(path.join(HF_L14, 'config.json'), path.join(HF_L14, 'preprocessor_config.json'));
    const fromOpenClip = await loadOpenClipConfig(OPEN_CLIP('ViT-L-14'), { quickGelu: true });
    // The same architecture, whichever way it is described.
    expect(c).toEqual(fromOpenClip);
    expect(c.text.eotPooling).toBe('argmax');
  });

  it('takes transformers defaults for missing keys and first-EOT pooling for a real eos id', () => {
    const c = parseHfClipConfig({ model_type: 'clip', text_config: { eos_token_id: 49407, hidden_act: 'gelu' }, vision_config: {} });
    expect(c.embedDim).toBe(512);
    expect(c.vision).toMatchObject({ width: 768, layers: 12, heads: 12, patchSize: 32, imageSize: 224, act: 'quick_gelu' });
    expect(c.text).toMatchObject({ width: 512, heads: 8, intermediate: 2048, act: 'gelu', eotPooling: 'first-eot', eotTokenId: 49407 });
    expect(() => parseHfClipConfig({ text_config: { hidden_act: 'relu' }, vision_config: {} }, 'c.json')).toThrow(/c\.json: unsupported hidden_act "relu"/);
    expect(() => parseHfClipConfig({ model_type: 'siglip', text_config: {}, vision_config: {} }, 'c.json')).toThrow(/model_type/);
  });
});

describe('config round trips', () => {
  for (const act of ['quick_gelu', 'gelu'] as const) {
    it(`tiny ${act} survives open_clip and HF JSON`, () => {
      const c = tinyClipConfig(act);
      expect(parseOpenClipConfig(toOpenClipConfigJson(c))).toEqual(c);
      expect(parseOpenClipConfig(toOpenClipHubConfigJson(c))).toEqual(c);
      expect(parseHfClipConfig(toHfClipConfigJson(c))).toEqual(c);
      const firstEot = { ...c, text: { ...c.text, eotPooling: 'first-eot' as const } };
      expect(parseHfClipConfig(toHfClipConfigJson(firstEot))).toEqual(firstEot);
    });
  }

  it('the real configs survive both JSON forms', async () => {
    for (const name of ['ViT-B-32', 'ViT-L-14', 'ViT-H-14']) {
      const c = await loadOpenClipConfig(OPEN_CLIP(name));
      expect(parseOpenClipConfig(toOpenClipConfigJson(c))).toEqual(c);
      expect(parseHfClipConfig(toHfClipConfigJson(c))).toEqual(c);
    }
  });

  it('reports unreadable files by path', async () => {
    const dir = tempDir('img2prompt-clip-cfg-');
    try {
      const bad = path.join(dir, 'broken.json');
      fs.writeFileSync(bad, '{not json');
      await expect(loadOpenClipConfig(bad)).rejects.toThrow(`${bad}: corrupt JSON`);
      await expect(loadHfClipConfig(path.join(dir, 'missing.json'))).rejects.toThrow(/missing\.json: cannot read/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
