import { Tokenizer } from '@huggingface/tokenizers';
import { Img2PromptError, errorMessage } from '../util/errors.js';

/** A tokenizers.js Tokenizer from a parsed tokenizer.json; errors name `source`. */
export function loadHfTokenizer(json: Record<string, unknown>, config: Record<string, unknown>, source: string): Tokenizer {
  try {
    return new Tokenizer(json, config);
  } catch (err) {
    throw new Img2PromptError(source, `cannot load tokenizer: ${errorMessage(err)}`, { code: 'FILE_INVALID', cause: err });
  }
}

/** Id of a special token the model cannot work without. */
export function requireTokenId(tokenizer: Tokenizer, token: string, source: string): number {
  const v = tokenizer.token_to_id(token);
  if (v === undefined) throw new Img2PromptError(source, `vocabulary has no ${token} token`, { code: 'FILE_INVALID' });
  return v;
}
