import { Img2PromptError } from '../util/errors.js';
import { checkUnitRows } from '../util/rows.js';
import { loadLabelBanks, type LabelBankOptions } from './label-banks.js';
import { loadOrBuildBank, type BankCacheOptions, type CachedBank } from './bank-cache.js';
import { bestMode, classicMode, fastMode, negativeMode, type ChainOptions, type InterrogatorBanks, type ModeContext, type ModeImages, type ScoreOption } from './modes.js';
import { openBankRanker } from '../rank/bank-ranker.js';
import type { ExecutionProvider } from '../runtime/session.js';
import { INTERROGATE_MODES, type ClipTextSide, type EmbeddedBank, type InterrogateMode, type InterrogationResult } from './types.js';
import { readOptions } from '../util/options.js';

export interface InterrogatorOpenOptions extends LabelBankOptions, BankCacheOptions {
  /** Prompt limit in CLIP tokens; default 77. */
  maxTokens?: number;
  /** Most prompts per encodeTexts call during chains; default 1024. */
  encodeBatch?: number;
  /** Told about every bank as it is loaded or built (e.g. to log rebuild reasons). */
  onBank?(bank: CachedBank): void;
  /**
   * Where to rank the banks. With 'cuda' listed (pass the CLIP session's provider) and ORT able to
   * run on it, each bank is put on the GPU once as a MatMul+TopK graph; otherwise (the default) the
   * native SIMD kernel ranks on the CPU.
   */
  rankProviders?: ExecutionProvider[];
}

export interface InterrogateOptions extends ChainOptions, ScoreOption {
  mode: InterrogateMode;
  /** One caption for every image, or one per image. */
  caption?: string | readonly (string | undefined)[];
  /**
   * Labels a mode may add: flavors after the movement in classic (default 3), labels considered in
   * fast (default 32), chain length in best and negative (default 32).
   */
  maxFlavors?: number;
}

/**
 * The CLIP Interrogator: label banks embedded by one CLIP text tower (cached on disk per model), and
 * the four prompt-building modes over image embeddings from the matching image tower.
 */
export class Interrogator {
  private constructor(
    readonly text: ClipTextSide,
    readonly banks: InterrogatorBanks,
    private readonly limits: { maxTokens?: number; encodeBatch?: number },
  ) {}

  /** Loads the label lists and every bank through the cache, building (or resuming) what is missing or stale. */
  static async open(text: ClipTextSide, options: InterrogatorOpenOptions = {}): Promise<Interrogator> {
    options = checkOpenOptions(options);
    const defs = await loadLabelBanks(options);
    const loaded = new Map<string, EmbeddedBank>();
    const extras: EmbeddedBank[] = [];
    // One bank at a time: building is bound by the one text encoder anyway.
    for (const def of defs) {
      options.signal?.throwIfAborted();
      const bank: CachedBank = await loadOrBuildBank(text, def, options);
      if (options.rankProviders?.includes('cuda')) {
        // CPU stays listed so a GPU that cannot take the graph falls back rather than fails.
        const providers = [...new Set<ExecutionProvider>([...options.rankProviders, 'cpu'])];
        const ranker = await openBankRanker(bank.matrix, providers);
        if (ranker.engine !== 'native') bank.ranker = ranker;
      }
      options.onBank?.(bank);
      if (def.role === 'extra') extras.push(bank);
      else loaded.set(def.name, bank);
    }
    const get = (name: string) => loaded.get(name)!;
    const banks: InterrogatorBanks = {
      artists: get('artists'),
      flavors: get('flavors'),
      mediums: get('mediums'),
      movements: get('movements'),
      trendings: get('trendings'),
      negative: get('negative'),
      extras,
    };
    return new Interrogator(text, banks, { maxTokens: options.maxTokens, encodeBatch: options.encodeBatch });
  }

  /** An interrogator over banks already in memory (no files, no cache). */
  static fromBanks(text: ClipTextSide, banks: InterrogatorBanks, limits: { maxTokens?: number; encodeBatch?: number } = {}): Interrogator {
    for (const bank of [...Object.values(banks).filter((b): b is EmbeddedBank => !Array.isArray(b)), ...banks.extras]) {
      if (bank.matrix.dim !== text.dim) throw new Img2PromptError(bank.source, `bank "${bank.name}" has dimension ${bank.matrix.dim}, the text model ${text.dim}`, { code: 'MODEL_MISMATCH' });
    }
    return new Interrogator(text, banks, limits);
  }

  /** Where the banks are ranked: 'native' (CPU kernel) or the provider of their GPU rankers. */
  get rankEngine(): string {
    return this.bankList()[0]?.ranker?.engine ?? 'native';
  }

  /** Frees the banks' GPU rankers (nothing to do on the CPU path). */
  close(): void {
    for (const bank of this.bankList()) {
      bank.ranker?.close();
      delete bank.ranker;
    }
  }

  /** Every bank: the built-in ones, then the user's. */
  bankList(): EmbeddedBank[] {
    const b = this.banks;
    return [b.artists, b.flavors, b.mediums, b.movements, b.trendings, b.negative, ...b.extras];
  }

  /**
   * One result per image; `imageEmbeds` is [n, dim] unit rows, as the CLIP image tower gives them
   * (ClipModel.encodeImages / encodePixels). They are checked, not copied: a zero, non-finite or
   * not unit-length row is refused.
   */
  async interrogate(imageEmbeds: Float32Array, n: number, options: InterrogateOptions): Promise<InterrogationResult[]> {
    options = checkInterrogateOptions(options);
    const dim = this.text.dim;
    if (imageEmbeds.length !== n * dim) throw new Img2PromptError(undefined, `image embeddings hold ${imageEmbeds.length} values, expected ${n} x ${dim}`);
    const embeds = checkUnitRows({ data: imageEmbeds, rows: n, dim }, undefined, 'image embedding', "use the image tower's rows (ClipModel.encodeImages), which are unit length");
    const captions =
      options.caption === undefined ? undefined : typeof options.caption === 'string' ? new Array<string>(n).fill(options.caption) : options.caption;
    const images: ModeImages = { embeds, captions };
    const ctx: ModeContext = { text: this.text, banks: this.banks, ...this.limits };
    switch (options.mode) {
      case 'fast':
        return fastMode(ctx, images, options);
      case 'classic':
        return classicMode(ctx, images, options);
      case 'best':
        return bestMode(ctx, images, options);
      case 'negative':
        return negativeMode(ctx, images, options);
    }
  }
}

function checkOpenOptions(options: InterrogatorOpenOptions): InterrogatorOpenOptions {
  const o = readOptions(options, 'Interrogator.open()');
  const checked: InterrogatorOpenOptions = {
    labelsDir: o.string('labelsDir', { nonEmpty: true }),
    extraLabels: o.stringList('extraLabels'),
    home: o.string('home', { nonEmpty: true }),
    dtype: o.oneOf('dtype', ['fp32', 'fp16']),
    chunkSize: o.int('chunkSize', { min: 1 }),
    onChunk: o.func('onChunk'),
    onProgress: o.func('onProgress'),
    maxTokens: o.int('maxTokens', { min: 1 }),
    encodeBatch: o.int('encodeBatch', { min: 1 }),
    onBank: o.func('onBank'),
    rankProviders: o.subsetOf('rankProviders', ['cuda', 'cpu']),
    signal: o.check('signal', (v): v is AbortSignal => v instanceof AbortSignal, 'an AbortSignal'),
  };
  o.done();
  return checked;
}

function isCaption(v: unknown): v is string | readonly (string | undefined)[] {
  return typeof v === 'string' || (Array.isArray(v) && v.every((c) => c === undefined || typeof c === 'string'));
}

function checkInterrogateOptions(options: InterrogateOptions): InterrogateOptions {
  const o = readOptions(options, 'Interrogator.interrogate()');
  const checked: InterrogateOptions = {
    mode: o.required('mode', o.oneOf('mode', INTERROGATE_MODES), `one of ${INTERROGATE_MODES.map((m) => `"${m}"`).join(', ')}`),
    caption: o.check('caption', isCaption, 'a string, or an array of strings (undefined for none) per image'),
    maxFlavors: o.int('maxFlavors', { min: 0 }),
    minFlavors: o.int('minFlavors', { min: 0 }),
    shortlist: o.int('shortlist', { min: 1 }),
    chainCache: o.bool('chainCache'),
    score: o.bool('score'),
  };
  o.done();
  return checked;
}
