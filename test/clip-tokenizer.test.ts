import fs from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { ClipTokenizer, HF_CLIP_PAD_ID, OPEN_CLIP_PAD_ID, padClipBatch } from '../src/clip/tokenizer.js';
import { CLIP_MERGE_COUNT, byteLevelAlphabet, clipVocabFromMerges } from '../src/clip/bpe.js';
import { openClipClean } from '../src/clip/pre-tokenize.js';
import { Img2PromptError } from '../src/util/errors.js';
import { asset, tempDir } from './helpers/paths.js';

const HF_DIR = asset('tokenizers', 'clip', 'hf-openai-clip-vit-large-patch14');
const BPE_GZ = asset('tokenizers', 'clip', 'bpe_simple_vocab_16e6.txt.gz');
const vocab: Record<string, number> = JSON.parse(fs.readFileSync(path.join(HF_DIR, 'vocab.json'), 'utf-8'));
const v = (token: string): number => {
  const id = vocab[token];
  if (id === undefined) throw new Error(`vocab.json has no ${token}`);
  return id;
};

let tok: ClipTokenizer;
beforeAll(async () => {
  tok = await ClipTokenizer.load(HF_DIR, { kind: 'open_clip' });
});

describe('CLIP vocabulary', () => {
  it('has the special ids and the word ids this suite relies on', () => {
    expect(Object.keys(vocab)).toHaveLength(49408);
    expect(v('<|startoftext|>')).toBe(49406);
    expect(v('<|endoftext|>')).toBe(49407);
    // Spot values read off vocab.json, so the id assertions below are not circular.
    expect([v('a</w>'), v('photo</w>'), v('of</w>'), v('cat</w>'), v('dog</w>'), v('!</w>'), v(',</w>')]).toEqual([320, 1125, 539, 2368, 1929, 256, 267]);
  });

  it("open_clip's gzipped merge list rebuilds exactly vocab.json", () => {
    const lines = gunzipSync(fs.readFileSync(BPE_GZ)).toString('utf-8').split('\n');
    const merges = lines.slice(1, 1 + CLIP_MERGE_COUNT);
    expect(byteLevelAlphabet()).toHaveLength(256);
    expect(clipVocabFromMerges(merges)).toEqual(vocab);
  });
});

describe('ClipTokenizer', () => {
  it('encodes words to their vocab.json ids between SOT and EOT', () => {
    expect(tok.encode('a photo of a cat')).toEqual([49406, v('a</w>'), v('photo</w>'), v('of</w>'), v('a</w>'), v('cat</w>'), 49407]);
    expect(tok.encode('a photo of a cat')).toEqual([49406, 320, 1125, 539, 320, 2368, 49407]);
    expect(tok.encode('')).toEqual([49406, 49407]);
  });

  it('splits like CLIP: sub-words, contractions, digits, punctuation runs', () => {
    expect(tok.tokenize('trending on artstation')).toEqual(['trending</w>', 'on</w>', 'art', 'station</w>']);
    expect(tok.encode('trending on artstation').slice(1, -1)).toEqual([v('trending</w>'), v('on</w>'), v('art'), v('station</w>')]);
    expect(tok.tokenize("it's a dog's life")).toEqual(['it</w>', "'s</w>", 'a</w>', 'dog</w>', "'s</w>", 'life</w>']);
    expect(tok.tokenize('8k 2023')).toEqual(['8</w>', 'k</w>', '2</w>', '0</w>', '2</w>', '3</w>']);
    expect(tok.encode('hello, world!').slice(1, -1)).toEqual([v('hello</w>'), v(',</w>'), v('world</w>'), v('!</w>')]);
    // A run of punctuation is one pre-token, merged as a whole when the vocabulary has it.
    expect(tok.encode('wow!!').slice(1, -1)).toEqual([v('wow</w>'), v('!!</w>')]);
  });

  it('cleans text as open_clip does: lower-case, collapsed whitespace, HTML entities', () => {
    expect(openClipClean('  A   Photo\tof\na CAT  ')).toBe('a photo of a cat');
    expect(tok.encode('  A   Photo\tof\na CAT  ')).toEqual(tok.encode('a photo of a cat'));
    expect(openClipClean('rock &amp; roll &#39;n&#x27; more &amp;amp;')).toBe("rock & roll 'n' more &");
    expect(tok.encode('rock &amp; roll')).toEqual(tok.encode('rock & roll'));
    expect(openClipClean('&unknownentity; stays')).toBe('&unknownentity; stays');
  });

  it('truncates to 77 ids keeping EOT last, and counts tokens before truncation', () => {
    const long = Array.from({ length: 60 }, (_, i) => `word${i}`).join(' ');
    const body = tok.encodeBody(long);
    expect(body.length).toBeGreaterThan(75);
    const ids = tok.encode(long);
    expect(ids).toHaveLength(77);
    expect(ids[0]).toBe(49406);
    expect(ids[76]).toBe(49407);
    expect(ids.slice(1, 76)).toEqual(body.slice(0, 75));
    expect(tok.countTokens(long)).toBe(body.length + 2);
    expect(tok.fits(long)).toBe(false);
    expect(tok.countTokens('a photo of a cat')).toBe(7);
    expect(tok.countTokens('')).toBe(2);
    expect(tok.fits('a photo of a cat')).toBe(true);
  });

  it('loads the same tokenizer from tokenizer.json, vocab.json + merges.txt, and the open_clip .gz', async () => {
    const dir = tempDir('img2prompt-clip-tok-');
    try {
      fs.copyFileSync(path.join(HF_DIR, 'vocab.json'), path.join(dir, 'vocab.json'));
      fs.copyFileSync(path.join(HF_DIR, 'merges.txt'), path.join(dir, 'merges.txt'));
      const fromFiles = await ClipTokenizer.load(dir, { kind: 'open_clip' });
      const fromGz = await ClipTokenizer.load(BPE_GZ, { kind: 'open_clip' });
      const fromJsonFile = await ClipTokenizer.load(path.join(HF_DIR, 'tokenizer.json'), { kind: 'open_clip' });
      const prompts = fs
        .readFileSync(asset('eval', 'prompts', 'krea-open-prompts-1k.prompts.txt'), 'utf-8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .slice(0, 300);
      prompts.push('café naïve — “quotes” ✨ emoji 🎨 日本語');
      let differing = 0;
      for (const p of prompts) {
        const want = tok.encode(p);
        for (const other of [fromFiles, fromGz, fromJsonFile]) if (JSON.stringify(other.encode(p)) !== JSON.stringify(want)) differing++;
      }
      expect(differing).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('pads batches with the open_clip (0) or HF (49407) convention', () => {
    const seqs = [tok.encode('a cat'), tok.encode('a photo of a dog')];
    const oc = tok.encodeBatch(['a cat', 'a photo of a dog']);
    expect(oc.seqLen).toBe(7);
    expect(Array.from(oc.inputIds, Number)).toEqual([...seqs[0]!, OPEN_CLIP_PAD_ID, OPEN_CLIP_PAD_ID, OPEN_CLIP_PAD_ID, ...seqs[1]!]);
    const hf = tok.encodeBatch(['a cat', 'a photo of a dog'], { padding: 'hf', length: 77 });
    expect(hf.seqLen).toBe(77);
    expect(Number(hf.inputIds[4])).toBe(HF_CLIP_PAD_ID);
    expect(Number(hf.inputIds[76])).toBe(HF_CLIP_PAD_ID);
    expect(Array.from(hf.inputIds.subarray(77, 77 + 7), Number)).toEqual(seqs[1]);
    expect(() => padClipBatch(seqs, 5, 0)).toThrow(RangeError);
    expect(padClipBatch([], 'longest', 0)).toEqual({ inputIds: new BigInt64Array(0), batch: 0, seqLen: 0 });
  });

  it('names the location when there is no tokenizer', async () => {
    const dir = tempDir('img2prompt-clip-tok-');
    try {
      await expect(ClipTokenizer.load(dir, { kind: 'open_clip' })).rejects.toThrow(Img2PromptError);
      await expect(ClipTokenizer.load(dir, { kind: 'open_clip' })).rejects.toThrow(dir);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
