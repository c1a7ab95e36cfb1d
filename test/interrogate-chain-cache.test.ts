// The prefix-cached chain: the text graph that continues a cached prefix gives the full tower's
// embeddings, ClipModel.encodeTextsSharingPrefix equals encodeTexts on chain-like candidates, and best
// and negative modes choose exactly the same labels with the cache on and off (a seeded random tiny
// CLIP, real label lists, the Kaggle images).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session, tensor, type Tensor } from '../src/runtime/session.js';
import { tinyClipConfig } from '../src/clip/config.js';
import { randomClipWeights } from '../src/clip/random-checkpoint.js';
import { ClipModel } from '../src/clip/model.js';
import { sharedPrefixLength } from '../src/clip/prefix-encoder.js';
import { TEXT_PREFIX_ONNX } from '../src/clip/onnx-cache.js';
import { buildClipTextGraph, clipTextPrefixGraphBuilder } from '../models/graph/clip-text.js';
import { interrogate, type InterrogatedImage } from '../src/interrogate/interrogate.js';
import { chain, rankMerged, mergedBanks } from '../src/interrogate/modes.js';
import { asset, tempDir } from './helpers/paths.js';
import { copyKaggleImages, restoreHome, useTinyClipHome } from './helpers/tiny-clip-home.js';
import { maxAbsDiff } from './reference/compare.js';
import { PlantedTextSide, plantedBank, plantedImage, syntheticLabels } from './helpers/planted.js';

describe('sharedPrefixLength', () => {
  it('is the longest common token prefix, leaving every sequence its last token', () => {
    expect(sharedPrefixLength([[1, 2, 3, 9], [1, 2, 4, 9], [1, 2, 3, 5, 9]])).toBe(2);
    expect(sharedPrefixLength([[1, 2, 3, 9], [1, 2, 3, 9]])).toBe(3);
    expect(sharedPrefixLength([[1, 2, 9], [1, 2, 3, 4, 9]])).toBe(2);
    expect(sharedPrefixLength([[1, 9], [1, 2, 9]])).toBe(1);
    expect(sharedPrefixLength([[7, 9], [8, 9]])).toBe(0);
    expect(sharedPrefixLength([[1, 2, 3, 9]])).toBe(3);
  });
});

describe('prefix-cached text graph', () => {
  it('continues a prefix to the full tower\'s embeddings; with an empty past it is the full tower bit for bit', async () => {
    const config = tinyClipConfig();
    const weights = randomClipWeights(config, 3);
    const full = await Session.open(buildClipTextGraph(config, weights));
    const cached = await Session.open(clipTextPrefixGraphBuilder(config, weights).toBytes());
    const { heads, width } = config.text;
    const layers = weights.text.blocks.length;
    const empty = tensor('float32', new Float32Array(0), [1, heads, 0, width / heads]);
    const emptyPast = Object.fromEntries(Array.from({ length: layers }, (_, i) => [[`past_key_${i}`, empty], [`past_value_${i}`, empty]]).flat());
    const ids = (rows: number[][]) => tensor('int64', BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0]!.length]);
    try {
      const seq = [49406, 320, 1125, 539, 320, 2368, 267, 1310, 267, 4472, 49407];
      const want = (await full.run({ input_ids: ids([seq]) })).text_embeds!.data as Float32Array;
      const whole = (await cached.run({ input_ids: ids([seq]), ...emptyPast }, { outputNames: ['text_embeds'] })).text_embeds!.data as Float32Array;
      expect(maxAbsDiff(whole, want)).toBe(0);
      for (const p of [1, 5, seq.length - 1]) {
        const names = Array.from({ length: layers }, (_, i) => [`present_key_${i}`, `present_value_${i}`]).flat();
        const kv = await cached.run({ input_ids: ids([seq.slice(0, p)]), ...emptyPast }, { outputNames: names });
        const past: Record<string, Tensor> = {};
        for (let i = 0; i < layers; i++) {
          expect(kv[`present_key_${i}`]!.dims).toEqual([1, heads, p, width / heads]);
          past[`past_key_${i}`] = kv[`present_key_${i}`]!;
          past[`past_value_${i}`] = kv[`present_value_${i}`]!;
        }
        const got = (await cached.run({ input_ids: ids([seq.slice(p)]), ...past }, { outputNames: ['text_embeds'] })).text_embeds!.data as Float32Array;
        expect(maxAbsDiff(got, want)).toBeLessThan(1e-6);
      }
    } finally {
      full.close();
      cached.close();
    }
  });
});

describe('chain cache with a real (random tiny) CLIP', () => {
  const home = tempDir('img2prompt-chain-cache-home-');
  const work = tempDir('img2prompt-chain-cache-work-');
  const imagesDir = path.join(work, 'images');
  const labelsDir = path.join(work, 'labels');
  let saved: string | undefined;

  beforeAll(async () => {
    saved = await useTinyClipHome(home, 23);
    copyKaggleImages(imagesDir);
    fs.mkdirSync(labelsDir);
    for (const [f, n] of [['artists', 60], ['flavors', 400], ['mediums', 40], ['movements', 60], ['sites', 18], ['negative', 41]] as const) {
      const all = fs.readFileSync(asset('labels', `${f}.txt`), 'utf8').split('\n').filter((l) => l.trim() !== '');
      fs.writeFileSync(path.join(labelsDir, `${f}.txt`), all.slice(0, n).join('\n') + '\n');
    }
  });

  afterAll(() => {
    restoreHome(saved);
    fs.rmSync(home, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('encodeTextsSharingPrefix equals encodeTexts on chain candidates, odd joins and overlong texts included', async () => {
    const model = await ClipModel.open('tiny');
    try {
      const prompt = 'a painting of a lighthouse in a storm, dramatic lighting';
      const labels = ['trending on artstation', 'by rembrandt', 'oil on canvas', '!!!', 'a', 'café au lait', Array.from({ length: 90 }, (_, i) => `w${i}`).join(' ')];
      const texts = [...labels.map((l) => `${prompt}, ${l}`), `${prompt}.`, `${prompt}..., more`];
      const want = await model.encodeTexts(texts);
      const got = await model.encodeTextsSharingPrefix(texts);
      expect(maxAbsDiff(got, want)).toBeLessThan(1e-6);
      expect(fs.existsSync(path.join(model.dir, TEXT_PREFIX_ONNX))).toBe(true);
      // Nothing in common but the start token, and a single text.
      expect(maxAbsDiff(await model.encodeTextsSharingPrefix(['cat', 'dog house']), await model.encodeTexts(['cat', 'dog house']))).toBeLessThan(1e-6);
      expect(maxAbsDiff(await model.encodeTextsSharingPrefix([prompt]), await model.encodeTexts([prompt]))).toBeLessThan(1e-6);
    } finally {
      model.close();
    }
  });

  it('best and negative choose the same labels with the cache on and off', async () => {
    const files = fs.readdirSync(imagesDir).sort().map((f) => path.join(imagesDir, f));
    const run = async (mode: 'best' | 'negative', chainCache: boolean) => {
      const out: InterrogatedImage[] = [];
      for await (const r of interrogate(files, { model: 'tiny', labelsDir, mode, chainCache, shortlist: 300, maxFlavors: 12 })) out.push(r);
      return out;
    };
    for (const mode of ['best', 'negative'] as const) {
      const [on, off] = [await run(mode, true), await run(mode, false)];
      expect(on.map((r) => r.prompt)).toEqual(off.map((r) => r.prompt));
      expect(on.map((r) => r.labels.map((l) => l.label))).toEqual(off.map((r) => r.labels.map((l) => l.label)));
      expect(on.map((r) => r.picked)).toEqual(off.map((r) => r.picked));
      on.forEach((r, i) => expect(Math.abs(r.similarity - off[i]!.similarity)).toBeLessThan(1e-5));
      // The chains really ran: every image got labels beyond a single one.
      expect(on.every((r) => r.labels.length >= 2)).toBe(true);
    }
  });
});

describe('chain routing', () => {
  it('scores candidates through encodeTextsSharingPrefix unless chainCache is false', async () => {
    const side = new PlantedTextSide({ dim: 64 });
    const labels = syntheticLabels('flav', 50);
    side.know(labels);
    const shared: number[] = [];
    const plain: number[] = [];
    const encode = side.encodeTexts.bind(side);
    side.encodeTexts = async (texts: string[]) => (plain.push(texts.length), encode(texts));
    const withShared = Object.assign(side, { encodeTextsSharingPrefix: async (texts: string[]) => (shared.push(texts.length), encode(texts)) });
    const bank = plantedBank(side, { name: 'flavors', role: 'flavor', labels, source: 'flavors.txt' });
    const empty = (name: string) => plantedBank(side, { name, role: 'extra', labels: [], source: `${name}.txt` });
    const ctx = { text: withShared, banks: { artists: empty('a'), flavors: bank, mediums: empty('m'), movements: empty('mv'), trendings: empty('t'), negative: empty('n'), extras: [] } };
    const image = plantedImage(side, ['flav1', 'flav2', 'flav3']);
    const [shortlist] = await rankMerged({ embeds: { data: image, rows: 1, dim: image.length } }, mergedBanks(ctx.banks), 50);
    const on = await chain(ctx, image, shortlist!, undefined, { minFlavors: 0 });
    expect(shared.length).toBeGreaterThan(0);
    const sharedCalls = shared.length;
    const plainBefore = plain.length;
    const off = await chain(ctx, image, shortlist!, undefined, { minFlavors: 0, chainCache: false });
    expect(shared.length).toBe(sharedCalls);
    expect(plain.length - plainBefore).toBeGreaterThan(sharedCalls - 1);
    expect(off).toEqual(on);
  });
});
