// A fitted head as a predict member, end to end on the Kaggle sample with a random tiny CLIP:
// fit-head writes the head, predict --member NAME=head.json gives each image the head's own output
// (worked out here from the CLIP embeddings), fit-weights weights it, and a head fitted for another
// CLIP, or a file that is not a head, is refused naming the file.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipModel } from '../src/clip/model.js';
import { PromptHead } from '../src/predict/head.js';
import { loadHead, saveHead } from '../src/predict/head-file.js';
import { splitMemberSpecs } from '../src/cli/options.js';
import { chooseMembers, parseBuiltInMemberList, parseMemberList } from '../src/predict/members.js';
import { readSubmission } from '../src/submission/submission-csv.js';
import { PredictEngine } from '../src/predict/predict.js';
import { expectResumeRefusedWithOtherMember } from './helpers/member-resume.js';
import { KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { runCliInProcess } from './helpers/cli.js';
import { copyKaggleImages, restoreHome, useTinyClipHome, writeSmallBankAndLabels } from './helpers/tiny-clip-home.js';

const DIM = 384;
const TRUTH = path.join(KAGGLE_SAMPLE, 'prompts.csv');
const work = tempDir('img2prompt-head-member-');
const home = tempDir('img2prompt-head-member-home-');
const images = path.join(work, 'images');
const headFile = path.join(work, 'ridge.json');
let saved: string | undefined;
let common: string[];

beforeAll(async () => {
  copyKaggleImages(images);
  saved = await useTinyClipHome(home, 3);
  common = writeSmallBankAndLabels(work).options;
});

afterAll(() => {
  restoreHome(saved);
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

describe('head member names', () => {
  it('are head:NAME, brought by --member NAME=FILE.json; serve-like commands refuse them', () => {
    expect(splitMemberSpecs([{ name: 'vit', file: 'v.onnx' }, { name: 'h', file: 'h.JSON' }])).toEqual({ onnxMembers: [{ name: 'vit', file: 'v.onnx' }], heads: [{ name: 'h', file: 'h.JSON' }] });
    expect(parseMemberList('knn,head:h')).toEqual(['knn', 'head:h']);
    expect(() => parseMemberList('head:1x')).toThrow('unknown member "head:1x" (choose from knn, map, interrogator, captioner); a head member\'s NAME must start with a letter');
    expect(() => parseBuiltInMemberList('knn,head:h')).toThrow('--members: this command has no head members ("head:h")');
    const notices: string[] = [];
    expect(chooseMembers(undefined, { members: { knn: 1, 'head:h': 1 } }, 'w.json', (m) => notices.push(m))).toEqual(['knn']);
    expect(notices).toEqual(['w.json names head member head:h, whose head file was not given (--member h=FILE.json, or heads); it is absent']);
  });
});

describe('fit-head and predict --member NAME=head.json', () => {
  it('fit-head writes a ridge head for the tiny CLIP; predict gives each image its normalised output', async () => {
    const fit = await runCliInProcess(['fit-head', '--images', images, '--truth', TRUTH, '--folds', '3', '--model', 'tiny', '-o', headFile], home);
    expect(fit.stderr).toContain('RANDOM weights');
    expect(fit.code).toBe(0);
    expect(fit.stdout).toMatch(/^ridge, 3-fold cross-validated mean cosine per λ:$/m);
    expect(fit.stdout).toContain('← chosen');

    const clip = await ClipModel.open('tiny', { towers: ['vision'] });
    let head: PromptHead;
    let encoded;
    try {
      encoded = await clip.encodeImages(fs.readdirSync(images).sort().map((f) => path.join(images, f)));
      head = await loadHead(headFile, { clipModel: clip.modelId, clipDim: clip.dim });
    } finally {
      clip.close();
    }
    expect(head.kind).toBe('ridge');
    expect(head.training.images).toBe(7);
    const expected = head.apply(encoded.embeds);

    const out = path.join(work, 'head-only.csv');
    const r = await runCliInProcess(['predict', images, '-o', out, '--members', 'head:h', '--member', `h=${headFile}`, ...common], home);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('members: head:h');
    const sub = await readSubmission(out);
    for (const [i, id] of encoded.ids.entries()) {
      const row = sub.ids.indexOf(id);
      const got = sub.vectors.subarray(row * DIM, (row + 1) * DIM);
      const want = expected.subarray(i * DIM, (i + 1) * DIM);
      expect(Math.max(...got.map((x, j) => Math.abs(x - want[j]!)))).toBeLessThan(1e-5);
    }

    // In the ensemble with other members, and weighted by fit-weights.
    const both = await runCliInProcess(['predict', images, '-o', path.join(work, 'both.csv'), '--members', 'knn,head:h', '--member', `h=${headFile}`, ...common], home);
    expect(both.code).toBe(0);
    expect(both.stderr).toContain('members: knn, head:h');
    const weights = path.join(work, 'weights.json');
    const fw = await runCliInProcess(['fit-weights', '--images', images, '--truth', TRUTH, '--folds', '3', '--members', 'knn,head:h', '--member', `h=${headFile}`, '-o', weights, ...common], home);
    expect(fw.code).toBe(0);
    expect(fw.stdout).toMatch(/^fold\s+images\s+knn\s+head:h\s+ensemble$/m);
    const fitted = JSON.parse(fs.readFileSync(weights, 'utf8')).members as Record<string, number>;
    expect(Object.keys(fitted)).toEqual(['knn', 'head:h']);
    expect(fitted['knn']! + fitted['head:h']!).toBeCloseTo(1, 9);
  });

  it('eval takes the head like predict does and scores it beside the other members', async () => {
    const report = path.join(work, 'report');
    const r = await runCliInProcess(['eval', '--images', images, '--truth', TRUTH, '--folds', '3', '--members', 'knn,head:h', '--member', `h=${headFile}`, '-o', report, ...common], home);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^head:h\s+-?[0-9.]+\s+\[-?[0-9.]+, -?[0-9.]+\]\s+[0-9.]+$/m);
    const json = JSON.parse(fs.readFileSync(path.join(report, 'report.json'), 'utf8')) as { scores: { name: string }[] };
    expect(json.scores.map((s) => s.name)).toEqual(['knn', 'head:h', 'ensemble']);
  });

  it('a checkpoint written with one head refuses to resume with another', async () => {
    const bankFile = common[common.indexOf('--prompts-bank') + 1]!;
    const labelsDir = common[common.indexOf('--labels-dir') + 1]!;
    const other = path.join(work, 'other-head.json');
    const h = await loadHead(headFile);
    const shifted = (h.weights as { map: Float32Array }).map.map((v, i) => (i % 5 === 0 ? v + 0.01 : v));
    await saveHead(other, new PromptHead({ kind: 'ridge', map: shifted }, h.clipDim, h.textDim, h.training, h.fittedFor));
    const checkpoint = path.join(work, 'head.ckpt');
    const inputs = fs.readdirSync(images).sort().slice(0, 2).map((f) => path.join(images, f));
    const open = (file: string) => PredictEngine.open({ model: 'tiny', promptsBank: [bankFile], labelsDir, members: ['head:h'], heads: [{ name: 'h', file }] });
    await expectResumeRefusedWithOtherMember(
      open,
      { first: headFile, other },
      { inputs, checkpoint, check: (members) => expect(members['head:h']).toHaveLength(DIM) },
      /option heads: /,
    );
  });

  it('fit-head --kind mlp writes an MLP head predict can use', async () => {
    const mlpFile = path.join(work, 'mlp.json');
    const fit = await runCliInProcess(['fit-head', '--images', images, '--truth', TRUTH, '--kind', 'mlp', '--folds', '3', '--hidden', '16', '--epochs', '4', '--model', 'tiny', '-o', mlpFile], home);
    expect(fit.code).toBe(0);
    expect(fit.stdout).toMatch(/^mlp, hidden 16: held-out mean cosine -?[0-9.]+ at epoch [0-4] of [1-4]$/m);
    expect((await loadHead(mlpFile)).kind).toBe('mlp');
    const r = await runCliInProcess(['predict', images, '-o', path.join(work, 'mlp.csv'), '--members', 'head:m', '--member', `m=${mlpFile}`, ...common], home);
    expect(r.code).toBe(0);
  });

  it('refuses a head fitted for another CLIP, and a file that is not a head, naming the file', async () => {
    const other = path.join(work, 'other-clip.json');
    const h = await loadHead(headFile);
    await saveHead(other, new PromptHead(h.weights, h.clipDim, h.textDim, h.training, { ...h.fittedFor, clipModel: 'clip-vit-b-32@0000000000000000' }));
    const r = await runCliInProcess(['predict', images, '-o', path.join(work, 'never.csv'), '--member', `h=${other}`, ...common], home);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${other}: head was fitted for clipModel 'clip-vit-b-32@0000000000000000', this run uses 'tiny@`);
    const notHead = path.join(work, 'not-a-head.json');
    fs.writeFileSync(notHead, JSON.stringify({ members: { knn: 1 } }));
    const r2 = await runCliInProcess(['predict', images, '-o', path.join(work, 'never.csv'), '--member', `h=${notHead}`, ...common], home);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain(`${notHead}: not a head file`);
  });

  it('fit-head refuses too few labelled images for the folds, before opening a model', async () => {
    const r = await runCliInProcess(['fit-head', '--images', images, '--truth', TRUTH, '--folds', '8', '--model', 'tiny', '-o', path.join(work, 'never.json')], home);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${TRUTH}: 7 images in ${images} with a known prompt are too few for 8-fold cross-validation (or lower --folds): need at least 8`);
  });
});
