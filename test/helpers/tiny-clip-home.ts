import fs from 'node:fs';
import path from 'node:path';
import { modelDir } from '../../src/models/cache.js';
import { installRandomClip } from '../../src/models/install-local.js';
import { asset, KAGGLE_SAMPLE } from './paths.js';

const TOKENIZER = asset('tokenizers', 'clip', 'hf-openai-clip-vit-large-patch14');

/**
 * Points IMG2PROMPT_HOME at `home` (returning the old value to restore), links the real MiniLM that
 * global setup pulled into it and installs a random tiny CLIP named 'tiny'. The MiniLM folder is
 * resolved before the switch, so it is the real one and not looked for in the empty home.
 */
export async function useTinyClipHome(home: string, seed: number): Promise<string | undefined> {
  const realMiniLM = modelDir('minilm');
  const saved = process.env.IMG2PROMPT_HOME;
  process.env.IMG2PROMPT_HOME = home;
  fs.mkdirSync(path.join(home, 'models'), { recursive: true });
  fs.symlinkSync(realMiniLM, path.join(home, 'models', 'minilm'));
  await installRandomClip({ arch: 'tiny', seed, name: 'tiny', layout: 'open_clip', tokenizerDir: TOKENIZER });
  return saved;
}

/** Restores IMG2PROMPT_HOME as useTinyClipHome found it. */
export function restoreHome(saved: string | undefined): void {
  if (saved === undefined) delete process.env.IMG2PROMPT_HOME;
  else process.env.IMG2PROMPT_HOME = saved;
}

/** Copies the 7 Kaggle sample images into `dir` (created). */
export function copyKaggleImages(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(path.join(KAGGLE_SAMPLE, 'images'))) fs.copyFileSync(path.join(KAGGLE_SAMPLE, 'images', f), path.join(dir, f));
}

/** The small prompt bank and label lists a fast predict run uses (see writeSmallBankAndLabels). */
export interface SmallBank {
  bankFile: string;
  labelsDir: string;
  /** The bank's prompts, in file order. */
  prompts: string[];
  /** `predict` options naming the tiny CLIP, the bank and the labels. */
  options: string[];
}

/** First `n` non-blank lines of `file`. */
function firstLines(file: string, n: number): string[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').slice(0, n);
}

/** A 200-prompt bank and 40-line label lists under `dir`, from the shared assets: predict runs in seconds. */
export function writeSmallBankAndLabels(dir: string): SmallBank {
  const bankFile = path.join(dir, 'bank.txt');
  const labelsDir = path.join(dir, 'labels');
  const corpus = asset('eval', 'prompts');
  const prompts = [
    ...firstLines(path.join(corpus, 'songjein-gpt4-kaggle-style-prompts.txt'), 100),
    ...firstLines(path.join(corpus, 'krea-open-prompts-1k.prompts.txt'), 100),
  ];
  fs.writeFileSync(bankFile, prompts.join('\n') + '\n');
  fs.mkdirSync(labelsDir);
  for (const f of ['artists', 'flavors', 'mediums', 'movements', 'sites', 'negative']) {
    fs.writeFileSync(path.join(labelsDir, `${f}.txt`), firstLines(asset('labels', `${f}.txt`), 40).join('\n') + '\n');
  }
  return { bankFile, labelsDir, prompts, options: ['--model', 'tiny', '--prompts-bank', bankFile, '--labels-dir', labelsDir] };
}
