import fs from 'node:fs';
import { expect } from 'vitest';
import type { TextEmbedder } from '../../src/text/embedder.js';
import { Img2PromptError } from '../../src/util/errors.js';

/**
 * Deterministic stand-in for MiniLM: a bag of words over a fixed vocabulary, L2-normalised, so expected
 * cosines can be worked out by hand. Unknown words are an error (a test typo should not pass silently).
 */
export class BagOfWordsEmbedder implements TextEmbedder {
  readonly calls: { texts: string[]; batchSize?: number }[] = [];

  constructor(
    readonly vocab: Readonly<Record<string, number>>,
    readonly dim: number,
  ) {}

  async embed(texts: string[], options: { onProgress?: (done: number) => void; batchSize?: number } = {}): Promise<Float32Array> {
    this.calls.push({ texts: [...texts], batchSize: options.batchSize });
    const out = new Float32Array(texts.length * this.dim);
    texts.forEach((text, i) => {
      const row = out.subarray(i * this.dim, (i + 1) * this.dim);
      for (const word of text.toLowerCase().split(/[^a-z]+/).filter(Boolean)) {
        const slot = this.vocab[word];
        if (slot === undefined) throw new Error(`fake embedder: word "${word}" not in vocabulary`);
        row[slot] += 1;
      }
      const norm = Math.hypot(...row);
      if (norm === 0) throw new Error(`fake embedder: no words in "${text}"`);
      for (let j = 0; j < row.length; j++) row[j] /= norm;
      options.onProgress?.(i + 1);
    });
    return out;
  }
}

/** Files in `dir`, hidden ones (atomic-write temps) included, sorted. */
export function listDir(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

/** Assert `promise` rejects with an Img2PromptError naming `file` whose reason matches `reason`. */
export async function expectBadInput(promise: Promise<unknown>, file: string, reason: RegExp): Promise<Img2PromptError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected a rejection').toBeInstanceOf(Img2PromptError);
  const e = err as Img2PromptError;
  expect(e.file).toBe(file);
  expect(e.message.startsWith(`${file}: `)).toBe(true);
  expect(e.reason).toMatch(reason);
  return e;
}

/** Copy of `items` with element `i` replaced (Array.prototype.with needs the ES2023 lib). */
export function replaceAt(items: string[], i: number, value: string): string[] {
  const copy = [...items];
  copy[i] = value;
  return copy;
}

/** Copy of `items` spliced (Array.prototype.toSpliced needs the ES2023 lib). */
export function spliceCopy(items: string[], start: number, deleteCount: number, ...insert: string[]): string[] {
  const copy = [...items];
  copy.splice(start, deleteCount, ...insert);
  return copy;
}
