import { describe, expect, it } from 'vitest';
import { processScores } from '../src/caption/logits-processors.js';
import { generateCaptions, resolveGenerationOptions, DEFAULT_GENERATION } from '../src/caption/generate.js';
import type { DecoderStepper } from '../src/caption/decoder-stepper.js';

/**
 * The generation pieces with answers worked out by hand (transformers' own behaviour is checked
 * end to end by caption-parity.test.ts): the logits processors, option checks, and how the searches
 * drive a model (finished images leave the batch, beams are reordered through the cache).
 */

const EOS = 3;
const settings = { repetitionPenalty: 1, noRepeatNgramSize: 0, minLength: 0, eosTokenId: EOS };

describe('logits processors', () => {
  it('repetition penalty divides positive and multiplies negative scores of seen tokens, once each', () => {
    const s = Float32Array.of(2, -2, 4, -1, 5);
    processScores(s, [0, 1, 1, 3], { ...settings, repetitionPenalty: 2 });
    expect([...s]).toEqual([1, -4, 4, -2, 5]);
  });

  it('bans the tokens that would repeat an n-gram, and nothing before n tokens exist', () => {
    const s = new Float32Array(10);
    processScores(s, [5, 6, 7, 5, 6], { ...settings, noRepeatNgramSize: 3 });
    expect([...s.keys()].filter((i) => s[i] === -Infinity)).toEqual([7]);
    const t = new Float32Array(10);
    processScores(t, [1, 2, 1, 4, 1], { ...settings, noRepeatNgramSize: 2 });
    expect([...t.keys()].filter((i) => t[i] === -Infinity)).toEqual([2, 4]);
    const u = new Float32Array(10);
    processScores(u, [1, 1], { ...settings, noRepeatNgramSize: 3 });
    expect([...u].every((v) => v === 0)).toBe(true);
  });

  it('bans the end token below the minimum length (prompt included) only', () => {
    const s = new Float32Array(5);
    processScores(s, [0, 1, 2], { ...settings, minLength: 4 });
    expect(s[EOS]).toBe(-Infinity);
    const t = new Float32Array(5);
    processScores(t, [0, 1, 2, 1], { ...settings, minLength: 4 });
    expect(t[EOS]).toBe(0);
  });
});

describe('generation options', () => {
  it('fills the reference notebook\'s defaults', () => {
    expect(resolveGenerationOptions({})).toEqual(DEFAULT_GENERATION);
    expect(DEFAULT_GENERATION).toMatchObject({ numBeams: 8, maxLength: 32, minLength: 5 });
  });

  it('names the option out of range', () => {
    expect(() => resolveGenerationOptions({ numBeams: 0 })).toThrow('numBeams must be an integer from 1 to 64, got 0');
    expect(() => resolveGenerationOptions({ maxLength: 10, minLength: 11 })).toThrow('minLength must be an integer from 0 to 10, got 11');
    expect(() => resolveGenerationOptions({ lengthPenalty: NaN })).toThrow('lengthPenalty must be a finite number');
    expect(() => resolveGenerationOptions({ earlyStopping: 'sometimes' as never })).toThrow('earlyStopping must be true, false or "never"');
    expect(() => resolveGenerationOptions({ noRepeatNgramSize: 1.5 }, (k) => `--${k}`)).toThrow('--noRepeatNgramSize must be an integer');
  });
});

/**
 * A model whose next-token scores depend only on the image and the last token: image i after token t
 * favours token script[i][t] (logit 5 against 0 elsewhere). Every call is recorded.
 */
class ScriptedModel implements DecoderStepper<{ rows: number[] }> {
  readonly vocabSize = 6;
  readonly calls: { images: number[]; rows: number; tokens: number[] }[] = [];
  constructor(private readonly script: Record<number, number>[]) {}

  async step(tokens: BigInt64Array, rows: number, seqLen: number, images: readonly number[], past: { rows: number[] } | undefined) {
    this.calls.push({ images: [...images], rows, tokens: Array.from(tokens, Number) });
    const per = rows / images.length;
    const logits = new Float32Array(rows * this.vocabSize);
    for (let r = 0; r < rows; r++) {
      const image = images[Math.floor(r / per)]!;
      const last = Number(tokens[r * seqLen + seqLen - 1]);
      logits[r * this.vocabSize + this.script[image]![last]!] = 5;
    }
    return { logits, past: { rows: past ? past.rows : Array.from({ length: rows }, (_, i) => i) } };
  }

  selectRows(past: { rows: number[] }, rows: readonly number[]) {
    return { rows: rows.map((r) => past.rows[r]!) };
  }
}

describe('searches driving a model', () => {
  // BOS = 0. Image 0: 0 → 1 → 3 (ends); image 1: 0 → 2 → 4 → 2 → 4 ...; image 2: 0 → 4 → 3.
  const script: Record<number, number>[] = [{ 0: 1, 1: 3 }, { 0: 2, 2: 4, 4: 2 }, { 0: 4, 4: 3 }];
  const options = { ...DEFAULT_GENERATION, numBeams: 1, maxLength: 6, minLength: 0 };

  it('greedy: each image stops at its end token and leaves the batch; the rest go on alone', async () => {
    const model = new ScriptedModel(script);
    const out = await generateCaptions(model, 3, [0], options, EOS);
    expect(out.map((o) => o.tokens)).toEqual([[0, 1, 3], [0, 2, 4, 2, 4, 2], [0, 4, 3]]);
    expect(model.calls.map((c) => c.images)).toEqual([[0, 1, 2], [0, 1, 2], [1], [1], [1]]);
    expect(model.calls.map((c) => c.tokens)).toEqual([[0, 0, 0], [1, 2, 4], [4], [2], [4]]);
  });

  it('greedy with a 2-gram ban takes the next best token instead of repeating', async () => {
    const model = new ScriptedModel(script);
    const out = await generateCaptions(model, 3, [0], { ...options, noRepeatNgramSize: 2 }, EOS);
    // Image 1 may not say "2 4" twice: after 0 2 4 2 the token 4 is banned and token 0 (the first of the
    // tied zeros) follows; after that 0, "0 2" is banned too, and 0 comes again.
    expect(out[1]!.tokens).toEqual([0, 2, 4, 2, 0, 0]);
  });

  it('beam search runs numBeams rows per image, image-major, and stops each image on its own', async () => {
    const model = new ScriptedModel(script);
    const out = await generateCaptions(model, 3, [0], { ...options, numBeams: 2 }, EOS);
    expect(out[0]!.tokens).toEqual([0, 1, 3]);
    expect(out[2]!.tokens).toEqual([0, 4, 3]);
    expect(model.calls[0]).toMatchObject({ images: [0, 1, 2], rows: 6 });
    // Images 0 and 2 have two finished hypotheses that no running beam can beat by step 3; image 1 runs to the end.
    expect(model.calls.at(-1)!.images).toEqual([1]);
    expect(model.calls.at(-1)!.rows).toBe(2);
  });
});
