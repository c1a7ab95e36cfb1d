import { promises as fs, existsSync } from 'node:fs';
import path from 'node:path';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { readJsonObject } from '../util/json-file.js';
import {
  assertRealWeights, installWith, isPullable, isRandomCheckpoint, readLocalInstallOptions, reservedName, type LocalInstallOptions,
} from '../models/install-local.js';
import { readOptions } from '../util/options.js';
import { captionArchitectureConfig } from './architectures.js';
import { writeRandomCaptionCheckpoint } from './random-checkpoint.js';
import { CAPTION_CONFIG_FILE, CAPTION_PREPROCESSOR_FILE, loadCaptionConfig } from './config.js';
import { CAPTION_WEIGHTS_FILE } from './weights.js';
import { ensureCaptionOnnx } from './onnx-cache.js';
import { findCaptionExport } from './export-files.js';
import { CaptionTokenizer } from './tokenizer.js';

/**
 * Installing captioners into the model cache: seeded random checkpoints of a known architecture (tests
 * and benchmarks) and local Hugging Face folders. Both are checked by opening what a captioner needs
 * (config, tokenizer against the config, weights into graphs) before the folder is swapped in.
 */

/** Files a captioner folder may carry; anything else in an imported folder is left out. */
const CAPTIONER_FILES = [
  CAPTION_CONFIG_FILE, CAPTION_PREPROCESSOR_FILE, CAPTION_WEIGHTS_FILE, 'generation_config.json',
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt',
];

/** Whether `dir` holds a captioner (a config.json whose model_type is one the engine captions with). */
export async function isCaptionerFolder(dir: string): Promise<boolean> {
  const file = path.join(dir, CAPTION_CONFIG_FILE);
  if (!existsSync(file)) return false;
  const json = await readJsonObject(file).catch(() => undefined);
  return json?.model_type === 'blip' || json?.model_type === 'git';
}

async function checkedBuild(dir: string): Promise<void> {
  const files = await ensureCaptionOnnx(dir);
  await CaptionTokenizer.load(dir, files.config);
}

export interface RandomCaptionerOptions {
  arch: string;
  seed: number;
  name: string;
  /** A bert-base-uncased WordPiece tokenizer folder (tokenizer.json, vocab.txt): the MiniLM model's. */
  tokenizerDir: string;
  /** Replace a model already installed under the name. */
  force?: boolean;
}

/** A captioner with random weights of a known architecture, marked random: for tests and benchmarks only. */
export async function installRandomCaptioner(options: RandomCaptionerOptions): Promise<string> {
  const o = readOptions(options, 'installRandomCaptioner()');
  options = {
    arch: o.required('arch', o.string('arch', { nonEmpty: true }), 'a non-empty string'),
    seed: o.required('seed', o.int('seed'), 'an integer'),
    name: o.required('name', o.string('name', { nonEmpty: true }), 'a non-empty string'),
    tokenizerDir: o.required('tokenizerDir', o.string('tokenizerDir', { nonEmpty: true }), 'a non-empty string'),
    force: o.bool('force'),
  };
  o.done();
  const config = captionArchitectureConfig(options.arch);
  if (!existsSync(path.join(options.tokenizerDir, 'tokenizer.json'))) {
    throw new Img2PromptError(options.tokenizerDir, 'no tokenizer.json here (a bert-base-uncased WordPiece tokenizer, e.g. the minilm model folder)', { code: 'MODEL_MISSING' });
  }
  // blip-large and the like belong to the real weights `models pull` installs.
  if (await isPullable(options.name)) throw new Img2PromptError(undefined, `${reservedName(options.name)}; choose another --name`);
  return installWith(
    options.name,
    { force: options.force },
    async (staging) => ({
      files: await writeRandomCaptionCheckpoint(staging, config, options.seed, options.tokenizerDir),
      source: 'random',
      origin: `random ${options.arch} captioner weights, seed ${options.seed}`,
      random: true,
      modelId: `random/${options.arch}`,
    }),
    checkedBuild,
  );
}

/**
 * Install a local Hugging Face captioner folder (BlipForConditionalGeneration or GitForCausalLM, or a
 * ready BLIP ONNX export with its config and tokenizer). The
 * copy is checked (weights against config.json, tokenizer against both, graphs built) before it
 * replaces anything; a problem is reported against the source folder's file.
 */
export async function importCaptioner(srcDir: string, name: string, options: LocalInstallOptions = {}): Promise<string> {
  options = readLocalInstallOptions(options, 'importCaptioner()');
  // Refuse a folder we cannot caption with before anything is copied.
  const config = await loadCaptionConfig(srcDir);
  // A folder without the safetensors may hold a ready export instead (export-files.ts): its graphs are copied too.
  const exported = existsSync(path.join(srcDir, CAPTION_WEIGHTS_FILE)) ? undefined : await findCaptionExport(srcDir);
  for (const f of exported ? ['tokenizer.json'] : [CAPTION_WEIGHTS_FILE, 'tokenizer.json']) {
    if (!existsSync(path.join(srcDir, f))) throw new Img2PromptError(path.join(srcDir, f), `missing: a ${config.arch.toUpperCase()} captioner folder needs it`, { code: 'MODEL_MISSING' });
  }
  const graphFiles = exported ? [exported.image, exported.decoder].flatMap((g) => [g.file, ...g.header.externalFiles]).map((f) => path.relative(srcDir, f)) : [];
  const present = [...CAPTIONER_FILES.filter((f) => existsSync(path.join(srcDir, f))), ...graphFiles];
  const pullable = await isPullable(name);
  return installWith(
    name,
    options,
    async (staging) => {
      for (const f of present) {
        try {
          await fs.mkdir(path.dirname(path.join(staging, f)), { recursive: true });
          await fs.copyFile(path.join(srcDir, f), path.join(staging, f));
        } catch (err) {
          throw new Img2PromptError(path.join(srcDir, f), `cannot copy: ${errorMessage(err)}`, { code: 'OUTPUT_FAILED', cause: err });
        }
      }
      if (pullable) await assertRealWeights(name, staging, srcDir);
      return { files: present, source: 'import', origin: path.resolve(srcDir), random: await isRandomCheckpoint(staging, present) };
    },
    async (staging) => {
      try {
        await checkedBuild(staging);
      } catch (err) {
        // The copy's problem is the source file's: name that one.
        if (err instanceof Img2PromptError && err.file?.startsWith(staging + path.sep)) {
          throw new Img2PromptError(path.join(srcDir, path.relative(staging, err.file)), err.reason, { code: err.code, cause: err });
        }
        throw err;
      }
    },
  );
}
