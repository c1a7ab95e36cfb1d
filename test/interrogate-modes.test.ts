import { describe, expect, it } from 'vitest';
import { artistLabels, trendingLabels } from '../src/interrogate/label-banks.js';
import { bestMode, chain, classicMode, fastMode, mergedBanks, negativeMode, rankMerged, type InterrogatorBanks, type ModeContext } from '../src/interrogate/modes.js';
import type { BankRole } from '../src/interrogate/types.js';
import { OnnxBankRanker } from '../src/rank/bank-ranker.js';
import { PlantedTextSide, cosine, plantedBank, plantedImage, syntheticLabels, weightedImage } from './helpers/planted.js';

/**
 * Planted-embedding checks of the four modes. Every label is a random unit vector in 512-d, an image
 * is the normalised sum of the labels it "shows" plus noise, and a prompt embeds as the normalised
 * sum of its labels: the right answer of every mode can be worked out from the vectors alone.
 */

const DIM = 512;

function setup(options: { flavorWords?: number; dim?: number } = {}) {
  const side = new PlantedTextSide({ dim: options.dim ?? DIM });
  const lists: Record<Exclude<BankRole, 'extra'>, string[]> = {
    artist: artistLabels(syntheticLabels('artist', 150)),
    flavor: syntheticLabels('flav', 1500, options.flavorWords ?? 1),
    medium: syntheticLabels('medium', 40),
    movement: syntheticLabels('movement', 60),
    trending: trendingLabels(syntheticLabels('site', 10)),
    negative: syntheticLabels('neg', 30),
  };
  for (const labels of Object.values(lists)) side.know(labels);
  const bank = (name: string, role: BankRole, labels: string[]) => plantedBank(side, { name, role, labels, source: `${name}.txt` });
  const banks: InterrogatorBanks = {
    artists: bank('artists', 'artist', lists.artist),
    flavors: bank('flavors', 'flavor', lists.flavor),
    mediums: bank('mediums', 'medium', lists.medium),
    movements: bank('movements', 'movement', lists.movement),
    trendings: bank('trendings', 'trending', lists.trending),
    negative: bank('negative', 'negative', lists.negative),
    extras: [bank('extra-mine', 'extra', ['glitch art', 'vaporwave', 'neon noir'])],
  };
  side.know(['glitch art', 'vaporwave', 'neon noir']);
  const ctx: ModeContext = { text: side, banks };
  const one = (labels: string[], opts: { against?: string[]; caption?: string; seed?: string } = {}) => ({
    embeds: { data: plantedImage(side, labels, { against: opts.against, seed: opts.seed }), rows: 1, dim: DIM },
    captions: opts.caption === undefined ? undefined : [opts.caption],
  });
  /** Labels sorted by their similarity to the image, best first. */
  const byScore = (image: Float32Array, labels: string[]) => [...labels].sort((a, b) => cosine(image, side.vector(b)) - cosine(image, side.vector(a)));
  return { side, banks, ctx, one, byScore };
}

const PLANTED = ['medium5', 'by artist3', 'trending on site2', 'movement7', 'flav10', 'flav20', 'flav30', 'flav40', 'flav50'];

describe('fast', () => {
  it('recovers the planted labels from all banks, in score order', async () => {
    const { ctx, one, byScore, side } = setup();
    const image = one([...PLANTED, 'vaporwave']);
    const [r] = await fastMode(ctx, image, { maxFlavors: 10 });
    const order = byScore(image.embeds.data, [...PLANTED, 'vaporwave']);
    expect(r.labels.map((l) => l.label)).toEqual(order);
    expect(r.prompt).toBe(order.join(', '));
    expect(r.labels.find((l) => l.label === 'vaporwave')?.bank).toBe('extra-mine');
    expect(r.labels.find((l) => l.label === 'by artist3')?.bank).toBe('artists');
    for (const l of r.labels) expect(l.score).toBeCloseTo(cosine(image.embeds.data, side.vector(l.label)), 5);
    expect(r.similarity).toBeCloseTo(cosine(image.embeds.data, side.embedPrompt(r.prompt)), 5);
    expect(r.similarity).toBeGreaterThan(0.99);

    // With the default 32 labels the planted ones still come first, and a caption leads the prompt.
    const [withCaption] = await fastMode(ctx, { ...image, captions: ['a cat on a mat'] });
    expect(withCaption.labels).toHaveLength(32);
    expect(withCaption.labels.slice(0, 10).map((l) => l.label)).toEqual(order);
    expect(withCaption.prompt.startsWith(`a cat on a mat, ${order.join(', ')}, `)).toBe(true);
  });

  it('skips a label that would overflow the token limit and keeps adding shorter ones', async () => {
    const { ctx, one, byScore, side } = setup();
    const long = 'flav99 ' + Array.from({ length: 30 }, (_, i) => `w${i}`).join(' '); // not in any bank
    const extra = plantedBank(side, { name: 'extra-long', role: 'extra', labels: [long], source: 'long.txt' });
    const withLong: ModeContext = { ...ctx, banks: { ...ctx.banks, extras: [extra] }, maxTokens: 20 };
    const planted = ['flav1', 'flav2', 'flav3', 'flav4', long];
    const image = one(planted);
    const [r] = await fastMode(withLong, image, { maxFlavors: 5 });
    const shorts = byScore(image.embeds.data, planted).filter((l) => l !== long);
    expect(byScore(image.embeds.data, planted).indexOf(long)).toBeLessThan(4); // it really was ranked before a short one
    expect(r.labels.map((l) => l.label)).toEqual(shorts);
    expect(side.countTokens(r.prompt)).toBeLessThanOrEqual(20);
  });
});

describe('classic', () => {
  it('recovers the planted medium, artist, trending, movement and the top flavors', async () => {
    const { ctx, one, byScore } = setup();
    const image = one(PLANTED);
    const flavors = byScore(image.embeds.data, ['flav10', 'flav20', 'flav30', 'flav40', 'flav50']).slice(0, 3);
    const [r] = await classicMode(ctx, image);
    expect(r.prompt).toBe(`medium5 by artist3, trending on site2, movement7, ${flavors.join(', ')}`);
    expect(r.labels.map((l) => [l.label, l.bank])).toEqual([
      ['medium5', 'mediums'],
      ['by artist3', 'artists'],
      ['trending on site2', 'trendings'],
      ['movement7', 'movements'],
      ...flavors.map((f) => [f, 'flavors']),
    ]);

    const [captioned] = await classicMode(ctx, { ...image, captions: ['a dog in the rain'] });
    expect(captioned.prompt).toBe(`a dog in the rain, medium5 by artist3, trending on site2, movement7, ${flavors.join(', ')}`);
    // A caption that already opens with the medium does not repeat it.
    const [opens] = await classicMode(ctx, { ...image, captions: ['medium5 of a dog'] });
    expect(opens.prompt).toBe(`medium5 of a dog by artist3, trending on site2, movement7, ${flavors.join(', ')}`);
    expect(opens.labels.map((l) => l.label)).not.toContain('medium5');
  });

  it('cuts the prompt at the first slot that no longer fits', async () => {
    const { ctx, one, side } = setup();
    const [r] = await classicMode({ ...ctx, maxTokens: 8 }, one(PLANTED), { maxFlavors: 5 });
    // "medium5 by artist3," (3 words) + "trending on site2," (3) = 6 words + 2 = 8 tokens; the movement would make 9.
    expect(r.prompt).toBe('medium5 by artist3, trending on site2');
    expect(side.countTokens(r.prompt)).toBe(8);
  });
});

describe('best', () => {
  it('chains to exactly the planted set and beats fast and classic', async () => {
    const { ctx, one, side } = setup();
    const image = one(PLANTED);
    const [r] = await bestMode(ctx, image, { minFlavors: 0 });
    expect(r.picked).toBe('chain');
    expect(new Set(r.labels.map((l) => l.label))).toEqual(new Set(PLANTED));
    expect(r.labels).toHaveLength(PLANTED.length);
    expect(r.prompt).toBe(r.labels.map((l) => l.label).join(', '));
    expect(r.similarity).toBeCloseTo(cosine(image.embeds.data, side.embedPrompt(r.prompt)), 5);
    // Adding anything else lowers the similarity, which is why the chain stopped.
    for (const more of ['flav11', 'by artist4', 'medium6', 'neg1']) {
      expect(cosine(image.embeds.data, side.embedPrompt(`${r.prompt}, ${more}`))).toBeLessThan(r.similarity);
    }
    const [fast] = await fastMode(ctx, image);
    const [classic] = await classicMode(ctx, image, { maxFlavors: 32 });
    expect(r.similarity).toBeGreaterThan(fast.similarity);
    expect(r.similarity).toBeGreaterThan(classic.similarity);

    // The upstream default (keep exploring 8 steps past a drop) returns the same best prompt.
    const [explored] = await bestMode(ctx, image);
    expect(explored.prompt).toBe(r.prompt);
  });

  it('adds one planted flavor per step, in decreasing order of its weight in the image, then stops', async () => {
    // 2048-d keeps unrelated labels within ~0.02 of orthogonal, well inside the 0.1 steps between weights.
    const { ctx, side } = setup({ dim: 2048 });
    const planted = ['flav70', 'flav20', 'flav50', 'flav10', 'flav40', 'flav60', 'flav30'];
    const embeds = weightedImage(side, planted.map((l, i) => [l, 1 - 0.1 * i] as const));
    const image = { embeds: { data: embeds, rows: 1, dim: 2048 } };
    const [shortlist] = await rankMerged(image, mergedBanks(ctx.banks), 300);
    side.calls.length = 0;
    const r = await chain(ctx, embeds, shortlist, undefined, { minFlavors: 0 });
    expect(r.labels.map((l) => l.label)).toEqual(planted);
    expect(r.prompt).toBe(planted.join(', '));
    // The opening label, then 6 steps that each add the next one and a 7th that finds no gain.
    expect(side.calls.map((c) => c.length)).toEqual([1, 299, 298, 297, 296, 295, 294, 293]);
    // Each step really raised the similarity of the whole prompt.
    const sims = planted.map((_, k) => cosine(embeds, side.embedPrompt(planted.slice(0, k + 1).join(', '))));
    for (let k = 1; k < sims.length; k++) expect(sims[k]).toBeGreaterThan(sims[k - 1]!);
    expect(r.similarity).toBeCloseTo(sims.at(-1)!, 5);
    // best mode runs the same chain, and it wins.
    const [best] = await bestMode(ctx, image, { minFlavors: 0, shortlist: 300 });
    expect(best.picked).toBe('chain');
    expect(best.labels.map((l) => l.label)).toEqual(planted);
  });

  it('returns whichever of classic, fast and chain is most similar to the image', async () => {
    const { ctx, one, side } = setup();
    const classicSet = ['medium5', 'by artist3', 'trending on site2', 'movement7', 'flav10', 'flav20', 'flav30'];
    const cases = [
      // The chain finds exactly the planted set; fast and classic pad it with unrelated labels.
      { image: one(PLANTED), options: { minFlavors: 0 }, winner: 'chain' },
      // A one-label shortlist leaves the chain one label; fast's 20 hold all 9 planted, classic's 24 too.
      { image: one(PLANTED), options: { shortlist: 1, maxFlavors: 20 }, winner: 'fast' },
      // An image of exactly classic's slots: classic has all 7, fast only its top 3, the chain 1.
      { image: one(classicSet), options: { shortlist: 1, maxFlavors: 3 }, winner: 'classic' },
    ] as const;
    for (const { image, options, winner } of cases) {
      const [best] = await bestMode(ctx, image, options);
      // The candidates built on their own, scored here from the planted vectors.
      const maxFlavors = 'maxFlavors' in options ? options.maxFlavors : 32;
      const [shortlist] = await rankMerged(image, mergedBanks(ctx.banks), 'shortlist' in options ? options.shortlist : 2048);
      const candidates = {
        classic: (await classicMode(ctx, image, { maxFlavors }))[0]!.prompt,
        fast: (await fastMode(ctx, image, { maxFlavors }))[0]!.prompt,
        chain: (await chain(ctx, image.embeds.data, shortlist, undefined, options)).prompt,
      };
      const sims = Object.fromEntries(Object.entries(candidates).map(([k, p]) => [k, cosine(image.embeds.data, side.embedPrompt(p))]));
      const top = (Object.keys(candidates) as (keyof typeof candidates)[]).reduce((a, b) => (sims[b]! > sims[a]! ? b : a));
      expect(top, JSON.stringify(sims)).toBe(winner);
      expect(best.picked).toBe(winner);
      expect(best.prompt).toBe(candidates[winner]);
      expect(best.similarity).toBeCloseTo(sims[winner]!, 5);
    }
  });

  it('stops at the first step without gain when minFlavors is 0', async () => {
    const { ctx, one, side } = setup();
    const image = one(PLANTED);
    const [shortlist] = await rankMerged(image, mergedBanks(ctx.banks), 300);
    side.calls.length = 0;
    const r = await chain(ctx, image.embeds.data, shortlist, undefined, { minFlavors: 0 });
    expect(new Set(r.labels.map((l) => l.label))).toEqual(new Set(PLANTED));
    // One call to score the opening label, then one per step: 8 steps that add, 1 that finds no gain.
    expect(side.calls.map((c) => c.length)).toEqual([1, ...Array.from({ length: 9 }, (_, s) => 299 - s)]);
  });

  it('starts from the caption and keeps it at the front', async () => {
    const { ctx, one } = setup();
    const [r] = await bestMode(ctx, one(PLANTED, { caption: 'a red house' }), { minFlavors: 0 });
    expect(r.picked).toBe('chain');
    expect(r.prompt.startsWith('a red house, ')).toBe(true);
    expect(new Set(r.labels.map((l) => l.label))).toEqual(new Set(PLANTED));
  });

  it('stops the chain at the 77-token limit', async () => {
    const { ctx, one, side } = setup({ flavorWords: 3 });
    // 30 planted three-word flavors: all of them would be 90 words; 25 fill 75 words + 2 = 77 tokens.
    const planted = syntheticLabels('flav', 30, 3);
    const image = one(planted);
    const [shortlist] = await rankMerged(image, mergedBanks(ctx.banks), 2048);
    const r = await chain(ctx, image.embeds.data, shortlist, undefined, { minFlavors: 0, maxFlavors: 64 });
    expect(r.labels).toHaveLength(25);
    expect(side.countTokens(r.prompt)).toBe(77);
    expect(r.labels.every((l) => planted.includes(l.label))).toBe(true);
    const [best] = await bestMode(ctx, image, { maxFlavors: 64 });
    expect(side.countTokens(best.prompt)).toBeLessThanOrEqual(77);
    expect(best.similarity).toBeGreaterThanOrEqual(r.similarity - 1e-6);
  });
});

describe('negative', () => {
  it('chains the least similar flavors and negative labels', async () => {
    const { ctx, one, side } = setup();
    const against = ['neg3', 'neg7', 'flav100', 'flav200'];
    // Mostly "against": each planted negative scores about -0.45, far below the ~-0.14 that the
    // least similar of 1500 random labels reach, so adding anything past the four raises similarity.
    const image = one(['flav10'], { against });
    const [r] = await negativeMode(ctx, image, { minFlavors: 0 });
    expect(new Set(r.labels.map((l) => l.label))).toEqual(new Set(against));
    expect(r.labels.map((l) => l.bank).sort()).toEqual(['flavors', 'flavors', 'negative', 'negative']);
    expect(r.similarity).toBeLessThan(-0.85);
    expect(r.similarity).toBeCloseTo(cosine(image.embeds.data, side.embedPrompt(r.prompt)), 5);
    // It opened with the single least similar candidate.
    const least = [...ctx.banks.flavors.labels, ...ctx.banks.negative.labels].reduce((a, b) =>
      cosine(image.embeds.data, side.vector(b)) < cosine(image.embeds.data, side.vector(a)) ? b : a,
    );
    expect(r.labels[0].label).toBe(least);
    for (const more of ['neg4', 'flav300']) expect(cosine(image.embeds.data, side.embedPrompt(`${r.prompt}, ${more}`))).toBeGreaterThan(r.similarity);
  });
});

describe('negative, ordered', () => {
  it('adds the planted negatives one per step, most negative weight first', async () => {
    const { ctx, side } = setup({ dim: 2048 });
    const against = ['neg3', 'flav100', 'neg7', 'flav200', 'flav300'];
    const embeds = weightedImage(side, [['flav10', 0.3], ...against.map((l, i) => [l, -(1 - 0.1 * i)] as const)]);
    side.calls.length = 0;
    // One encoder call per step (the default batch of 1024 prompts would split each step in two).
    const [r] = await negativeMode({ ...ctx, encodeBatch: 2048 }, { embeds: { data: embeds, rows: 1, dim: 2048 } }, { minFlavors: 0 });
    expect(r.labels.map((l) => l.label)).toEqual(against);
    expect(r.labels.map((l) => l.bank)).toEqual(['negative', 'flavors', 'negative', 'flavors', 'flavors']);
    expect(r.prompt).toBe(against.join(', '));
    // Candidates: the 1500 flavors and 30 negatives; the opening label, 4 steps that add, 1 without gain.
    expect(side.calls.map((c) => c.length)).toEqual([1, 1529, 1528, 1527, 1526, 1525]);
    const sims = against.map((_, k) => cosine(embeds, side.embedPrompt(against.slice(0, k + 1).join(', '))));
    for (let k = 1; k < sims.length; k++) expect(sims[k]).toBeLessThan(sims[k - 1]!);
    expect(r.similarity).toBeCloseTo(sims.at(-1)!, 5);
  });
});

describe('batches', () => {
  it('gives each image of a batch the result it gets alone', async () => {
    const { ctx, one } = setup();
    const a = one(PLANTED, { seed: 'a' });
    const b = one(['medium1', 'inspired by artist9', 'site4 contest winner', 'movement2', 'flav5', 'flav6', 'flav7'], { seed: 'b' });
    const both = { embeds: { data: new Float32Array([...a.embeds.data, ...b.embeds.data]), rows: 2, dim: DIM }, captions: ['first', undefined] };
    const opts = { maxFlavors: 10, shortlist: 300 };
    for (const mode of [fastMode, classicMode, bestMode, negativeMode]) {
      const batched = await mode(ctx, both, opts);
      const alone = [(await mode(ctx, { ...a, captions: ['first'] }, opts))[0], (await mode(ctx, b, opts))[0]];
      expect(batched.map((r) => r.prompt)).toEqual(alone.map((r) => r.prompt));
    }
    const [, classicB] = await classicMode(ctx, both);
    expect(classicB.prompt.startsWith('medium1 inspired by artist9, site4 contest winner, movement2, ')).toBe(true);
  });

  it('refuses embeddings of the wrong size', async () => {
    const { ctx } = setup();
    await expect(fastMode(ctx, { embeds: { data: new Float32Array(DIM + 1), rows: 1, dim: DIM } })).rejects.toThrow(`expected 1 x ${DIM}`);
  });
});

describe('score: false', () => {
  it('fast and classic give the same prompts without a text-tower pass', async () => {
    const { ctx, one, side } = setup();
    const image = one(PLANTED, { caption: 'a lighthouse' });
    let encodes = 0;
    const encode = side.encodeTexts.bind(side);
    const counting: ModeContext = { ...ctx, text: Object.assign(Object.create(side), { encodeTexts: (t: string[]) => ((encodes += 1), encode(t)) }) };
    for (const mode of [fastMode, classicMode]) {
      const [scored] = await mode(counting, image);
      expect(encodes).toBe(1);
      const [unscored] = await mode(counting, image, { score: false });
      expect(encodes).toBe(1);
      encodes = 0;
      expect(unscored.prompt).toBe(scored.prompt);
      expect(unscored.labels).toEqual(scored.labels);
      expect(unscored.similarity).toBeNaN();
      expect(scored.similarity).toBeGreaterThan(0.5);
    }
  });
});

describe('banks ranked by the MatMul+TopK graph (the CUDA path)', () => {
  it('every mode composes the same prompts as with the native kernel', async () => {
    const { ctx, one } = setup();
    const image = one(PLANTED, { caption: 'a lighthouse' });
    const withGraph: InterrogatorBanks = { ...ctx.banks, extras: [...ctx.banks.extras] };
    const rankers: OnnxBankRanker[] = [];
    let graphCalls = 0;
    for (const key of ['artists', 'flavors', 'mediums', 'movements', 'trendings', 'negative'] as const) {
      const b = ctx.banks[key];
      // The CPU provider runs the very graph a GPU would; this checks the wiring, the GPU itself is checked on the device.
      const ranker = await OnnxBankRanker.open(b.matrix, ['cpu']);
      rankers.push(ranker);
      const rank = ranker.rank.bind(ranker);
      ranker.rank = (...args) => ((graphCalls += 1), rank(...args));
      withGraph[key] = { ...b, ranker };
    }
    const graphCtx: ModeContext = { ...ctx, banks: withGraph };
    const opts = { maxFlavors: 10, shortlist: 300 };
    for (const mode of [fastMode, classicMode, bestMode, negativeMode]) {
      const [native] = await mode(ctx, image, opts);
      const [graph] = await mode(graphCtx, image, opts);
      expect(graph.prompt).toBe(native.prompt);
      expect(graph.similarity).toBeCloseTo(native.similarity, 5);
    }
    expect(graphCalls).toBeGreaterThanOrEqual(10); // fast 6 banks, classic 5, best 6, negative 2: all went through the graph
    rankers.forEach((r) => r.close());
  });
});
