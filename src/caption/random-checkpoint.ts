import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { writeSafetensors, type SafetensorsInput } from '../models/safetensors.js';
import { gaussianArray, RANDOM_GENERATOR_TAG } from '../clip/random-checkpoint.js';
import { CAPTION_CONFIG_FILE, CAPTION_PREPROCESSOR_FILE, toHfCaptionConfigJson, toHfCaptionPreprocessorJson, type CaptionConfig } from './config.js';
import { CAPTION_WEIGHTS_FILE, captionTensorSpecs } from './weights.js';
import { writeCaptionTokenizerFiles } from './tokenizer-files.js';

/**
 * Deterministic random captioner checkpoints in the Hugging Face layout, for tests and benchmarks:
 * transformers loads them as they are (the parity fixtures are made that way), and the engine's own
 * tests regenerate the identical file from the seed instead of storing it.
 *
 * Scales keep every sublayer's output near unit size whatever the width: matrices (and the patch
 * convolution) N(0, 1/fan_in), embedding tables N(0, 1/width). transformers' own init (N(0, 0.02)
 * everywhere) would leave the image's contribution through attention so small that every image got
 * the same caption, and the tiny models' logits almost flat. Biases and LayerNorm parameters are
 * randomised too (around 0 and 1) so that a mapping that mixes them up cannot go unnoticed. The end
 * token's LM-head bias is raised by END_TOKEN_BIAS, so that random captions end at varying lengths
 * (exercising end-of-caption handling, beam finishing and min_length) rather than always at max_length,
 * and a few frequent words' by COMMON_WORD_BIAS, so that captions repeat themselves as weak captioners
 * do (exercising no_repeat_ngram_size and repetition_penalty).
 */

export const END_TOKEN_BIAS = 3;
export const COMMON_WORD_BIAS = 3;
/** bert-base-uncased ids (both architectures' vocabulary) of "a", "the", "of", "and", "in", "on", "with", ",". */
const COMMON_WORD_IDS = [1037, 1996, 1997, 1998, 1999, 2006, 2007, 1010];

const LAYER_NORM = /(LayerNorm|layer_norm\d|layrnorm|layernorm|visual_projection\.1)\.(weight|bias)$/;
const EMBEDDING = /(embeddings?\.weight|class_embedding|position_embedding)$/;
const LM_HEAD_BIAS = new Set(['text_decoder.cls.predictions.bias', 'output.bias']);

function checkSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${seed}`);
}

/** The tensors of a random checkpoint for `config`, each drawn from its own stream (seed, tensor name). */
export function randomCaptionTensors(config: CaptionConfig, seed: number): SafetensorsInput[] {
  checkSeed(seed);
  return captionTensorSpecs(config).map(({ name, shape }) => {
    const count = shape.reduce((a, d) => a * d, 1);
    const ln = LAYER_NORM.exec(name);
    let data: Float32Array;
    if (ln) data = ln[2] === 'weight' ? gaussianArray(seed, name, count, 0.1, 1) : gaussianArray(seed, name, count, 0.05);
    else if (name.endsWith('.bias')) data = gaussianArray(seed, name, count, 0.02);
    else if (EMBEDDING.test(name)) data = gaussianArray(seed, name, count, shape[shape.length - 1]! ** -0.5);
    else data = gaussianArray(seed, name, count, (count / shape[0]!) ** -0.5);
    if (LM_HEAD_BIAS.has(name)) {
      data[config.tokens.eos] = data[config.tokens.eos]! + END_TOKEN_BIAS;
      for (const id of COMMON_WORD_IDS) if (id < count) data[id] = data[id]! + COMMON_WORD_BIAS;
    }
    return { name, dtype: 'F32' as const, shape, data };
  });
}

/**
 * Write a random checkpoint for `config` into `dir` (created if needed): config.json,
 * preprocessor_config.json, model.safetensors and the tokenizer files (made from the bert-base-uncased
 * WordPiece tokenizer in `bertTokenizerDir`), as a Hugging Face captioner folder has them.
 */
export async function writeRandomCaptionCheckpoint(dir: string, config: CaptionConfig, seed: number, bertTokenizerDir: string): Promise<string[]> {
  checkSeed(seed);
  try {
    await fs.mkdir(dir, { recursive: true });
  } catch (err) {
    throw new Img2PromptError(dir, `cannot create directory: ${errorMessage(err)}`, { code: 'OUTPUT_FAILED', cause: err });
  }
  const metadata = { format: 'pt', generator: `${RANDOM_GENERATOR_TAG} (captioner ${config.arch})`, seed: String(seed) };
  await writeSafetensors(path.join(dir, CAPTION_WEIGHTS_FILE), randomCaptionTensors(config, seed), metadata);
  const tokenizerFiles = await writeCaptionTokenizerFiles(dir, config, bertTokenizerDir);
  await writeFileAtomic(path.join(dir, CAPTION_PREPROCESSOR_FILE), JSON.stringify(toHfCaptionPreprocessorJson(config), null, 2) + '\n');
  // Config last: a folder with a config always has complete weights next to it.
  await writeFileAtomic(path.join(dir, CAPTION_CONFIG_FILE), JSON.stringify(toHfCaptionConfigJson(config), null, 2) + '\n');
  return [CAPTION_CONFIG_FILE, CAPTION_PREPROCESSOR_FILE, CAPTION_WEIGHTS_FILE, ...tokenizerFiles].sort();
}
