import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PredictEngine } from '../src/predict/engine.js';
import { tempDir } from './helpers/paths.js';
import { copyKaggleImages, restoreHome, useTinyClipHome, writeSmallBankAndLabels, type SmallBank } from './helpers/tiny-clip-home.js';

/**
 * A list run in parts (a distributed run's chunks): the first part reports the modality gap it
 * estimated (onModalityGap) and a later part given that gap (modalityGap) skips the sample and gives
 * each of its images the very vector the whole run gives it.
 */
const home = tempDir('img2prompt-given-gap-home-');
const work = tempDir('img2prompt-given-gap-work-');
const images = path.join(work, 'images');
let bank: SmallBank;
let saved: string | undefined;

beforeAll(async () => {
  saved = await useTinyClipHome(home, 7);
  copyKaggleImages(images);
  bank = writeSmallBankAndLabels(work);
});

afterAll(() => {
  restoreHome(saved);
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

describe('a run given the modality gap of an earlier run', () => {
  it('skips the sample and gives the whole run\'s vectors, bit for bit', async () => {
    const files = fs.readdirSync(images).sort().map((f) => path.join(images, f));
    await using engine = await PredictEngine.open({ model: 'tiny', promptsBank: [bank.bankFile], labelsDir: bank.labelsDir, members: ['knn', 'map'] });
    let gap: Float32Array | null = null;
    const whole = new Map<string, Float32Array>();
    for await (const r of engine.run(files, { batchSize: 2, gapImages: 2, onModalityGap: (g) => (gap = g) })) whole.set(r.id, r.vector);
    expect(gap).toBeInstanceOf(Float32Array);
    const before = engine.counts.imagesEncoded;
    // The last two batches alone (images 4..6), given the gap: only they are encoded.
    let told = 0;
    for await (const r of engine.run(files.slice(4), { batchSize: 2, gapImages: 2, modalityGap: gap!, onModalityGap: () => told++ })) {
      expect(Buffer.from(r.vector.buffer, r.vector.byteOffset, r.vector.byteLength).equals(Buffer.from(whole.get(r.id)!.buffer, whole.get(r.id)!.byteOffset, whole.get(r.id)!.byteLength)), r.id).toBe(true);
    }
    expect(engine.counts.imagesEncoded - before).toBe(3);
    expect(told).toBe(1);
    const run = async () => {
      for await (const r of engine.run(files.slice(4), { modalityGap: new Float32Array(3) })) void r;
    };
    await expect(run()).rejects.toThrow(/modalityGap has 3 values/);
  }, 300_000);
});
