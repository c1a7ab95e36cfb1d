import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { loadBatches, type ImageBatch } from '../src/image/batch-loader.js';
import { ClipTransform } from '../src/image/clip-transform.js';
import { decodeImage } from '../src/image/decode.js';
import { KAGGLE_SAMPLE, asset, tempDir } from './helpers/paths.js';

// Watch decodeImage calls (to see when the loader starts each image); a file named boom.png fails the
// way a bug would (a plain Error, not an Img2PromptError).
const calls = vi.hoisted(() => ({ started: [] as string[] }));
vi.mock('../src/image/decode.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/image/decode.js')>();
  return {
    ...real,
    decodeImage: async (input: string | Uint8Array, options?: Parameters<typeof real.decodeImage>[1]) => {
      calls.started.push(String(input));
      if (String(input).endsWith('boom.png')) throw new Error('boom: not an image problem');
      return real.decodeImage(input, options);
    },
  };
});

const KAGGLE = fs.readdirSync(path.join(KAGGLE_SAMPLE, 'images')).sort().map((f) => path.join(KAGGLE_SAMPLE, 'images', f));
const tmp = tempDir('img2prompt-batches-');
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const truncated = path.join(tmp, 'broken.png');
const text = path.join(tmp, 'readme.png');
const coffee = fs.readFileSync(asset('images', 'skimage-coffee.png'));
fs.writeFileSync(truncated, coffee.subarray(0, coffee.length >> 1));
fs.writeFileSync(text, 'not an image\n');

const transform = new ClipTransform({ size: 224 });
const PER = transform.floatsPerImage;
const single = new Map<string, Float32Array>();
async function alone(file: string): Promise<Float32Array> {
  if (!single.has(file)) {
    const out = new Float32Array(PER);
    await transform.into(await decodeImage(file), out, 0);
    single.set(file, out);
  }
  return single.get(file)!;
}

/** Bitwise equality of float arrays (vitest's toEqual walks 150k elements one by one). */
const sameBits = (a: Float32Array, b: Float32Array) =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** Every batch, its pixels copied (the loader reuses its buffers). */
async function collect(batches: AsyncGenerator<ImageBatch>): Promise<ImageBatch[]> {
  const out: ImageBatch[] = [];
  for await (const b of batches) out.push({ ...b, pixels: b.pixels.slice() });
  return out;
}

async function waitFor(condition: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('loadBatches', () => {
  it('yields the loadable images in order, lists the others as failures, reuses two buffers', async () => {
    const files = [KAGGLE[0], KAGGLE[1], truncated, KAGGLE[2], KAGGLE[3], text, KAGGLE[4], KAGGLE[5], KAGGLE[6]];
    const seen: { ids: string[]; files: string[]; failures: ImageBatch['failures']; buffer: ArrayBufferLike; b: number }[] = [];
    for await (const batch of loadBatches(files, { batchSize: 4, size: 224, concurrency: 3 })) {
      expect(batch.pixels.length).toBe(batch.ids.length * PER);
      // The pixels are only guaranteed inside the loop body: check them here.
      for (const [slot, file] of batch.files.entries()) {
        expect(sameBits(batch.pixels.subarray(slot * PER, (slot + 1) * PER), await alone(file)), file).toBe(true);
      }
      seen.push({ ids: batch.ids, files: batch.files, failures: batch.failures, buffer: batch.pixels.buffer, b: batch.ids.length });
    }
    const id = (f: string) => path.basename(f, '.png');
    expect(seen.map((s) => s.ids)).toEqual([
      [id(KAGGLE[0]), id(KAGGLE[1]), id(KAGGLE[2])],
      [id(KAGGLE[3]), id(KAGGLE[4]), id(KAGGLE[5])],
      [id(KAGGLE[6])],
    ]);
    expect(seen[0].failures).toHaveLength(1);
    expect(seen[0].failures[0].file).toBe(truncated);
    expect(seen[0].failures[0].reason).toMatch(/^cannot decode image: corrupt or truncated pixel data \(header reads png 600x400\)/);
    expect(seen[1].failures).toEqual([{ file: text, reason: expect.stringMatching(/^not a supported image/), index: files.indexOf(text) }]);
    expect(seen[2].failures).toEqual([]);
    // Double buffering: batches 0 and 2 share a buffer, batch 1 has the other one.
    expect(seen[0].buffer).toBe(seen[2].buffer);
    expect(seen[1].buffer).not.toBe(seen[0].buffer);
    expect(seen[0].buffer.byteLength).toBe(4 * PER * 4);
  });

  it('decodes batch k+1 while the caller holds batch k, and never more than that', async () => {
    const files = Array.from({ length: 12 }, (_, i) => KAGGLE[i % KAGGLE.length]);
    calls.started.length = 0;
    let k = 0;
    for await (const batch of loadBatches(files, { batchSize: 4, size: 224, concurrency: 2 })) {
      const snapshot = batch.pixels.slice();
      const ahead = Math.min(files.length, (k + 2) * 4);
      // Without asking for the next batch, its images get decoded...
      await waitFor(() => calls.started.length === ahead, `batch ${k + 1} to start`);
      await new Promise((r) => setTimeout(r, 150));
      // ...but not those of the batch after it (bounded to two batches),
      expect(calls.started.length).toBe(ahead);
      // and this batch's pixels stay intact meanwhile (the prefetch writes into the other buffer).
      expect(sameBits(batch.pixels, snapshot)).toBe(true);
      k++;
    }
    expect(k).toBe(3);
  });

  it('stops on errors that are not about an image', async () => {
    const boom = path.join(tmp, 'boom.png');
    const run = async () => {
      for await (const _ of loadBatches([KAGGLE[0], boom, KAGGLE[1]], { batchSize: 2, size: 64 })) void _;
    };
    await expect(run()).rejects.toThrow('boom: not an image problem');
  });

  it('survives a caller that stops early while the next batch is in flight', async () => {
    let batches = 0;
    for await (const batch of loadBatches(KAGGLE, { batchSize: 2, size: 64 })) {
      batches++;
      expect(batch.ids).toHaveLength(2);
      break;
    }
    expect(batches).toBe(1);
    // The abandoned prefetch finishes quietly; a new loader still works.
    const again: string[] = [];
    for await (const batch of loadBatches(KAGGLE.slice(0, 3), { batchSize: 8, size: 64 })) again.push(...batch.ids);
    expect(again).toHaveLength(3);
  });

  it('yields nothing for no files, and checks its options', async () => {
    const none: ImageBatch[] = [];
    for await (const batch of loadBatches([], { batchSize: 4, size: 224 })) none.push(batch);
    expect(none).toEqual([]);
    await expect(loadBatches(KAGGLE, { batchSize: 0, size: 224 }).next()).rejects.toThrow(/batchSize/);
    await expect(loadBatches(KAGGLE, { batchSize: 2, size: 224, concurrency: 0 }).next()).rejects.toThrow(/concurrency/);
    await expect(loadBatches(KAGGLE, { batchSize: 2, size: 0 }).next()).rejects.toThrow(/size/);
  });

  it('passes the processor and the EXIF choice through, decoding with alpha for the transform', async () => {
    const files = [asset('images', 'pillow-hopper_orientation_6.jpg'), asset('images', 'pillow-pil123rgba.png'), asset('images', 'skimage-rocket.jpg')];
    for (const processor of ['open_clip', 'hf'] as const) {
      for (const exif of ['apply', 'ignore'] as const) {
        const t = new ClipTransform({ size: 224, processor });
        const [batch] = await collect(loadBatches(files, { batchSize: 3, size: 224, processor, exif }));
        for (const [i, file] of files.entries()) {
          const out = new Float32Array(PER);
          await t.into(await decodeImage(file, { exif, alpha: 'keep' }), out, 0);
          expect(sameBits(batch!.pixels.subarray(i * PER, (i + 1) * PER), out), `${processor} ${exif} ${file}`).toBe(true);
        }
      }
    }
    await expect(collect(loadBatches(files, { batchSize: 1, size: 224, exif: 'upright' as never }))).rejects.toThrow(
      new RangeError('loadBatches(): Expected one of "apply", "ignore" for exif but received "upright"'),
    );
  });

});
