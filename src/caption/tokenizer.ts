import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Tokenizer } from '@huggingface/tokenizers';
import { Img2PromptError } from '../util/errors.js';
import { readJsonObject } from '../util/json-file.js';
import { loadHfTokenizer } from '../text/hf-tokenizer.js';
import type { CaptionConfig } from './config.js';

/**
 * A captioner's tokenizer (its tokenizer.json, with tokenizers.js, the library the project already
 * uses for MiniLM), used the way the model's processor and generate() use it:
 *
 * - prompt: the decoder starts from its start token (BLIP's [DEC]; GIT's [CLS]) followed by the
 *   prefix's word pieces. BlipProcessor tokenizes "[CLS] prefix [SEP]", generate() puts [DEC] in
 *   place of [CLS] and drops the [SEP]: the same ids.
 * - caption: the generated tokens after the prompt, decoded with special tokens skipped (what
 *   batch_decode(..., skip_special_tokens=True) gives for them), so the prefix is not in the caption.
 *
 * The vocabulary must fit the weights: a tokenizer with more tokens than the LM head has rows, or whose
 * start/end tokens are not the ids config.json names, belongs to another model and is refused.
 */
export class CaptionTokenizer {
  private constructor(
    private readonly tokenizer: Tokenizer,
    private readonly bos: number,
    readonly file: string,
  ) {}

  static async load(dir: string, config: CaptionConfig): Promise<CaptionTokenizer> {
    const file = path.join(dir, 'tokenizer.json');
    const json = await readJsonObject(file);
    const configFile = path.join(dir, 'tokenizer_config.json');
    const tokenizerConfig = await fs.access(configFile).then(() => readJsonObject(configFile), () => ({}));
    const tokenizer = loadHfTokenizer(json, tokenizerConfig, file);
    const size = tokenizer.get_vocab(true).size;
    if (size > config.text.vocabSize) {
      throw new Img2PromptError(file, `the tokenizer has ${size} tokens but the model's vocabulary (config.json vocab_size, the LM head) has ${config.text.vocabSize}: not this model's tokenizer`, { code: 'MODEL_MISMATCH' });
    }
    // The ids generation is driven by must be special tokens of this tokenizer (BLIP's [DEC], GIT's [CLS], [SEP]).
    const specials = tokenizer.get_added_tokens_decoder();
    for (const [what, id] of [['start', config.tokens.bos], ['end', config.tokens.eos]] as const) {
      const token = specials.get(id);
      if (!token?.special) {
        throw new Img2PromptError(file, `the model's ${what} token is id ${id}, which this tokenizer has ${token ? `as the ordinary token ${JSON.stringify(token.content)}` : 'as no special token'}: not this model's tokenizer`, { code: 'MODEL_MISMATCH' });
      }
    }
    return new CaptionTokenizer(tokenizer, config.tokens.bos, file);
  }

  /** The decoder's first input ids: the start token, then the prefix's word pieces (none for ''). */
  prompt(prefix = ''): number[] {
    const ids = prefix.trim() === '' ? [] : this.tokenizer.encode(prefix, { add_special_tokens: false }).ids;
    return [this.bos, ...ids];
  }

  /** Text of generated ids, special tokens skipped. */
  decode(ids: readonly number[]): string {
    return this.tokenizer.decode([...ids], { skip_special_tokens: true }).trim();
  }
}
