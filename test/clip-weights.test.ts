import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadOpenClipConfig, loadHfClipConfig, tinyClipConfig } from '../src/clip/config.js';
import { CLIP_CHECKPOINT_FILES } from '../src/clip/checkpoint-files.js';
import {
  clipTensorSpecs,
  clipWeightsFromTensors,
  clipWeightsToTensors,
  detectClipLayout,
  loadClipCheckpoint,
  type ClipLayout,
} from '../src/clip/weights.js';
import { gaussianArray, randomClipWeights, writeRandomCheckpoint } from '../src/clip/random-checkpoint.js';
import { readSafetensorsSync, writeSafetensors } from '../src/models/safetensors.js';
import { Img2PromptError } from '../src/util/errors.js';
import { asset, tempDir } from './helpers/paths.js';

const shapes = (layout: ClipLayout, cfg = tinyClipConfig()) => new Map(clipTensorSpecs(cfg, layout).map((s) => [s.name, s.shape]));

/**
 * Deep equality that compares typed arrays by their bytes: vitest's toEqual walks millions of
 * elements one by one, which takes seconds per token-embedding table.
 */
function expectSameWeights(a: unknown, b: unknown, where = 'weights'): void {
  if (ArrayBuffer.isView(a) && ArrayBuffer.isView(b)) {
    expect(a.constructor, where).toBe(b.constructor);
    const ba = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    const bb = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    expect(ba.equals(bb), `${where} differs`).toBe(true);
    return;
  }
  if (a !== null && typeof a === 'object' && b !== null && typeof b === 'object') {
    expect(Object.keys(a).sort(), where).toEqual(Object.keys(b).sort());
    for (const k of Object.keys(a)) expectSameWeights((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${where}.${k}`);
    return;
  }
  expect(a, where).toBe(b);
}

function rows(m: Float32Array, from: number, to: number, cols: number): Float32Array {
  return m.subarray(from * cols, to * cols);
}

function transpose(m: Float32Array, r: number, c: number): Float32Array {
  const out = new Float32Array(m.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = m[i * c + j]!;
  return out;
}

describe('tensor names', () => {
  it('open_clip ViT-B-32 has the names and shapes of the OpenAI checkpoint', async () => {
    const s = shapes('open_clip', await loadOpenClipConfig(asset('configs', 'open_clip', 'ViT-B-32.json')));
    expect(s.get('visual.conv1.weight')).toEqual([768, 3, 32, 32]);
    expect(s.get('visual.class_embedding')).toEqual([768]);
    expect(s.get('visual.positional_embedding')).toEqual([50, 768]);
    expect(s.get('visual.ln_pre.weight')).toEqual([768]);
    expect(s.get('visual.transformer.resblocks.11.attn.in_proj_weight')).toEqual([2304, 768]);
    expect(s.get('visual.transformer.resblocks.11.attn.out_proj.bias')).toEqual([768]);
    expect(s.get('visual.transformer.resblocks.0.mlp.c_fc.weight')).toEqual([3072, 768]);
    expect(s.get('visual.transformer.resblocks.0.mlp.c_proj.weight')).toEqual([768, 3072]);
    expect(s.get('visual.ln_post.bias')).toEqual([768]);
    expect(s.get('visual.proj')).toEqual([768, 512]);
    expect(s.get('token_embedding.weight')).toEqual([49408, 512]);
    expect(s.get('positional_embedding')).toEqual([77, 512]);
    expect(s.get('transformer.resblocks.11.ln_2.weight')).toEqual([512]);
    expect(s.get('ln_final.weight')).toEqual([512]);
    expect(s.get('text_projection')).toEqual([512, 512]);
    expect(s.get('logit_scale')).toEqual([]);
    expect(s.has('visual.transformer.resblocks.12.ln_1.weight')).toBe(false);
    // 5 + 12·12 + 3 vision, 2 + 12·12 + 3 text, logit_scale.
    expect(s.size).toBe(152 + 149 + 1);
  });

  it('Hugging Face ViT-L/14 has CLIPModel names: split q/k/v, [embed, width] projections', async () => {
    const dir = asset('tokenizers', 'clip', 'hf-openai-clip-vit-large-patch14');
    const s = shapes('hf', await loadHfClipConfig(path.join(dir, 'config.json')));
    expect(s.get('vision_model.embeddings.patch_embedding.weight')).toEqual([1024, 3, 14, 14]);
    expect(s.get('vision_model.embeddings.class_embedding')).toEqual([1024]);
    expect(s.get('vision_model.embeddings.position_embedding.weight')).toEqual([257, 1024]);
    expect(s.get('vision_model.pre_layrnorm.weight')).toEqual([1024]);
    expect(s.get('vision_model.encoder.layers.23.self_attn.k_proj.weight')).toEqual([1024, 1024]);
    expect(s.get('vision_model.encoder.layers.23.self_attn.v_proj.bias')).toEqual([1024]);
    expect(s.get('vision_model.encoder.layers.23.layer_norm2.bias')).toEqual([1024]);
    expect(s.get('vision_model.encoder.layers.23.mlp.fc1.weight')).toEqual([4096, 1024]);
    expect(s.get('vision_model.encoder.layers.23.mlp.fc2.weight')).toEqual([1024, 4096]);
    expect(s.get('vision_model.post_layernorm.weight')).toEqual([1024]);
    expect(s.get('visual_projection.weight')).toEqual([768, 1024]);
    expect(s.get('text_model.embeddings.token_embedding.weight')).toEqual([49408, 768]);
    expect(s.get('text_model.embeddings.position_embedding.weight')).toEqual([77, 768]);
    expect(s.get('text_model.encoder.layers.11.self_attn.q_proj.weight')).toEqual([768, 768]);
    expect(s.get('text_model.final_layer_norm.weight')).toEqual([768]);
    expect(s.get('text_projection.weight')).toEqual([768, 768]);
    expect(s.has('visual_projection.bias')).toBe(false);
  });

  it('detects the layout from the names', () => {
    expect(detectClipLayout(shapes('open_clip').keys())).toBe('open_clip');
    expect(detectClipLayout(shapes('hf').keys())).toBe('hf');
    expect(detectClipLayout(['embeddings.word_embeddings.weight'])).toBeUndefined();
  });
});

describe('layout mapping', () => {
  const cfg = tinyClipConfig('gelu');
  const W = cfg.vision.width;
  const E = cfg.embedDim;
  const weights = randomClipWeights(cfg, 42);

  it('HF q/k/v are the row blocks of the packed in_proj, projections are transposed', () => {
    const hf = new Map(clipWeightsToTensors(cfg, weights, 'hf').map((t) => [t.name, t.data as Float32Array]));
    const oc = new Map(clipWeightsToTensors(cfg, weights, 'open_clip').map((t) => [t.name, t.data as Float32Array]));
    const inProj = oc.get('visual.transformer.resblocks.1.attn.in_proj_weight')!;
    const inBias = oc.get('visual.transformer.resblocks.1.attn.in_proj_bias')!;
    expect(hf.get('vision_model.encoder.layers.1.self_attn.q_proj.weight')).toEqual(rows(inProj, 0, W, W));
    expect(hf.get('vision_model.encoder.layers.1.self_attn.k_proj.weight')).toEqual(rows(inProj, W, 2 * W, W));
    expect(hf.get('vision_model.encoder.layers.1.self_attn.v_proj.weight')).toEqual(rows(inProj, 2 * W, 3 * W, W));
    expect(hf.get('vision_model.encoder.layers.1.self_attn.k_proj.bias')).toEqual(inBias.subarray(W, 2 * W));
    expect(hf.get('visual_projection.weight')).toEqual(transpose(oc.get('visual.proj')!, W, E));
    expect(hf.get('text_projection.weight')).toEqual(transpose(oc.get('text_projection')!, cfg.text.width, E));
    expect(hf.get('vision_model.pre_layrnorm.bias')).toEqual(oc.get('visual.ln_pre.bias'));
    expect(hf.get('text_model.encoder.layers.0.mlp.fc2.weight')).toEqual(oc.get('transformer.resblocks.0.mlp.c_proj.weight'));
  });

  for (const layout of ['open_clip', 'hf'] as const) {
    it(`${layout}: tensors → weights → tensors is lossless`, () => {
      const tensors = new Map(clipWeightsToTensors(cfg, weights, layout).map((t) => [t.name, t]));
      const back = clipWeightsFromTensors(
        cfg,
        layout,
        (name) => {
          const t = tensors.get(name);
          return t && { shape: t.shape, values: () => t.data as Float32Array };
        },
        'mem',
      );
      expectSameWeights(back, weights);
    });
  }
});

describe('checkpoints on disk', () => {
  for (const layout of ['open_clip', 'hf'] as const) {
    it(`${layout}: writeRandomCheckpoint → loadClipCheckpoint gives back config and weights`, async () => {
      const dir = tempDir('img2prompt-clip-ckpt-');
      try {
        const cfg = tinyClipConfig('quick_gelu');
        const files = await writeRandomCheckpoint(dir, cfg, 7, layout);
        expect(path.basename(files.weightsFile)).toBe(CLIP_CHECKPOINT_FILES[layout].weights);
        const names = fs.readdirSync(dir).sort();
        expect(names).toEqual(
          layout === 'open_clip' ? ['open_clip_config.json', 'open_clip_model.safetensors'] : ['config.json', 'model.safetensors', 'preprocessor_config.json'],
        );
        const ck = await loadClipCheckpoint(dir);
        expect(ck.layout).toBe(layout);
        expect(ck.config).toEqual(cfg);
        expectSameWeights(ck.weights, randomClipWeights(cfg, 7));
        expect(readSafetensorsSync(files.weightsFile).metadata.seed).toBe('7');
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('names the file and tensor when a tensor is missing or mis-shaped', async () => {
    const dir = tempDir('img2prompt-clip-ckpt-');
    try {
      const cfg = tinyClipConfig();
      const tensors = clipWeightsToTensors(cfg, randomClipWeights(cfg, 1), 'open_clip');
      const file = path.join(dir, 'open_clip_model.safetensors');
      await writeSafetensors(file, tensors.filter((t) => t.name !== 'visual.ln_post.bias'));
      await expect(loadClipCheckpoint(dir, { config: cfg })).rejects.toThrow(`${file}: missing tensor "visual.ln_post.bias" (open_clip layout)`);
      await writeSafetensors(file, tensors);
      const wider = { ...cfg, vision: { ...cfg.vision, width: 128, heads: 4 } };
      await expect(loadClipCheckpoint(dir, { config: wider })).rejects.toThrow(/tensor "visual\.conv1\.weight" has shape \[64,3,8,8\], the config needs \[128,3,8,8\]/);
      await expect(loadClipCheckpoint(dir)).rejects.toThrow(/open_clip_config\.json: missing/);
      await writeSafetensors(file, [{ name: 'x', dtype: 'F32', shape: [1], data: new Float32Array(1) }]);
      await expect(loadClipCheckpoint(dir)).rejects.toThrow(/not a CLIP checkpoint/);
      fs.rmSync(file);
      await expect(loadClipCheckpoint(dir)).rejects.toThrow(Img2PromptError);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('random weights', () => {
  it('are deterministic per seed, with one stream per tensor role', () => {
    const cfg = tinyClipConfig();
    expectSameWeights(randomClipWeights(cfg, 3), randomClipWeights(cfg, 3));
    expect(randomClipWeights(cfg, 3).vision.patchWeight[0]).not.toBe(randomClipWeights(cfg, 4).vision.patchWeight[0]);
    // Streams are per role: two roles of one seed are unrelated, one role repeats exactly.
    expect(gaussianArray(1, 'a', 8, 1)).toEqual(gaussianArray(1, 'a', 8, 1));
    expect(gaussianArray(1, 'a', 8, 1)).not.toEqual(gaussianArray(1, 'b', 8, 1));
    expect(() => randomClipWeights(cfg, -1)).toThrow(RangeError);
  });

  it('draw normal samples with the requested mean and spread', () => {
    const x = gaussianArray(11, 'stats', 200_000, 0.02, 1);
    let mean = 0;
    for (const v of x) mean += v;
    mean /= x.length;
    let variance = 0;
    let beyond3 = 0;
    for (const v of x) {
      variance += (v - mean) ** 2;
      if (Math.abs(v - 1) > 3 * 0.02) beyond3++;
    }
    const std = Math.sqrt(variance / x.length);
    expect(mean).toBeCloseTo(1, 3);
    expect(std / 0.02).toBeGreaterThan(0.99);
    expect(std / 0.02).toBeLessThan(1.01);
    // A normal puts 0.27% beyond 3σ.
    expect(beyond3 / x.length).toBeGreaterThan(0.0020);
    expect(beyond3 / x.length).toBeLessThan(0.0034);
  });
});
