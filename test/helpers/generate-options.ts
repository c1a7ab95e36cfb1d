import type { GenerationOptions } from '../../src/caption/generate.js';
import type { EarlyStopping } from '../../src/caption/beam-search.js';

/** transformers' generate() keyword arguments (as the caption fixtures record them) as the engine's options. */
export function generationOptionsOf(o: Record<string, unknown>): GenerationOptions & { prefix: string } {
  return {
    numBeams: o.num_beams as number,
    maxLength: o.max_length as number,
    minLength: o.min_length as number,
    noRepeatNgramSize: (o.no_repeat_ngram_size as number | undefined) ?? 0,
    repetitionPenalty: (o.repetition_penalty as number | undefined) ?? 1,
    lengthPenalty: (o.length_penalty as number | undefined) ?? 1,
    earlyStopping: (o.early_stopping as EarlyStopping | undefined) ?? false,
    prefix: o.prefix as string,
  };
}
