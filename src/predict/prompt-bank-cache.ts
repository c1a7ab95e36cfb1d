import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { packageRoot } from '../util/package-root.js';
import { fromFloat16 } from '../rank/float16.js';
import { dedupe, labelsHash, readLabelFile } from '../interrogate/label-banks.js';
import { loadOrBuildBank, type CachedBank } from '../interrogate/bank-cache.js';
import { DEFAULT_BANK_DTYPE, type BankDtype, type ClipTextSide, type LabelBankDef } from '../interrogate/types.js';
import { PromptBank } from './prompt-bank.js';

/**
 * The prompt bank on disk: a corpus of real prompts (one per line), deduplicated, embedded once by
 * the CLIP text tower and once by MiniLM, both through the label-bank cache (so a build is resumable
 * and a changed corpus or model is rebuilt), then joined into a PromptBank.
 */

/** The prompt corpora that ship beside the repository (../shared/assets/eval/prompts). */
export function defaultPromptsDir(): string {
  return path.resolve(packageRoot(), '..', 'shared', 'assets', 'eval', 'prompts');
}

/** Every one-prompt-per-line `*.txt` file of the default corpus folder, sorted by name. */
export async function defaultPromptCorpus(dir: string = defaultPromptsDir()): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    throw new Img2PromptError(dir, `cannot read the default prompt corpus: ${errorMessage(err)}; pass --prompts-bank FILE`, { code: 'FILE_UNREADABLE', cause: err });
  }
  const files = names.filter((n) => n.toLowerCase().endsWith('.txt')).sort().map((n) => path.join(dir, n));
  if (files.length === 0) throw new Img2PromptError(dir, 'no .txt prompt files in the default corpus folder; pass --prompts-bank FILE');
  return files;
}

export interface PromptCorpus {
  /** Deduplicated prompts, in file order then line order. */
  prompts: string[];
  files: string[];
}

/** Reads prompt files (one prompt per line; blank lines skipped) into one deduplicated list. */
export async function readPromptCorpus(files: readonly string[]): Promise<PromptCorpus> {
  if (files.length === 0) throw new Img2PromptError(undefined, 'no prompt files given for the prompt bank');
  const all: string[] = [];
  for (const file of files) all.push(...(await readLabelFile(file)));
  return { prompts: dedupe(all), files: [...files] };
}

/** The cache definition of a corpus: its name carries the content hash, so several corpora coexist in the cache. */
export function promptBankDef(corpus: PromptCorpus): LabelBankDef {
  return {
    name: `prompts-${labelsHash(corpus.prompts).slice(0, 12)}`,
    role: 'extra',
    labels: corpus.prompts,
    source: corpus.files.length === 1 ? corpus.files[0] : `${corpus.files.length} prompt files (${corpus.files.map((f) => path.basename(f)).join(', ')})`,
  };
}

export interface PromptBankCacheOptions {
  /** Prompt files; default defaultPromptCorpus(). */
  files?: readonly string[];
  /** Cache root; default modelHome(). */
  home?: string;
  /** Storage of the CLIP side (default DEFAULT_BANK_DTYPE, like the label banks); the MiniLM side is always fp32. */
  clipDtype?: BankDtype;
  /** Told about each side as it is loaded or built. */
  onBank?(bank: CachedBank, side: 'clip' | 'minilm'): void;
  /** Told as a side is built, with the prompts embedded so far; `bank` names the side, e.g. "prompts-… (clip)". */
  onProgress?(bank: string, rowsDone: number, count: number): void;
  /** Stops a build between chunks (see BankCacheOptions.signal). */
  signal?: AbortSignal;
}

export interface LoadedPromptBank {
  bank: PromptBank;
  def: LabelBankDef;
  files: string[];
}

/** Loads the prompt bank from the cache, building (or resuming) whichever side is missing or stale. */
export async function loadPromptBank(clip: ClipTextSide, minilm: ClipTextSide, options: PromptBankCacheOptions = {}): Promise<LoadedPromptBank> {
  const files = options.files && options.files.length > 0 ? [...options.files] : await defaultPromptCorpus();
  const corpus = await readPromptCorpus(files);
  const def = promptBankDef(corpus);
  const progressOf = (side: 'clip' | 'minilm') => (bank: string, rowsDone: number, count: number) => options.onProgress?.(`${bank} (${side})`, rowsDone, count);
  const clipSide = await loadOrBuildBank(clip, def, { home: options.home, dtype: options.clipDtype ?? DEFAULT_BANK_DTYPE, onProgress: progressOf('clip'), signal: options.signal });
  options.onBank?.(clipSide, 'clip');
  const textSide = await loadOrBuildBank(minilm, def, { home: options.home, dtype: 'fp32', onProgress: progressOf('minilm'), signal: options.signal });
  options.onBank?.(textSide, 'minilm');
  const bank = new PromptBank({
    texts: def.labels,
    clip: { ...clipSide.matrix, data: clipSide.dtype === 'fp16' ? fromFloat16(clipSide.matrix.data as Uint16Array) : (clipSide.matrix.data as Float32Array) },
    minilm: { ...textSide.matrix, data: textSide.matrix.data as Float32Array },
    label: def.source,
  });
  return { bank, def, files };
}
