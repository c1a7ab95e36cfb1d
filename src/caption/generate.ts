import { Img2PromptError } from '../util/errors.js';
import type { OptionsReader } from '../util/options.js';
import type { DecoderStepper, GeneratedCaption } from './decoder-stepper.js';
import { beamSearch, type EarlyStopping } from './beam-search.js';
import { greedySearch } from './greedy-search.js';

/**
 * Caption generation settings, with transformers' meanings (GenerationConfig): lengths count the
 * whole sequence, the decoder's start token and the text prefix included.
 */
export interface GenerationOptions {
  /** 1: greedy search; more: beam search. Default 8 (the reference notebook's CLIP Interrogator). */
  numBeams?: number;
  /** Longest sequence, prompt included. Default 32. */
  maxLength?: number;
  /** The end token is banned below this length, prompt included. Default 5. */
  minLength?: number;
  /** Finished beams' scores are divided by (generated tokens)^lengthPenalty. Default 1. */
  lengthPenalty?: number;
  /** Beam search stopping rule (transformers' early_stopping): default false. */
  earlyStopping?: EarlyStopping;
  /** 0 (default): off; n: no n-gram occurs twice. */
  noRepeatNgramSize?: number;
  /** 1 (default): off. */
  repetitionPenalty?: number;
}

export type ResolvedGenerationOptions = Required<GenerationOptions>;

export const DEFAULT_GENERATION: ResolvedGenerationOptions = {
  numBeams: 8,
  maxLength: 32,
  minLength: 5,
  lengthPenalty: 1,
  earlyStopping: false,
  noRepeatNgramSize: 0,
  repetitionPenalty: 1,
};

/** Longest sequence a caption may ask for; the models' position tables are 512 (BLIP) and 1024 (GIT). */
export const MAX_CAPTION_LENGTH = 512;
export const MAX_BEAMS = 64;

/**
 * The generation settings among an API call's options, each checked for type and range in the options
 * reader's wording; resolveGenerationOptions then adds the defaults and the checks between settings.
 */
export function readGenerationOptions(o: OptionsReader): GenerationOptions {
  return {
    numBeams: o.int('numBeams', { min: 1, max: MAX_BEAMS }),
    maxLength: o.int('maxLength', { min: 2, max: MAX_CAPTION_LENGTH }),
    minLength: o.int('minLength', { min: 0, max: MAX_CAPTION_LENGTH }),
    lengthPenalty: o.number('lengthPenalty'),
    earlyStopping: o.oneOf('earlyStopping', [true, false, 'never']),
    noRepeatNgramSize: o.int('noRepeatNgramSize', { min: 0, max: MAX_CAPTION_LENGTH }),
    repetitionPenalty: o.number('repetitionPenalty', { min: 0, minExclusive: true }),
  };
}

/**
 * Defaults filled in and every value checked; an option out of range is named in the error, by
 * `label` (e.g. the CLI's flag) or by its API name.
 */
export function resolveGenerationOptions(o: GenerationOptions = {}, label: (option: keyof GenerationOptions) => string = (k) => k): ResolvedGenerationOptions {
  const r = { ...DEFAULT_GENERATION, ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) } as ResolvedGenerationOptions;
  const fail = (option: keyof GenerationOptions, must: string): never => {
    throw new Img2PromptError(undefined, `${label(option)} must be ${must}, got ${JSON.stringify(r[option])}`);
  };
  const integerIn = (option: keyof GenerationOptions, min: number, max: number) => {
    const v = r[option];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(option, `an integer from ${min} to ${max}`);
  };
  integerIn('numBeams', 1, MAX_BEAMS);
  integerIn('maxLength', 2, MAX_CAPTION_LENGTH);
  integerIn('minLength', 0, r.maxLength);
  integerIn('noRepeatNgramSize', 0, MAX_CAPTION_LENGTH);
  if (typeof r.lengthPenalty !== 'number' || !Number.isFinite(r.lengthPenalty)) fail('lengthPenalty', 'a finite number');
  if (typeof r.repetitionPenalty !== 'number' || !(r.repetitionPenalty > 0) || !Number.isFinite(r.repetitionPenalty)) fail('repetitionPenalty', 'a positive number');
  if (r.earlyStopping !== true && r.earlyStopping !== false && r.earlyStopping !== 'never') fail('earlyStopping', 'true, false or "never"');
  return r;
}

/**
 * Captions `images` images (whose encodings `model` holds) continuing `prompt` (the start token and
 * the prefix's tokens): greedy search for one beam, beam search otherwise.
 */
export function generateCaptions<Past>(
  model: DecoderStepper<Past>,
  images: number,
  prompt: readonly number[],
  options: ResolvedGenerationOptions,
  eosTokenId: number,
): Promise<GeneratedCaption[]> {
  if (prompt.length >= options.maxLength) {
    throw new Img2PromptError(undefined, `max length ${options.maxLength} leaves no room for a caption after the ${prompt.length} tokens of the start token and the prefix`);
  }
  const settings = { ...options, eosTokenId };
  return options.numBeams === 1 ? greedySearch(model, images, prompt, settings) : beamSearch(model, images, prompt, settings);
}
