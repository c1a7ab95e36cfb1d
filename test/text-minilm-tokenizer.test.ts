import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { MiniLMTokenizer } from '../src/text/minilm-tokenizer.js';
import { Img2PromptError } from '../src/util/errors.js';
import { asset, tempDir } from './helpers/paths.js';

// The shared copy of the model's tokenizer files. Its tokenizer.json bakes in truncation 128 and fixed
// padding 128, which is exactly what the loader must override (sentence-transformers uses 256, no padding).
const TOKENIZER_DIR = asset('tokenizers', 'minilm');

/** Token → id from vocab.txt: the id is the 0-based line number. */
const vocab = new Map<string, number>(
  fs
    .readFileSync(path.join(TOKENIZER_DIR, 'vocab.txt'), 'utf-8')
    .split('\n')
    .map((tok, line) => [tok, line] as [string, number]),
);
const id = (token: string): number => {
  const v = vocab.get(token);
  if (v === undefined) throw new Error(`"${token}" not in vocab.txt`);
  return v;
};
const CLS = 101;
const SEP = 102;

describe('MiniLMTokenizer', () => {
  let tok: MiniLMTokenizer;
  beforeAll(async () => {
    tok = await MiniLMTokenizer.load(TOKENIZER_DIR);
  });

  it('uses the special ids from vocab.txt and the 256-token limit of sentence_bert_config.json', () => {
    expect([id('[PAD]'), id('[UNK]'), id('[CLS]'), id('[SEP]')]).toEqual([0, 100, 101, 102]);
    expect([tok.padId, tok.clsId, tok.sepId]).toEqual([0, CLS, SEP]);
    expect(tok.maxTokens).toBe(256);
  });

  it('encodes "hello world" as [CLS] hello world [SEP]', () => {
    // vocab.txt lines 7593 and 2089 (1-based) are "hello" and "world".
    expect(tok.encode('hello world')).toEqual([101, 7592, 2088, 102]);
    expect([id('hello'), id('world')]).toEqual([7592, 2088]);
  });

  it('lower-cases and strips accents', () => {
    expect(tok.encode('HELLO World')).toEqual([CLS, id('hello'), id('world'), SEP]);
    expect(tok.encode('Café naïve résumé')).toEqual([CLS, id('cafe'), id('naive'), id('resume'), SEP]);
  });

  it("lower-cases a word-final Σ to σ, as sentence-transformers' (fast, Rust) BertTokenizer does, not to ς", () => {
    // Ids from sentence-transformers / transformers' BertTokenizer on this folder (vocab: σ 29733, ##ος 15297).
    expect(tok.encode('ΣΟΦΟΣ ΛΟΓΟΣ')).toEqual([CLS, 1173, 29730, 29736, 29730, 29733, 1165, 29730, 29721, 29730, 29733, SEP]);
    expect(tok.encode('ΟΔΟΣ.')).toEqual([CLS, 1169, 29722, 29730, 29733, 1012, SEP]);
    expect(id('##σ')).toBe(29733);
    // A final ς written as such stays ς.
    expect(tok.encode('σοφος λογος')).toEqual([CLS, 1173, 29730, 29736, 15297, 1165, 29730, 29721, 15297, SEP]);
    expect(id('##ος')).toBe(15297);
  });

  it('splits punctuation, including ASCII symbols that BERT counts as punctuation', () => {
    expect(tok.encode('hello, world!')).toEqual([CLS, id('hello'), id(','), id('world'), id('!'), SEP]);
    expect(tok.tokenize("it's a don't-stop")).toEqual(['it', "'", 's', 'a', 'don', "'", 't', '-', 'stop']);
    expect(tok.encode('$5+3=8')).toEqual([CLS, id('$'), id('5'), id('+'), id('3'), id('='), id('8'), SEP]);
  });

  it('splits unknown words into word pieces with the ## prefix', () => {
    expect(tok.tokenize('donuts')).toEqual(['don', '##uts']);
    expect(tok.encode('donuts')).toEqual([CLS, id('don'), id('##uts'), SEP]);
    expect(tok.encode('cheneosaurus')).toEqual([CLS, id('chen'), id('##eo'), id('##saurus'), SEP]);
  });

  it('encodes empty and blank text as just [CLS] [SEP]', () => {
    expect(tok.encode('')).toEqual([CLS, SEP]);
    expect(tok.encode('  \t ')).toEqual([CLS, SEP]);
  });

  it('truncates long text to 256 tokens with [SEP] last (not the 128 baked into tokenizer.json)', () => {
    const long = Array.from({ length: 300 }, (_, i) => (i % 2 ? 'hello' : 'world')).join(' ');
    const ids = tok.encode(long);
    expect(ids.length).toBe(256);
    expect(ids[0]).toBe(CLS);
    expect(ids[255]).toBe(SEP);
    expect(ids.slice(1, 5)).toEqual([id('world'), id('hello'), id('world'), id('hello')]);
    expect(ids.slice(1, 255).every((x) => x === id('hello') || x === id('world'))).toBe(true);
    // A text that is exactly at the limit keeps every token.
    const exact = Array.from({ length: 254 }, () => 'hello').join(' ');
    expect(tok.encode(exact)).toEqual([CLS, ...Array(254).fill(id('hello')), SEP]);
  });

  it('honours an explicit maxTokens', async () => {
    const short = await MiniLMTokenizer.load(TOKENIZER_DIR, { maxTokens: 4 });
    expect(short.encode('hello world hello world')).toEqual([CLS, id('hello'), id('world'), SEP]);
  });

  it('pads a batch to its longest sequence, not to a fixed length', () => {
    const b = tok.encodeBatch(['hello world', 'hello', 'hello, world!']);
    expect(b.batch).toBe(3);
    expect(b.seqLen).toBe(6);
    const row = (arr: BigInt64Array, r: number) => Array.from(arr.subarray(r * 6, r * 6 + 6), Number);
    expect(row(b.inputIds, 0)).toEqual([CLS, 7592, 2088, SEP, 0, 0]);
    expect(row(b.attentionMask, 0)).toEqual([1, 1, 1, 1, 0, 0]);
    expect(row(b.inputIds, 1)).toEqual([CLS, 7592, SEP, 0, 0, 0]);
    expect(row(b.attentionMask, 1)).toEqual([1, 1, 1, 0, 0, 0]);
    expect(row(b.attentionMask, 2)).toEqual([1, 1, 1, 1, 1, 1]);
  });

  it('fails with the file name when tokenizer.json is missing or corrupt', async () => {
    const dir = tempDir();
    await expect(MiniLMTokenizer.load(dir)).rejects.toThrow(Img2PromptError);
    await expect(MiniLMTokenizer.load(dir)).rejects.toThrow(path.join(dir, 'tokenizer.json'));
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"model": ');
    await expect(MiniLMTokenizer.load(dir)).rejects.toThrow(/tokenizer\.json: corrupt JSON/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
