import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session, tensor } from '../src/runtime/session.js';
import { readSafetensorsSync, tensorToFloat32 } from '../src/models/safetensors.js';
import { tinyClipConfig, type ClipConfig } from '../src/clip/config.js';
import { ClipTokenizer, padClipBatch, OPEN_CLIP_PAD_ID, HF_CLIP_PAD_ID } from '../src/clip/tokenizer.js';
import { loadClipCheckpoint, type ClipLayout } from '../src/clip/weights.js';
import { gaussianArray, writeRandomCheckpoint } from '../src/clip/random-checkpoint.js';
import { buildClipVisionGraph } from '../models/graph/clip-vision.js';
import { buildClipTextGraph } from '../models/graph/clip-text.js';
import { assertFitsProtobuf } from '../models/graph/transformer-blocks.js';
import type { GraphBuilder } from '../models/graph/onnx-builder.js';
import {
  erf,
  referenceImageEmbeds,
  referenceTextEmbeds,
  refCheckpointFromTensors,
  type RefArch,
  type RefCheckpoint,
} from './reference/clip-reference.js';
import { asset, tempDir } from './helpers/paths.js';
import { maxRelativeError } from './reference/compare.js';

const TOKENIZER_DIR = asset('tokenizers', 'clip', 'hf-openai-clip-vit-large-patch14');

const PROMPTS = [
  'a photo of a cat',
  'an oil painting of a lighthouse in a storm, dramatic lighting, trending on artstation',
  'A Portrait of an old man, by Rembrandt!',
  '',
  // Longer than the context: truncated to 77 with the EOT kept last.
  Array.from({ length: 60 }, (_, i) => `word${i}`).join(' '),
];

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function archOf(c: ClipConfig): RefArch {
  return {
    vision: { heads: c.vision.heads, act: c.vision.act, lnEps: c.vision.lnEps },
    text: { heads: c.text.heads, act: c.text.act, lnEps: c.text.lnEps, pooling: c.text.eotPooling, eotId: c.text.eotTokenId },
  };
}

function referenceCheckpoint(file: string, layout: ClipLayout): RefCheckpoint {
  const st = readSafetensorsSync(file);
  return refCheckpointFromTensors(
    [...st.tensors.values()].map((t) => ({ name: t.name, shape: t.shape, values: tensorToFloat32(t) })),
    layout,
  );
}

interface Towers {
  config: ClipConfig;
  vision: Session;
  text: Session;
  ref: RefCheckpoint;
}

async function openTowers(config: ClipConfig, layout: ClipLayout, seed: number): Promise<Towers> {
  const dir = tempDir('img2prompt-clip-graph-');
  const files = await writeRandomCheckpoint(dir, config, seed, layout);
  const ck = await loadClipCheckpoint(dir);
  expect(ck.layout).toBe(layout);
  const opts = { providers: ['cpu' as const], intraOpThreads: 2 };
  const vision = await Session.open(buildClipVisionGraph(ck.config, ck.weights), opts);
  const text = await Session.open(buildClipTextGraph(ck.config, ck.weights), opts);
  const ref = referenceCheckpoint(files.weightsFile, layout);
  fs.rmSync(dir, { recursive: true, force: true });
  return { config: ck.config, vision, text, ref };
}

/** Normalised-looking pixels: N(0, 1) per channel value, like a mean/std-normalised image. */
function randomPixels(config: ClipConfig, batch: number, seed: number): Float32Array {
  const n = config.vision.imageSize;
  return gaussianArray(seed, 'test.pixels', batch * 3 * n * n, 1);
}

async function imageEmbeds(t: Towers, pixels: Float32Array, batch: number) {
  const n = t.config.vision.imageSize;
  return t.vision.run({ pixel_values: tensor('float32', pixels, [batch, 3, n, n]) });
}

async function textEmbeds(t: Towers, ids: BigInt64Array, batch: number, seqLen: number) {
  return t.text.run({ input_ids: tensor('int64', ids, [batch, seqLen]) });
}

let tokenizer: ClipTokenizer;
beforeAll(async () => {
  tokenizer = await ClipTokenizer.load(TOKENIZER_DIR, { kind: 'open_clip' });
});

const errors: string[] = [];
afterAll(() => {
  if (errors.length) console.log(`CLIP graph vs float64 reference (max relative error):\n  ${errors.join('\n  ')}`);
});

it('reference erf matches known values', () => {
  // Values of erf from Abramowitz & Stegun table 7.1 / high-precision computation.
  expect(erf(0)).toBe(0);
  expect(erf(0.5)).toBeCloseTo(0.5204998778130465, 14);
  expect(erf(1)).toBeCloseTo(0.8427007929497149, 14);
  expect(erf(-2)).toBeCloseTo(-0.9953222650189527, 14);
  expect(erf(3)).toBeCloseTo(0.9999779095030014, 14);
  expect(erf(4.5)).toBeCloseTo(0.9999999998033839, 14);
});

const CASES: { name: string; layout: ClipLayout; config: () => ClipConfig }[] = [
  { name: 'tiny quick_gelu open_clip', layout: 'open_clip', config: () => tinyClipConfig('quick_gelu') },
  { name: 'tiny gelu open_clip', layout: 'open_clip', config: () => tinyClipConfig('gelu') },
  { name: 'tiny quick_gelu hf', layout: 'hf', config: () => tinyClipConfig('quick_gelu') },
  { name: 'tiny gelu hf', layout: 'hf', config: () => tinyClipConfig('gelu') },
  {
    // Head size 64 as in real CLIPs, a non-4 MLP ratio, unequal towers, HF's first-EOT pooling.
    name: 'head-64 gelu/quick_gelu hf first-eot',
    layout: 'hf',
    config: () => {
      const c = tinyClipConfig('gelu');
      c.embedDim = 48;
      c.vision = { ...c.vision, imageSize: 48, patchSize: 16, width: 128, heads: 2, layers: 3, intermediate: 320 };
      c.text = { ...c.text, width: 128, heads: 2, layers: 3, intermediate: 192, act: 'quick_gelu', eotPooling: 'first-eot' };
      return c;
    },
  },
];

describe.each(CASES)('$name', ({ name, layout, config }) => {
  let t: Towers;
  beforeAll(async () => {
    t = await openTowers(config(), layout, 1234);
  });
  afterAll(() => {
    t.vision.close();
    t.text.close();
  });

  it('vision graph matches the float64 reference', async () => {
    const batch = 3;
    const pixels = randomPixels(t.config, batch, 7);
    const out = await imageEmbeds(t, pixels, batch);
    const E = t.config.embedDim;
    expect(out.image_embeds!.dims).toEqual([batch, E]);
    expect(out.image_embeds_raw!.dims).toEqual([batch, E]);
    const ref = referenceImageEmbeds(t.ref, archOf(t.config), pixels, batch);
    const errUnit = maxRelativeError(out.image_embeds!.data as Float32Array, ref.unit, E);
    const errRaw = maxRelativeError(out.image_embeds_raw!.data as Float32Array, ref.raw, E);
    errors.push(`${name} vision: normalised ${errUnit.toExponential(2)}, raw ${errRaw.toExponential(2)}`);
    expect(errUnit).toBeLessThan(1e-4);
    expect(errRaw).toBeLessThan(1e-4);
    // Distinct images give distinct embeddings (the graph is not degenerate).
    const u = out.image_embeds!.data as Float32Array;
    let dot = 0;
    for (let i = 0; i < E; i++) dot += u[i]! * u[E + i]!;
    expect(dot).toBeLessThan(0.999);
  });

  it('text graph matches the float64 reference on 77-padded tokens', async () => {
    const seqs = PROMPTS.map((p) => tokenizer.encode(p));
    expect(Math.max(...seqs.map((s) => s.length))).toBe(77);
    // Pad the way each convention does; the first-eot case uses HF's EOT padding.
    const padId = t.config.text.eotPooling === 'first-eot' ? HF_CLIP_PAD_ID : OPEN_CLIP_PAD_ID;
    const batch = padClipBatch(seqs, 77, padId);
    const out = await textEmbeds(t, batch.inputIds, batch.batch, batch.seqLen);
    const E = t.config.embedDim;
    expect(out.text_embeds!.dims).toEqual([seqs.length, E]);
    const padded = seqs.map((s) => [...s, ...new Array<number>(77 - s.length).fill(padId)]);
    const ref = referenceTextEmbeds(t.ref, archOf(t.config), padded);
    const errUnit = maxRelativeError(out.text_embeds!.data as Float32Array, ref.unit, E);
    const errRaw = maxRelativeError(out.text_embeds_raw!.data as Float32Array, ref.raw, E);
    errors.push(`${name} text: normalised ${errUnit.toExponential(2)}, raw ${errRaw.toExponential(2)}`);
    expect(errUnit).toBeLessThan(1e-4);
    expect(errRaw).toBeLessThan(1e-4);
  });

  it('text embeddings do not depend on the padding length or pad id', async () => {
    const seqs = PROMPTS.slice(0, 3).map((p) => tokenizer.encode(p));
    const full = padClipBatch(seqs, 77, OPEN_CLIP_PAD_ID);
    const dynamic = padClipBatch(seqs, 'longest', OPEN_CLIP_PAD_ID);
    const hfPad = padClipBatch(seqs, 'longest', HF_CLIP_PAD_ID);
    expect(dynamic.seqLen).toBeLessThan(77);
    const a = (await textEmbeds(t, full.inputIds, full.batch, full.seqLen)).text_embeds!.data as Float32Array;
    const b = (await textEmbeds(t, dynamic.inputIds, dynamic.batch, dynamic.seqLen)).text_embeds!.data as Float32Array;
    const c = (await textEmbeds(t, hfPad.inputIds, hfPad.batch, hfPad.seqLen)).text_embeds!.data as Float32Array;
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-5);
    expect(maxAbsDiff(a, c)).toBeLessThan(1e-5);
    // And each sequence alone, without any padding.
    const E = t.config.embedDim;
    for (let r = 0; r < seqs.length; r++) {
      const one = padClipBatch([seqs[r]!], 'longest', OPEN_CLIP_PAD_ID);
      const alone = (await textEmbeds(t, one.inputIds, 1, one.seqLen)).text_embeds!.data as Float32Array;
      expect(maxAbsDiff(alone, a.subarray(r * E, (r + 1) * E))).toBeLessThan(1e-5);
    }
  });
});

describe('layouts', () => {
  it('the same seed gives the same model in either layout', async () => {
    const cfg = tinyClipConfig('quick_gelu');
    const oc = await openTowers(cfg, 'open_clip', 99);
    const hf = await openTowers(cfg, 'hf', 99);
    try {
      const pixels = randomPixels(cfg, 2, 3);
      const a = (await imageEmbeds(oc, pixels, 2)).image_embeds_raw!.data as Float32Array;
      const b = (await imageEmbeds(hf, pixels, 2)).image_embeds_raw!.data as Float32Array;
      expect(maxAbsDiff(a, b)).toBe(0);
      const ids = tokenizer.encodeBatch(['a photo of a dog', 'a cat'], { length: 'longest' });
      const ta = (await textEmbeds(oc, ids.inputIds, ids.batch, ids.seqLen)).text_embeds_raw!.data as Float32Array;
      const tb = (await textEmbeds(hf, ids.inputIds, ids.batch, ids.seqLen)).text_embeds_raw!.data as Float32Array;
      expect(maxAbsDiff(ta, tb)).toBe(0);
    } finally {
      for (const s of [oc.vision, oc.text, hf.vision, hf.text]) s.close();
    }
  });

  it('graph signatures are as documented', async () => {
    const t = await openTowers(tinyClipConfig('gelu'), 'open_clip', 5);
    try {
      expect(t.vision.inputs.map((i) => [i.name, i.type, i.dims])).toEqual([['pixel_values', 'float32', ['batch', 3, 32, 32]]]);
      expect(t.vision.outputs.map((o) => [o.name, o.type, o.dims])).toEqual([
        ['image_embeds', 'float32', ['batch', 32]],
        ['image_embeds_raw', 'float32', ['batch', 32]],
      ]);
      expect(t.text.inputs.map((i) => [i.name, i.type, i.dims])).toEqual([['input_ids', 'int64', ['batch', 'sequence']]]);
      expect(t.text.outputs.map((o) => o.name)).toEqual(['text_embeds', 'text_embeds_raw']);
      // Normalised outputs have unit length.
      const out = await imageEmbeds(t, randomPixels(t.config, 1, 1), 1);
      const u = out.image_embeds!.data as Float32Array;
      expect(Math.hypot(...u)).toBeCloseTo(1, 6);
    } finally {
      t.vision.close();
      t.text.close();
    }
  });
});

it('refuses graphs whose weights exceed the 2 GiB protobuf limit (ViT-H-14 vision in float32)', () => {
  // ViT-H-14's vision tower has ~632M parameters, 2.35 GiB as float32.
  const huge = { weightBytes: 632e6 * 4 } as GraphBuilder;
  expect(() => assertFitsProtobuf(huge, 'CLIP vision graph')).toThrow(/2\.35 GiB of float32 weights exceed the 2 GiB limit/);
  expect(() => assertFitsProtobuf({ weightBytes: 1.2e9 } as GraphBuilder, 'x')).not.toThrow();
});
