// Issue 15, distributed: the pieces of src/queue/ that need no Redis — a result's encoding (bit-exact),
// the inputs a chunk is run with (the gap sample first), run names, and the run's stored options.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeImageResult, encodeImageResult, type ImageResult } from '../src/queue/image-result.js';
import { chunkRunInputs } from '../src/queue/chunk-runner.js';
import { checkRunName, runKeys } from '../src/queue/run-keys.js';
import { storedEngineOptions, type RunSpec, type StoredEngineOptions } from '../src/queue/run-spec.js';
import { parseRedisUrl } from '../src/queue/redis-connection.js';

describe('an image result in Redis', () => {
  it('gives back the vector bit for bit and every field', () => {
    const vector = new Float32Array(384).map((_, i) => Math.fround(Math.sin(i + 1) / 7));
    vector[3] = -0;
    vector[5] = 1.401298464324817e-45; // the smallest subnormal
    const r: ImageResult = { id: 'a1', vector, prompt: 'a cat, by "x", 8k', caption: 'a cat', nearest: { text: 'cat, photo', similarity: 0.3125 } };
    const back = decodeImageResult('a1', encodeImageResult(r), 'results');
    expect(Buffer.from(back.vector.buffer).equals(Buffer.from(vector.buffer))).toBe(true);
    expect(back).toEqual({ ...r, vector: back.vector });
    expect(Object.is(back.vector[3], -0)).toBe(true);
  });

  it('keeps an unreadable image\'s input and reason, with no prompt', () => {
    const r: ImageResult = { id: 'b', vector: new Float32Array(384).fill(0.05), prompt: null, caption: null, nearest: null, failure: { file: 'https://h/b.png', reason: 'HTTP 404' } };
    expect(decodeImageResult('b', encodeImageResult(r), 'results')).toEqual(r);
  });

  it('is the 384 float32 values little-endian, then the fields as JSON', () => {
    const vector = new Float32Array(384).fill(0.5);
    const stored = encodeImageResult({ id: 'd', vector, prompt: 'p', caption: null, nearest: null });
    expect(stored.length).toBe(384 * 4 + '{"p":"p"}'.length);
    expect(stored.readFloatLE(4 * 383)).toBe(0.5);
    expect(stored.subarray(1536).toString()).toBe('{"p":"p"}');
  });

  it('refuses a stored value too short or damaged, naming the image', () => {
    expect(() => decodeImageResult('c', Buffer.alloc(12), 'k')).toThrow('k: the result of image "c" holds 12 bytes, less than 384 float32 values and its fields');
    expect(() => decodeImageResult('c', Buffer.concat([Buffer.alloc(1536), Buffer.from('{"p":')]), 'k')).toThrow('k: the result of image "c" is damaged (its fields are not JSON)');
  });
});

describe('the inputs of a chunk', () => {
  const spec = { gapSample: { files: ['/i/a.png', '/i/b.png', '/i/c.png', '/i/d.png'], ids: ['a', 'b', 'c', 'd'] } } as RunSpec;
  const job = { run: 'r', chunk: 1, ids: ['c', 'd', 'e', 'f'], files: ['/i/c.png', '/i/d.png', '/i/e.png', '/i/f.png'] };

  it('with the map member: the gap sample, then the chunk\'s images not in it', () => {
    expect(chunkRunInputs(spec, job, true)).toEqual({ ids: ['a', 'b', 'c', 'd', 'e', 'f'], files: ['/i/a.png', '/i/b.png', '/i/c.png', '/i/d.png', '/i/e.png', '/i/f.png'] });
  });

  it('without it: the chunk alone', () => {
    expect(chunkRunInputs(spec, job, false)).toEqual({ ids: job.ids, files: job.files });
  });
});

describe('runs and their options', () => {
  it('names: letters, digits, . _ -', () => {
    expect(runKeys(checkRunName('kaggle-1.v2_a'))).toMatchObject({ queue: 'img2prompt-kaggle-1.v2_a', results: 'img2prompt:run:kaggle-1.v2_a:results' });
    for (const bad of ['', 'a b', 'a:b', '-a', 'x'.repeat(101)]) expect(() => checkRunName(bad)).toThrow(/--run must be 1-100 letters/);
  });

  it('makes the files the flags name absolute, keeping cache names', () => {
    const opts = {
      model: 'tiny', captionModel: './blip', promptsBank: ['bank.txt'], labels: ['extra'], labelsDir: 'labels', map: 'm.json', weights: 'w.json',
      member: ['vit=models/vit.onnx'], dtype: 'fp32', mode: 'fast',
    } as StoredEngineOptions;
    const stored = storedEngineOptions(opts);
    const abs = (f: string) => path.resolve(f);
    expect(stored).toEqual({
      model: 'tiny', captionModel: abs('blip'), promptsBank: [abs('bank.txt')], labels: [abs('extra')], labelsDir: abs('labels'), map: abs('m.json'), weights: abs('w.json'),
      member: [`vit=${abs('models/vit.onnx')}`], dtype: 'fp32', mode: 'fast',
    });
  });

  it('--redis must be a redis:// URL', () => {
    expect(parseRedisUrl('redis://h:6379/2').port).toBe('6379');
    expect(() => parseRedisUrl('h:6379x')).toThrow('--redis must be');
    expect(() => parseRedisUrl('http://h:6379')).toThrow('--redis must be a redis:// or rediss:// URL, got "http://h:6379"');
  });
});
