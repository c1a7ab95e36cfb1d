import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { readJsonObject } from '../util/json-file.js';
import type { CaptionConfig } from './config.js';

/**
 * The tokenizer files of a captioner folder, made from a bert-base-uncased WordPiece tokenizer.json
 * (the vocabulary all-MiniLM-L6-v2 ships is that one): GIT uses it as it is; BLIP's tokenizer is the
 * same with two tokens added after the vocabulary, [DEC] (the decoder's bos) and [ENC]. Truncation
 * and fixed padding baked into the source file are dropped: the processor pads and truncates itself.
 */

const BERT_SPECIALS = { cls_token: '[CLS]', mask_token: '[MASK]', pad_token: '[PAD]', sep_token: '[SEP]', unk_token: '[UNK]' };

function addedToken(id: number, content: string): Record<string, unknown> {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

export async function writeCaptionTokenizerFiles(dir: string, config: CaptionConfig, bertTokenizerDir: string): Promise<string[]> {
  const source = path.join(bertTokenizerDir, 'tokenizer.json');
  const json = await readJsonObject(source);
  const model = json.model as { type?: string; vocab?: Record<string, number> } | undefined;
  if (model?.type !== 'WordPiece' || typeof model.vocab !== 'object') throw new Img2PromptError(source, 'not a WordPiece (BERT) tokenizer.json', { code: 'FILE_INVALID' });
  const vocabSize = Object.keys(model.vocab).length;
  const added = [...((json.added_tokens as Record<string, unknown>[] | undefined) ?? [])];
  const specials: Record<string, unknown> = { ...BERT_SPECIALS };
  if (config.arch === 'blip') {
    if (config.tokens.bos !== vocabSize) throw new Img2PromptError(source, `BLIP's [DEC] is id ${config.tokens.bos}, but this vocabulary has ${vocabSize} tokens`, { code: 'MODEL_MISMATCH' });
    added.push(addedToken(vocabSize, '[DEC]'), addedToken(vocabSize + 1, '[ENC]'));
    specials.bos_token = '[DEC]';
    specials.additional_special_tokens = ['[ENC]'];
  }
  const tokenizer = { ...json, truncation: null, padding: null, added_tokens: added };
  const tokenizerConfig = {
    ...specials,
    clean_up_tokenization_spaces: true,
    do_basic_tokenize: true,
    do_lower_case: true,
    model_max_length: 512,
    strip_accents: null,
    tokenize_chinese_chars: true,
    tokenizer_class: 'BertTokenizer',
  };
  const files: [string, string][] = [
    ['tokenizer.json', JSON.stringify(tokenizer)],
    ['tokenizer_config.json', JSON.stringify(tokenizerConfig, null, 2) + '\n'],
    ['special_tokens_map.json', JSON.stringify(specials, null, 2) + '\n'],
  ];
  try {
    for (const [name, text] of files) await writeFileAtomic(path.join(dir, name), text);
    const vocab = path.join(bertTokenizerDir, 'vocab.txt');
    const hasVocab = await fs.access(vocab).then(() => true, () => false);
    // Read and written, not copied: a copy would keep a read-only source's mode.
    if (hasVocab) await writeFileAtomic(path.join(dir, 'vocab.txt'), await fs.readFile(vocab));
    return [...files.map(([name]) => name), ...(hasVocab ? ['vocab.txt'] : [])];
  } catch (err) {
    throw new Img2PromptError(dir, `cannot write the tokenizer files: ${errorMessage(err)}`, { code: 'OUTPUT_FAILED', cause: err });
  }
}
