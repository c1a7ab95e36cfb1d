import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { writeSafetensors } from '../models/safetensors.js';
import { toHfClipConfigJson, toHfPreprocessorJson, toOpenClipHubConfigJson, visionTokenCount, type ClipConfig } from './config.js';
import { CLIP_CHECKPOINT_FILES } from './checkpoint-files.js';
import { clipWeightsToTensors, type ClipBlockWeights, type ClipLayout, type ClipWeights, type LayerNormWeights } from './weights.js';

/**
 * Deterministic random CLIP weights of any size, for tests and for exercising the engine end to end
 * without real weights. Scales follow open_clip's `init_parameters` so activations keep realistic
 * magnitudes through deep towers; unlike a fresh open_clip model, biases and layer-norm parameters
 * are randomised too (around 0 and 1), so a mapping that mixes them up cannot go unnoticed.
 *
 * Every tensor draws from its own stream, seeded from (seed, tensor role), so the values do not
 * depend on the layout the checkpoint is written in: the same seed gives the same model either way.
 */

/** splitmix32: spreads a 32-bit seed over the state of the main generator. */
function splitmix32(state: number): () => number {
  let s = state >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** xoshiro128**: fast, good-quality 32-bit generator. */
class Xoshiro128 {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    const sm = splitmix32(seed);
    this.a = sm();
    this.b = sm();
    this.c = sm();
    this.d = sm();
    if ((this.a | this.b | this.c | this.d) === 0) this.d = 1;
  }

  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** Uniform in (0, 1): never 0, so log() is safe. */
  nextUnit(): number {
    return (this.nextU32() + 0.5) / 4294967296;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** FNV-1a of the seed and a role name: an independent stream per tensor. */
function streamSeed(seed: number, role: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  h = Math.imul(h, 0x01000193);
  h ^= Math.floor(seed / 4294967296) >>> 0;
  for (let i = 0; i < role.length; i++) {
    h ^= role.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** `count` samples of N(mean, std²) by Box–Muller, from the stream of `role`. */
export function gaussianArray(seed: number, role: string, count: number, std: number, mean = 0): Float32Array {
  const rng = new Xoshiro128(streamSeed(seed, role));
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const r = Math.sqrt(-2 * Math.log(rng.nextUnit())) * std;
    const theta = 2 * Math.PI * rng.nextUnit();
    out[i] = mean + r * Math.cos(theta);
    if (i + 1 < count) out[i + 1] = mean + r * Math.sin(theta);
  }
  return out;
}

function layerNorm(seed: number, role: string, width: number): LayerNormWeights {
  return { weight: gaussianArray(seed, `${role}.weight`, width, 0.1, 1), bias: gaussianArray(seed, `${role}.bias`, width, 0.05) };
}

function block(seed: number, role: string, width: number, inter: number, layers: number): ClipBlockWeights {
  // open_clip's init: attention and MLP-in at width^-½, residual outputs shrunk by (2·layers)^-½.
  const attnStd = width ** -0.5;
  const projStd = width ** -0.5 * (2 * layers) ** -0.5;
  const fcStd = (2 * width) ** -0.5;
  const biasStd = 0.02;
  return {
    ln1: layerNorm(seed, `${role}.ln_1`, width),
    qkvWeight: gaussianArray(seed, `${role}.attn.in_proj_weight`, 3 * width * width, attnStd),
    qkvBias: gaussianArray(seed, `${role}.attn.in_proj_bias`, 3 * width, biasStd),
    outWeight: gaussianArray(seed, `${role}.attn.out_proj.weight`, width * width, projStd),
    outBias: gaussianArray(seed, `${role}.attn.out_proj.bias`, width, biasStd),
    ln2: layerNorm(seed, `${role}.ln_2`, width),
    fcWeight: gaussianArray(seed, `${role}.mlp.c_fc.weight`, inter * width, fcStd),
    fcBias: gaussianArray(seed, `${role}.mlp.c_fc.bias`, inter, biasStd),
    projWeight: gaussianArray(seed, `${role}.mlp.c_proj.weight`, width * inter, projStd),
    projBias: gaussianArray(seed, `${role}.mlp.c_proj.bias`, width, biasStd),
  };
}

function checkSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${seed}`);
}

/** Random canonical weights for `config`, identical for identical (config, seed). */
export function randomClipWeights(config: ClipConfig, seed: number): ClipWeights {
  checkSeed(seed);
  const v = config.vision;
  const t = config.text;
  const E = config.embedDim;
  const vScale = v.width ** -0.5;
  return {
    vision: {
      // Pixels arrive normalised to about unit variance; this keeps patch features near unit scale.
      patchWeight: gaussianArray(seed, 'visual.conv1', v.width * 3 * v.patchSize * v.patchSize, (3 * v.patchSize * v.patchSize) ** -0.5),
      classEmbedding: gaussianArray(seed, 'visual.class_embedding', v.width, vScale),
      positionalEmbedding: gaussianArray(seed, 'visual.positional_embedding', visionTokenCount(v) * v.width, vScale),
      lnPre: layerNorm(seed, 'visual.ln_pre', v.width),
      blocks: Array.from({ length: v.layers }, (_, i) => block(seed, `visual.resblocks.${i}`, v.width, v.intermediate, v.layers)),
      lnPost: layerNorm(seed, 'visual.ln_post', v.width),
      projection: gaussianArray(seed, 'visual.proj', v.width * E, vScale),
    },
    text: {
      tokenEmbedding: gaussianArray(seed, 'token_embedding', t.vocabSize * t.width, 0.02),
      positionalEmbedding: gaussianArray(seed, 'positional_embedding', t.contextLength * t.width, 0.01),
      blocks: Array.from({ length: t.layers }, (_, i) => block(seed, `text.resblocks.${i}`, t.width, t.intermediate, t.layers)),
      lnFinal: layerNorm(seed, 'ln_final', t.width),
      projection: gaussianArray(seed, 'text_projection', t.width * E, t.width ** -0.5),
    },
    // CLIP's initial temperature 1/0.07, rounded to float32 as a checkpoint stores it.
    logitScale: Math.fround(Math.log(1 / 0.07)),
  };
}

/** Written into the safetensors metadata of every random checkpoint, so it is never mistaken for a real one. */
export const RANDOM_GENERATOR_TAG = 'img2prompt random CLIP checkpoint';

export interface RandomCheckpointFiles {
  dir: string;
  layout: ClipLayout;
  weightsFile: string;
  configFile: string;
}

/**
 * Write a random checkpoint for `config` into `dir` (created if needed), in the file layout real
 * checkpoints of that kind use: open_clip → open_clip_config.json + open_clip_model.safetensors;
 * hf → config.json + preprocessor_config.json + model.safetensors. `loadClipCheckpoint(dir)` reads it back.
 */
export async function writeRandomCheckpoint(dir: string, config: ClipConfig, seed: number, layout: ClipLayout): Promise<RandomCheckpointFiles> {
  checkSeed(seed);
  try {
    await fs.mkdir(dir, { recursive: true });
  } catch (err) {
    throw new Img2PromptError(dir, `cannot create directory: ${errorMessage(err)}`, { code: 'OUTPUT_FAILED', cause: err });
  }
  const weights = randomClipWeights(config, seed);
  const metadata = { format: 'pt', generator: RANDOM_GENERATOR_TAG, seed: String(seed) };
  const names = CLIP_CHECKPOINT_FILES[layout];
  const weightsFile = path.join(dir, names.weights);
  const configFile = path.join(dir, names.config);
  // Config last: a directory with a config always has complete weights next to it.
  await writeSafetensors(weightsFile, clipWeightsToTensors(config, weights, layout), metadata);
  if (layout === 'open_clip') {
    await writeFileAtomic(configFile, JSON.stringify(toOpenClipHubConfigJson(config), null, 2) + '\n');
  } else {
    await writeFileAtomic(path.join(dir, CLIP_CHECKPOINT_FILES.hf.preprocessor), JSON.stringify(toHfPreprocessorJson(config), null, 2) + '\n');
    await writeFileAtomic(configFile, JSON.stringify(toHfClipConfigJson(config), null, 2) + '\n');
  }
  return { dir, layout, weightsFile, configFile };
}
