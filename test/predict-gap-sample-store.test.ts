import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GapSampleStore, sampleStoreFor } from '../src/predict/gap-sample-store.js';
import { inputNamesSummary, type RunDescription } from '../src/predict/checkpoint.js';
import { randomUnitRows } from './helpers/predict-fakes.js';
import { tempDir } from './helpers/paths.js';

const CLIP_DIM = 48;
const files = ['imgs/a.png', 'imgs/b.png', 'imgs/c.png', 'imgs/d.png'];
const ids = ['a', 'b', 'c', 'd'];
const run: RunDescription = { inputs: inputNamesSummary(files), options: { batchSize: 2, gapImages: 4 }, models: { clip: 'tiny@1', minilm: 'minilm@2' } };

let dir: string;
let file: string;
beforeEach(() => {
  dir = tempDir('img2prompt-gap-sample-');
  file = sampleStoreFor(path.join(dir, 'out.csv.ckpt'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('GapSampleStore', () => {
  it('gives back stored batches bit-exactly, failures included, and only whole batches', async () => {
    const embeds = randomUnitRows(3, CLIP_DIM, 9);
    const store = await GapSampleStore.open(file, run, { resume: false, clipDim: CLIP_DIM });
    await store.add(ids.slice(0, 2), { rows: [0, 1], reasons: [undefined, undefined], embeds: embeds.slice(0, 2 * CLIP_DIM) });
    // Not closed: as after a kill, what add() returned from is on disk.
    const notices: string[] = [];
    const back = await GapSampleStore.open(file, run, { resume: true, clipDim: CLIP_DIM, onNotice: (m) => notices.push(m) });
    expect(notices).toEqual([]);
    expect(back.size).toBe(2);
    const b0 = (await back.batch(ids.slice(0, 2)))!;
    expect(b0.rows).toEqual([0, 1]);
    expect(b0.reasons).toEqual([undefined, undefined]);
    expect(Buffer.from(b0.embeds.buffer).equals(Buffer.from(embeds.buffer, 0, 2 * CLIP_DIM * 4))).toBe(true);
    expect(await back.batch(ids.slice(2, 4))).toBeUndefined();

    // A batch with an unreadable image keeps its reason; a batch missing one file is not given back.
    await back.add(ids.slice(2, 4), { rows: [-1, 0], reasons: ['unsupported image format', undefined], embeds: embeds.slice(2 * CLIP_DIM) });
    await back.close();
    await store.close();
    const again = await GapSampleStore.open(file, run, { resume: true, clipDim: CLIP_DIM });
    const b1 = (await again.batch(ids.slice(2, 4)))!;
    expect(b1.rows).toEqual([-1, 0]);
    expect(b1.reasons).toEqual(['unsupported image format', undefined]);
    expect(Buffer.from(b1.embeds.buffer).equals(Buffer.from(embeds.buffer, 2 * CLIP_DIM * 4))).toBe(true);
    expect(await again.batch([ids[1]!, 'e'])).toBeUndefined();
    await again.close();
  });

  it('replaces a store of another run with a notice, and starts over when not resuming', async () => {
    const store = await GapSampleStore.open(file, run, { resume: false, clipDim: CLIP_DIM });
    await store.add(ids.slice(0, 2), { rows: [0, 1], reasons: [undefined, undefined], embeds: randomUnitRows(2, CLIP_DIM, 1) });
    await store.close();

    const notices: string[] = [];
    const other = await GapSampleStore.open(file, { ...run, options: { ...run.options, batchSize: 4 } }, { resume: true, clipDim: CLIP_DIM, onNotice: (m) => notices.push(m) });
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(/^ignoring the stored gap sample \(.*checkpoint belongs to a different run \(option batchSize: 2 → 4\).*\); its images are encoded again$/);
    expect(other.size).toBe(0);
    await other.close();

    const fresh = await GapSampleStore.open(file, run, { resume: false, clipDim: CLIP_DIM });
    expect(fresh.size).toBe(0);
    expect(await fresh.batch(ids.slice(0, 2))).toBeUndefined();
    await fresh.close();
  });
});
