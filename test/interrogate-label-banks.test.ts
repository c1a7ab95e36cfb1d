import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { asset, tempDir } from './helpers/paths.js';
import {
  artistLabels,
  defaultLabelsDir,
  extraBankName,
  extraBanks,
  labelsHash,
  loadLabelBanks,
  parseLabelList,
  readLabelFile,
  standardBanks,
  trendingLabels,
} from '../src/interrogate/label-banks.js';
import { Img2PromptError } from '../src/util/errors.js';

const LABELS = asset('labels');

describe('label lists', () => {
  it('trims, skips empty lines, drops repeats and keeps first-seen order', () => {
    const text = '\ufeff  b \r\n\r\na\n   \nb\nc\t\na\n  c';
    expect(parseLabelList(text)).toEqual(['b', 'a', 'c']);
  });

  it('reads a file without a trailing newline (negative.txt) in full', async () => {
    const labels = await readLabelFile(path.join(LABELS, 'negative.txt'));
    expect(labels).toHaveLength(41);
    expect(labels[0]).toBe('3d');
    expect(labels[40]).toBe('weird colors');
  });

  it('names the file on errors', async () => {
    const dir = tempDir();
    const missing = path.join(dir, 'nope.txt');
    await expect(readLabelFile(missing)).rejects.toThrow(`${missing}: cannot read label file`);
    const empty = path.join(dir, 'empty.txt');
    fs.writeFileSync(empty, '\n  \n\n');
    await expect(readLabelFile(empty)).rejects.toThrow(new Img2PromptError(empty, 'label file has no labels (every line is empty)'));
    // A labels folder missing one of the built-in lists names the list.
    fs.copyFileSync(path.join(LABELS, 'mediums.txt'), path.join(dir, 'mediums.txt'));
    await expect(standardBanks(dir)).rejects.toThrow(path.join(dir, 'artists.txt'));
  });

  it('expands artists and sites the way the engine does', () => {
    expect(artistLabels(['A', 'B'])).toEqual(['by A', 'by B', 'inspired by A', 'inspired by B']);
    expect(trendingLabels(['Artstation', 'pixiv'])).toEqual([
      'Artstation',
      'pixiv',
      'trending on Artstation',
      'trending on pixiv',
      'featured on Artstation',
      'featured on pixiv',
      'Artstation contest winner',
      'pixiv contest winner',
    ]);
  });
});

describe('built-in banks from ../shared/assets/labels', () => {
  it('is the default labels dir', () => {
    expect(fs.realpathSync(defaultLabelsDir())).toBe(fs.realpathSync(LABELS));
  });

  it('loads the six banks with the expected sizes', async () => {
    const banks = await standardBanks(LABELS);
    const sizes = Object.fromEntries(banks.map((b) => [b.name, b.labels.length]));
    // artists.txt: 5,265 distinct names -> "by X" + "inspired by X". flavors.txt: 100,969 non-empty
    // lines of which 100,954 distinct (LC_ALL=C sort -u). sites.txt: 18 sites x 4 templates.
    expect(sizes).toEqual({ artists: 10530, flavors: 100954, mediums: 95, movements: 200, trendings: 72, negative: 41 });
    const by = Object.fromEntries(banks.map((b) => [b.name, b]));
    expect(by.artists.labels[0]).toBe('by A. B. Jackson');
    expect(by.artists.labels[5265]).toBe('inspired by A. B. Jackson');
    expect(by.trendings.labels.slice(0, 2)).toEqual(['Artstation', 'behance']);
    expect(by.trendings.labels).toContain('trending on Artstation');
    expect(by.trendings.labels).toContain('featured on zbrush central');
    expect(by.trendings.labels.at(-1)).toBe('zbrush central contest winner');
    expect(by.flavors.labels.slice(0, 3)).toEqual(['highly detailed', 'sharp focus', 'intricate']);
    expect(by.flavors.labels.every((l) => l === l.trim() && l !== '')).toBe(true);
    expect(by.mediums.role).toBe('medium');
    expect(by.flavors.source).toBe(path.join(LABELS, 'flavors.txt'));
  });
});

describe('user banks', () => {
  it('makes one bank per file, and one per .txt file of a folder', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'My Styles.txt');
    fs.writeFileSync(file, 'neon noir\nvaporwave\nneon noir\n');
    const banks = await extraBanks([file, asset('labels', 'krea-modifiers')]);
    expect(banks[0]).toMatchObject({ name: 'extra-my-styles', role: 'extra', labels: ['neon noir', 'vaporwave'], source: file });
    // krea-modifiers holds 15 .txt lists and one modifiers.json, which is skipped.
    expect(banks).toHaveLength(16);
    const tools = banks.find((b) => b.name === 'extra-general_design_tools_and_communities')!;
    expect(tools.labels[0]).toBe('3D shading'); // the file's lines carry leading and trailing spaces
    expect(extraBankName('/x/digital-art_3D.txt')).toBe('extra-digital-art_3d');
  });

  it('refuses two user files that map to the same bank name, naming the second', async () => {
    const a = tempDir();
    const b = tempDir();
    fs.writeFileSync(path.join(a, 'x.txt'), 'one\n');
    fs.writeFileSync(path.join(b, 'X.txt'), 'two\n');
    await expect(extraBanks([path.join(a, 'x.txt'), path.join(b, 'X.txt')])).rejects.toThrow(path.join(b, 'X.txt'));
  });

  it('names a missing path or a folder without lists', async () => {
    const dir = tempDir();
    await expect(extraBanks([path.join(dir, 'gone')])).rejects.toThrow(`${path.join(dir, 'gone')}: cannot read labels`);
    await expect(extraBanks([dir])).rejects.toThrow(`${dir}: labels folder has no .txt files`);
  });

  it('appends user banks after the built-in ones', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'mine.txt'), 'glitch art\n');
    const banks = await loadLabelBanks({ labelsDir: LABELS, extraLabels: [path.join(dir, 'mine.txt')] });
    expect(banks.map((b) => b.name)).toEqual(['artists', 'flavors', 'mediums', 'movements', 'trendings', 'negative', 'extra-mine']);
  });
});

describe('labels hash', () => {
  it('changes with content and order, not with identity', () => {
    expect(labelsHash(['a', 'b'])).toBe(labelsHash(['a', 'b']));
    expect(labelsHash(['a', 'b'])).not.toBe(labelsHash(['b', 'a']));
    expect(labelsHash(['a b'])).not.toBe(labelsHash(['a', 'b']));
    expect(labelsHash(['a'])).toMatch(/^[0-9a-f]{64}$/);
  });
});
