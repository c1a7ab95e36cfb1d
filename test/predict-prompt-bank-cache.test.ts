import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultPromptCorpus, defaultPromptsDir, loadPromptBank, promptBankDef, readPromptCorpus } from '../src/predict/prompt-bank-cache.js';
import { bankFilePath } from '../src/interrogate/bank-cache.js';
import { parseMemberList } from '../src/predict/members.js';
import { Img2PromptError } from '../src/util/errors.js';
import { PlantedTextSide } from './helpers/planted.js';
import { asset, tempDir } from './helpers/paths.js';

describe('prompt corpus', () => {
  it('defaults to the one-prompt-per-line .txt files that ship in eval/prompts (not the raw CSV)', async () => {
    expect(defaultPromptsDir()).toBe(asset('eval', 'prompts'));
    expect((await defaultPromptCorpus()).map((f) => path.basename(f))).toEqual([
      'krea-open-prompts-1k.prompts.txt',
      'songjein-dedup-prompts-first5000.txt',
      'songjein-gpt4-kaggle-style-prompts.txt',
    ]);
  });

  it('reads files into one list: trimmed, blank lines dropped, duplicates across files dropped, first kept', async () => {
    const dir = tempDir();
    const a = path.join(dir, 'a.txt');
    const b = path.join(dir, 'b.txt');
    fs.writeFileSync(a, '\ufeffa red fox\r\n\r\n  a blue bird  \na red fox\n');
    fs.writeFileSync(b, 'a green frog\na blue bird\n');
    const corpus = await readPromptCorpus([a, b]);
    expect(corpus.prompts).toEqual(['a red fox', 'a blue bird', 'a green frog']);
    // The cache name follows the content, so two corpora never overwrite each other's banks.
    const def = promptBankDef(corpus);
    expect(def.name).toMatch(/^prompts-[0-9a-f]{12}$/);
    expect(promptBankDef(await readPromptCorpus([b, a])).name).not.toBe(def.name);
    expect(promptBankDef({ prompts: [...corpus.prompts], files: ['elsewhere.txt'] }).name).toBe(def.name);
    fs.writeFileSync(path.join(dir, 'empty.txt'), '\n\n');
    await expect(readPromptCorpus([path.join(dir, 'empty.txt')])).rejects.toThrow(/empty\.txt: label file has no labels/);
    await expect(readPromptCorpus([path.join(dir, 'missing.txt')])).rejects.toThrow(Img2PromptError);
  });
});

describe('loadPromptBank', () => {
  it('embeds the corpus with both text sides into the cache once, then loads it without encoding', async () => {
    const home = tempDir();
    const dir = tempDir();
    const file = path.join(dir, 'bank.txt');
    const prompts = Array.from({ length: 60 }, (_, i) => `prompt ${i}, with detail ${i % 7}`);
    fs.writeFileSync(file, [...prompts, ...prompts.slice(0, 10)].join('\n'));
    const clip = new PlantedTextSide({ dim: 48, modelId: 'planted/clip' });
    const minilm = new PlantedTextSide({ dim: 384, modelId: 'minilm', seed: 'other' });
    const seen: string[] = [];
    const first = await loadPromptBank(clip, minilm, { files: [file], home, onBank: (b, side) => seen.push(`${side}:${b.built}`) });
    expect(seen).toEqual(['clip:true', 'minilm:true']);
    expect(first.bank.texts).toEqual(prompts);
    expect(first.bank.size).toBe(60);
    // Both sides exact: fp32 is the default storage (the CLIP side is fp16 only when asked).
    const want = await minilm.encodeTexts(prompts);
    expect(Array.from(first.bank.minilm)).toEqual(Array.from(want));
    expect(Array.from(first.bank.clip)).toEqual(Array.from(await clip.encodeTexts(prompts)));
    expect(fs.existsSync(bankFilePath('planted/clip', first.def.name, home))).toBe(true);
    expect(fs.existsSync(bankFilePath('minilm', first.def.name, home))).toBe(true);

    clip.calls.length = 0;
    minilm.calls.length = 0;
    seen.length = 0;
    const again = await loadPromptBank(clip, minilm, { files: [file], home, onBank: (b, side) => seen.push(`${side}:${b.built}`) });
    expect(seen).toEqual(['clip:false', 'minilm:false']);
    expect(clip.calls).toEqual([]);
    expect(minilm.calls).toEqual([]);
    expect(Array.from(again.bank.clip)).toEqual(Array.from(first.bank.clip));
  });
});

describe('parseMemberList', () => {
  it('accepts known members and refuses unknown or repeated ones', () => {
    expect(parseMemberList('knn, map,interrogator')).toEqual(['knn', 'map', 'interrogator']);
    expect(parseMemberList('captioner')).toEqual(['captioner']);
    expect(() => parseMemberList('knn,nope')).toThrow('--members: unknown member "nope" (choose from knn, map, interrogator, captioner)');
    expect(() => parseMemberList('knn,knn')).toThrow('listed twice');
    expect(() => parseMemberList(' , ')).toThrow('names no members');
  });
});
