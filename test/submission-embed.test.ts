import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EMBED_CHUNK, embedPrompts } from '../src/submission/embed-prompts.js';
import { embedCommand } from '../src/cli/commands/embed.js';
import { openMiniLMEmbedder } from '../src/submission/default-embedder.js';
import { EMBEDDING_DIM, readSubmission } from '../src/submission/submission-csv.js';
import { validateSubmission } from '../src/submission/validate.js';
import type { TextEmbedder } from '../src/text/embedder.js';
import { Img2PromptError } from '../src/util/errors.js';
import { tempDir } from './helpers/paths.js';
import { BagOfWordsEmbedder, expectBadInput, listDir } from './helpers/submission-fakes.js';

let dir: string;
beforeEach(() => {
  dir = tempDir('img2prompt-embed-');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const VOCAB = { cat: 0, dog: 1, red: 2, blue: 3, on: 4, mat: 383 };
const words384 = (): BagOfWordsEmbedder => new BagOfWordsEmbedder(VOCAB, EMBEDDING_DIM);

describe('embedPrompts', () => {
  it('returns row-major vectors in row order, passing the batch size on', async () => {
    const embedder = new BagOfWordsEmbedder(VOCAB, 384);
    const rows = [
      { imgId: 'a', prompt: 'cat on mat' },
      { imgId: 'b', prompt: 'red dog' },
    ];
    const out = await embedPrompts(rows, embedder, { batchSize: 3 });
    expect(out).toHaveLength(2 * 384);
    const k = Math.fround(1 / Math.sqrt(3));
    expect([out[0], out[4], out[383], out[1]]).toEqual([k, k, k, 0]);
    expect([out[384 + 1], out[384 + 2]]).toEqual([Math.fround(Math.SQRT1_2), Math.fround(Math.SQRT1_2)]);
    expect(embedder.calls).toEqual([{ texts: ['cat on mat', 'red dog'], batchSize: 3 }]);
  });

  it('hands large inputs to the embedder in chunks and reports monotonic progress up to the total', async () => {
    const embedder = new BagOfWordsEmbedder({ cat: 0, dog: 1 }, 2);
    const n = EMBED_CHUNK + 5;
    const rows = Array.from({ length: n }, (_, i) => ({ imgId: `i${i}`, prompt: i % 2 ? 'cat' : 'dog' }));
    const seen: number[] = [];
    const out = await embedPrompts(rows, embedder, { onProgress: (d) => seen.push(d) });
    expect(embedder.calls.map((c) => c.texts.length)).toEqual([EMBED_CHUNK, 5]);
    expect([out[2 * (n - 1)], out[2 * (n - 1) + 1]]).toEqual([0, 1]); // last row (even index): "dog"
    expect(seen.at(-1)).toBe(n);
    expect(seen.every((d, i) => i === 0 || d >= seen[i - 1])).toBe(true);
  });

  it('rejects a bad batch size and broken embedder output', async () => {
    const rows = [{ imgId: 'a', prompt: 'cat' }];
    await expect(embedPrompts(rows, words384(), { batchSize: 0 })).rejects.toThrow(new RangeError('embedPrompts(): Expected an integer >= 1 for batchSize but received 0'));
    const short: TextEmbedder = { dim: 384, embed: async () => new Float32Array(10) };
    await expect(embedPrompts(rows, short)).rejects.toThrow('embedder returned 10 values for 1 prompts of dimension 384');
    const nan: TextEmbedder = { dim: 2, embed: async () => new Float32Array([NaN, 0]) };
    await expect(embedPrompts(rows, nan)).rejects.toThrow('embedder returned a non-finite value for imgId "a"');
  });
});

describe('embed command', () => {
  function promptsFile(content: string): string {
    const file = path.join(dir, 'prompts.csv');
    fs.writeFileSync(file, content);
    return file;
  }

  it('prompts CSV -> valid submission holding the embeddings', async () => {
    const prompts = promptsFile('imgId,prompt\nimg_1,cat on mat\nimg_2,"red, blue dog"\n');
    const output = path.join(dir, 'submission.csv');
    expect(await embedCommand({ prompts, output, embedder: words384() })).toEqual({ images: 2 });
    const report = await validateSubmission(output, { imageIds: ['img_1', 'img_2'] });
    expect(report).toMatchObject({ valid: true, images: 2, rows: 768, warnings: [] });
    const { ids, vectors } = await readSubmission(output);
    expect(ids).toEqual(['img_1', 'img_2']);
    expect(vectors).toEqual(await words384().embed(['cat on mat', 'red, blue dog']));
    expect(listDir(dir)).toEqual(['prompts.csv', 'submission.csv']);
  });

  it('leaves no output and no temp file when the prompts are bad', async () => {
    const prompts = promptsFile('imgId,prompt\na,cat\nb,"unclosed\n');
    const output = path.join(dir, 'submission.csv');
    await expectBadInput(embedCommand({ prompts, output, embedder: words384() }), prompts, /^line 3: unclosed quote/);
    expect(listDir(dir)).toEqual(['prompts.csv']);
  });

  it('leaves no output when the embedder fails part-way, and keeps an older output intact', async () => {
    const prompts = promptsFile('imgId,prompt\na,cat\nb,zebra\n');
    const output = path.join(dir, 'submission.csv');
    fs.writeFileSync(output, 'older');
    await expect(embedCommand({ prompts, output, embedder: words384() })).rejects.toThrow('word "zebra" not in vocabulary');
    expect(listDir(dir)).toEqual(['prompts.csv', 'submission.csv']);
    expect(fs.readFileSync(output, 'utf8')).toBe('older');
  });

  it('refuses an embedder of the wrong dimension and bad output paths before embedding', async () => {
    const prompts = promptsFile('imgId,prompt\na,cat\n');
    const embedder = new BagOfWordsEmbedder(VOCAB, 384);
    const output = path.join(dir, 'submission.csv');
    await expect(embedCommand({ prompts, output, embedder: new BagOfWordsEmbedder(VOCAB, 4) })).rejects.toThrow(
      'embedder gives 4-d vectors; a Kaggle submission needs 384',
    );
    const noDir = path.join(dir, 'missing', 'out.csv');
    await expectBadInput(embedCommand({ prompts, output: noDir, embedder }), noDir, /^output folder .*missing does not exist/);
    await expectBadInput(embedCommand({ prompts, output: dir, embedder }), dir, /^output is a directory/);
    await expectBadInput(embedCommand({ prompts, output: prompts, embedder }), prompts, /would overwrite the prompts CSV/);
    expect(embedder.calls).toEqual([]);
    expect(listDir(dir)).toEqual(['prompts.csv']);
  });
});

describe('default embedder', () => {
  it('says how to install MiniLM when it is not in the model cache', async () => {
    const saved = process.env.IMG2PROMPT_HOME;
    process.env.IMG2PROMPT_HOME = dir;
    try {
      const err = await openMiniLMEmbedder().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Img2PromptError);
      expect((err as Error).message).toBe(
        `${path.join(dir, 'models', 'minilm')}: the MiniLM text model is not installed; run \`img2prompt models pull minilm\``,
      );
    } finally {
      if (saved === undefined) delete process.env.IMG2PROMPT_HOME;
      else process.env.IMG2PROMPT_HOME = saved;
    }
  });
});
