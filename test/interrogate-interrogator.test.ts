import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { asset, tempDir } from './helpers/paths.js';
import { PlantedTextSide, cosine, plantedImage } from './helpers/planted.js';
import { Interrogator } from '../src/interrogate/interrogator.js';
import type { CachedBank } from '../src/interrogate/bank-cache.js';

/** A small labels folder in the layout of ../shared/assets/labels, plus a folder of user lists. */
function labelsFixture(): { labelsDir: string; extraDir: string } {
  const root = tempDir();
  const labelsDir = path.join(root, 'labels');
  const extraDir = path.join(root, 'extra');
  fs.mkdirSync(labelsDir);
  fs.mkdirSync(extraDir);
  const lines = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`).join('\n') + '\n';
  fs.writeFileSync(path.join(labelsDir, 'artists.txt'), lines('Painter', 120));
  fs.writeFileSync(path.join(labelsDir, 'flavors.txt'), lines('flav', 900));
  fs.writeFileSync(path.join(labelsDir, 'mediums.txt'), lines('medium', 30));
  fs.writeFileSync(path.join(labelsDir, 'movements.txt'), lines('movement', 40));
  fs.writeFileSync(path.join(labelsDir, 'sites.txt'), lines('site', 8));
  fs.writeFileSync(path.join(labelsDir, 'negative.txt'), lines('neg', 20).trimEnd());
  fs.writeFileSync(path.join(extraDir, 'styles.txt'), 'glitch art\nvaporwave\n');
  fs.writeFileSync(path.join(extraDir, 'moods.txt'), 'eerie calm\njoyful chaos\n');
  fs.writeFileSync(path.join(extraDir, 'README.md'), 'not a list\n');
  return { labelsDir, extraDir };
}

describe('Interrogator', () => {
  it('builds every bank once, then opens from the cache without encoding', async () => {
    const home = tempDir();
    const { labelsDir, extraDir } = labelsFixture();
    const side = new PlantedTextSide({ dim: 256 });
    const seen: CachedBank[] = [];
    const first = await Interrogator.open(side, { labelsDir, extraLabels: [extraDir], home, dtype: 'fp16', chunkSize: 256, onBank: (b) => seen.push(b) });
    expect(seen.map((b) => [b.name, b.labels.length, b.built])).toEqual([
      ['artists', 240, true],
      ['flavors', 900, true],
      ['mediums', 30, true],
      ['movements', 40, true],
      ['trendings', 32, true],
      ['negative', 20, true],
      ['extra-moods', 2, true],
      ['extra-styles', 2, true],
    ]);
    expect(side.encodedTexts()).toHaveLength(240 + 900 + 30 + 40 + 32 + 20 + 4);
    expect(fs.readdirSync(path.join(home, 'banks', 'planted_test-model')).sort()).toEqual(
      ['artists', 'extra-moods', 'extra-styles', 'flavors', 'mediums', 'movements', 'negative', 'trendings'].map((n) => `${n}.bank`),
    );

    side.calls.length = 0;
    const reopened: CachedBank[] = [];
    const second = await Interrogator.open(side, { labelsDir, extraLabels: [extraDir], home, dtype: 'fp16', onBank: (b) => reopened.push(b) });
    expect(reopened.every((b) => !b.built)).toBe(true);
    expect(side.calls).toHaveLength(0);
    expect(second.banks.flavors.matrix).toEqual(first.banks.flavors.matrix);

    // Editing one list rebuilds that bank only.
    fs.appendFileSync(path.join(labelsDir, 'mediums.txt'), 'a brand new medium\n');
    const edited: CachedBank[] = [];
    await Interrogator.open(side, { labelsDir, extraLabels: [extraDir], home, dtype: 'fp16', onBank: (b) => edited.push(b) });
    expect(edited.filter((b) => b.built).map((b) => [b.name, b.reason])).toEqual([['mediums', 'labels changed']]);
    expect(side.encodedTexts()).toHaveLength(31);
  });

  it("interrogates the image tower's unit rows in every mode, and refuses rows that are not unit length", async () => {
    const home = tempDir();
    const { labelsDir, extraDir } = labelsFixture();
    const side = new PlantedTextSide({ dim: 256 });
    const interrogator = await Interrogator.open(side, { labelsDir, extraLabels: [extraDir], home });
    side.know([...Object.values(interrogator.banks).flatMap((b) => (Array.isArray(b) ? b.flatMap((x) => x.labels) : b.labels))]);
    const planted = ['medium3', 'by Painter7', 'featured on site1', 'movement9', 'flav11', 'flav12', 'flav13', 'vaporwave'];
    const image = plantedImage(side, planted); // unit length, as the image tower gives it

    const [classic] = await interrogator.interrogate(image, 1, { mode: 'classic', caption: 'a lighthouse' });
    expect(classic.prompt.startsWith('a lighthouse, medium3 by Painter7, featured on site1, movement9, ')).toBe(true);
    expect(classic.labels.slice(4).every((l) => ['flav11', 'flav12', 'flav13'].includes(l.label))).toBe(true);

    const [fast] = await interrogator.interrogate(image, 1, { mode: 'fast', maxFlavors: 8 });
    expect(new Set(fast.labels.map((l) => l.label))).toEqual(new Set(planted));
    expect(fast.labels.find((l) => l.label === 'vaporwave')!.bank).toBe('extra-styles');

    const [best] = await interrogator.interrogate(image, 1, { mode: 'best', minFlavors: 0 });
    expect(new Set(best.labels.map((l) => l.label))).toEqual(new Set(planted));
    expect(best.similarity).toBeCloseTo(cosine(image, side.embedPrompt(best.prompt)), 4);

    const [negative] = await interrogator.interrogate(image, 1, { mode: 'negative', maxFlavors: 4 });
    expect(negative.labels.length).toBeGreaterThan(0);
    expect(negative.similarity).toBeLessThan(0);

    await expect(interrogator.interrogate(image, 2, { mode: 'fast' })).rejects.toThrow('expected 2 x 256');
    await expect(interrogator.interrogate(new Float32Array(256), 1, { mode: 'fast' })).rejects.toThrow('image embedding 0 is zero');
    // The towers normalise; the interrogator checks instead of normalising a copy again.
    const raw = image.map((x) => x * 3.5);
    await expect(interrogator.interrogate(raw, 1, { mode: 'fast' })).rejects.toThrow(
      "image embedding 0 is not unit length (norm 3.50000; use the image tower's rows (ClipModel.encodeImages), which are unit length)",
    );
    const withNaN = Float32Array.from([...image, ...image]);
    withNaN[256 + 3] = NaN;
    await expect(interrogator.interrogate(withNaN, 2, { mode: 'fast' })).rejects.toThrow('image embedding 1 is not finite');
    await expect(interrogator.interrogate(image, 1, { mode: 'wild' as never })).rejects.toThrow(
      new RangeError('Interrogator.interrogate(): Expected one of "fast", "classic", "best", "negative" for mode but received "wild"'),
    );
  });

  it('opens over the real label lists and recovers planted real labels', async () => {
    const home = tempDir();
    const side = new PlantedTextSide({ dim: 512 });
    const interrogator = await Interrogator.open(side, { labelsDir: asset('labels'), home, dtype: 'fp16' });
    expect(interrogator.banks.flavors.labels).toHaveLength(100954);
    expect(fs.statSync(path.join(home, 'banks', 'planted_test-model', 'flavors.bank')).size).toBeGreaterThan(100954 * 512 * 2);
    side.know(['a watercolor painting', 'by Claude Monet']);
    const planted = ['a watercolor painting', 'by Claude Monet', 'trending on Artstation', 'impressionism', 'highly detailed', 'sharp focus', 'golden hour'];
    const [classic] = await interrogator.interrogate(plantedImage(side, planted), 1, { mode: 'classic' });
    expect(classic.labels.slice(0, 4).map((l) => l.label)).toEqual(planted.slice(0, 4));
    expect(new Set(classic.labels.slice(4).map((l) => l.label))).toEqual(new Set(planted.slice(4)));
    fs.rmSync(home, { recursive: true, force: true }); // ~100 MB of fp16 flavors
  }, 300_000);
});
