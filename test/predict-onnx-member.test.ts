// ONNX members: small models made with the project's own graph builder (pixels → global average pool →
// a fixed [3, D] matrix), so each image's expected vector is worked out here from its preprocessed
// pixels. Then predict and fit-weights with such a member, on the Kaggle sample and a random tiny CLIP.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import onnxProto from 'onnx-proto';
import { GraphBuilder } from '../models/graph/onnx-builder.js';
import { ClipTransform } from '../src/image/clip-transform.js';
import { decodeImage } from '../src/image/decode.js';
import { readPreprocessing, type ImagePreprocessing } from '../src/image/preprocessing-description.js';
import { readOnnxMetadata } from '../src/runtime/onnx-metadata.js';
import { OnnxMember } from '../src/predict/onnx-member.js';
import { chooseMembers, parseBuiltInMemberList, parseMemberList } from '../src/predict/members.js';
import { PredictEngine } from '../src/predict/predict.js';
import { readSubmission } from '../src/submission/submission-csv.js';
import { parseOnnxMemberOptions } from '../src/cli/options.js';
import { expectResumeRefusedWithOtherMember } from './helpers/member-resume.js';
import { KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { runCliInProcess } from './helpers/cli.js';
import { copyKaggleImages, restoreHome, useTinyClipHome, writeSmallBankAndLabels } from './helpers/tiny-clip-home.js';

const { onnx } = onnxProto;
const DIM = 384;
const SIZE = 32;
const TRUTH = path.join(KAGGLE_SAMPLE, 'prompts.csv');
const SAMPLE_IDS = ['20057f34d', '227ef0887', '92e911621', 'a4e1c55a9', 'c98f79f71', 'd8edf2e40', 'f27825b2c'];

const work = tempDir('img2prompt-onnx-member-');
const images = path.join(work, 'images');
const imageFile = (id: string) => path.join(images, `${id}.png`);

/** A fixed [channels, dim] matrix with no two columns alike. */
function matrix(dim: number, channels = 3): Float32Array {
  return Float32Array.from({ length: channels * dim }, (_, i) => Math.sin(1 + i * 0.37) + (i % 7) * 0.05);
}

interface ModelShape {
  dim?: number;
  /** The input's dims (default [batch, 3, SIZE, SIZE]). */
  input?: (number | string)[];
  metadata?: Record<string, string>;
}

/** pixels [B, 3, H, W] → mean per channel [B, 3] → × matrix(dim) → [B, dim], written to `file`. */
function writeModel(file: string, shape: ModelShape = {}): void {
  const dim = shape.dim ?? DIM;
  const input = shape.input ?? ['batch', 3, SIZE, SIZE];
  const channels = input[1] as number;
  const b = new GraphBuilder('pool_project');
  const x = b.input('pixels', 'float32', input);
  const pooled = b.op('Flatten', [b.op('GlobalAveragePool', [x])], { axis: 1 });
  const y = b.op('MatMul', [pooled, b.initializer('w', matrix(dim, channels), [channels, dim])]);
  b.output(y, 'vector', 'float32', ['batch', dim]);
  const model = b.toModel();
  if (shape.metadata) model.metadataProps = Object.entries(shape.metadata).map(([key, value]) => ({ key, value }));
  fs.writeFileSync(file, onnx.ModelProto.encode(model).finish());
}

const DESCRIPTION: ImagePreprocessing = { size: SIZE, resize: 'open_clip', mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3], channelOrder: 'rgb' };

/** Writes `name.onnx` and its sidecar `name.json` (unless `description` is null); returns the model path. */
function modelWithSidecar(name: string, description: object | null, shape: ModelShape = {}): string {
  const file = path.join(work, `${name}.onnx`);
  writeModel(file, shape);
  if (description) fs.writeFileSync(path.join(work, `${name}.json`), JSON.stringify(description));
  return file;
}

/** The expected vector: the image preprocessed as described, its channel means (in the model's channel order) × the matrix, L2-normalised. */
async function expectedVector(file: string, p: ImagePreprocessing, dim = DIM): Promise<Float32Array> {
  const transform = new ClipTransform({ size: p.size, mean: p.mean, std: p.std, processor: p.resize });
  const pixels = new Float32Array(transform.floatsPerImage);
  await transform.into(await decodeImage(file, { alpha: 'keep' }), pixels, 0);
  const plane = p.size * p.size;
  const means = [0, 1, 2].map((c) => pixels.subarray(c * plane, (c + 1) * plane).reduce((a, v) => a + v, 0) / plane);
  if (p.channelOrder === 'bgr') means.reverse();
  const w = matrix(dim);
  const v = Array.from({ length: dim }, (_, j) => means[0]! * w[j]! + means[1]! * w[dim + j]! + means[2]! * w[2 * dim + j]!);
  const norm = Math.hypot(...v);
  return Float32Array.from(v, (x) => x / norm);
}

function expectClose(actual: Float32Array, expected: Float32Array): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  expect(worst).toBeLessThan(1e-5);
}

beforeAll(() => {
  copyKaggleImages(images);
});

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

describe('OnnxMember', () => {
  it('gives each image the normalised vector of its preprocessed pixels, in row order, batched', async () => {
    const file = modelWithSidecar('pool', DESCRIPTION);
    const member = await OnnxMember.open({ name: 'pool', file }, ['cpu']);
    try {
      expect(member.name).toBe('onnx:pool');
      expect(member.preprocessing).toEqual(DESCRIPTION);
      expect(member.fingerprint()).toMatchObject({ name: 'onnx:pool', sha256: expect.stringMatching(/^[0-9a-f]{64}$/), preprocessing: DESCRIPTION });
      const ids = SAMPLE_IDS.slice(0, 4);
      const bytes = { id: 'bytes', data: fs.readFileSync(imageFile(ids[3]!)) };
      const inputs = [imageFile(ids[0]!), imageFile(ids[1]!), imageFile(ids[2]!), bytes];
      const out = await member.member()(new Float32Array(0), inputs.length, { inputs, decode: { exif: 'apply', allowSvg: false } });
      expect(out.vectors.length).toBe(inputs.length * DIM);
      for (let r = 0; r < inputs.length; r++) {
        expectClose(out.vectors.subarray(r * DIM, (r + 1) * DIM), await expectedVector(imageFile(ids[r]!), DESCRIPTION));
      }
    } finally {
      member.close();
    }
  });

  it('hands the planes over in B, G, R order for "bgr", and resizes the whole image for hf-pil-resize', async () => {
    const description: ImagePreprocessing = { ...DESCRIPTION, resize: 'hf-pil-resize', channelOrder: 'bgr' };
    const file = modelWithSidecar('bgr', description);
    const member = await OnnxMember.open({ name: 'bgr', file }, ['cpu']);
    try {
      const image = imageFile(SAMPLE_IDS[4]!);
      const v = await member.embed([image], { exif: 'apply', allowSvg: false });
      expectClose(v, await expectedVector(image, description));
      // Not the RGB answer: the order really changed what the model saw.
      const rgb = await expectedVector(image, { ...description, channelOrder: 'rgb' });
      expect(Math.max(...v.map((x, i) => Math.abs(x - rgb[i]!)))).toBeGreaterThan(1e-3);
    } finally {
      member.close();
    }
  });

  it('reads the description from the model metadata when there is no JSON file beside it', async () => {
    const file = path.join(work, 'inside.onnx');
    writeModel(file, { metadata: { author: 'test', 'img2prompt.preprocessing': JSON.stringify(DESCRIPTION) } });
    expect(await readOnnxMetadata(file)).toEqual(new Map([['author', 'test'], ['img2prompt.preprocessing', JSON.stringify(DESCRIPTION)]]));
    expect((await readPreprocessing(file)).source.where).toBe('metadata "img2prompt.preprocessing"');
    const member = await OnnxMember.open({ name: 'inside', file }, ['cpu']);
    try {
      const image = imageFile(SAMPLE_IDS[5]!);
      expectClose(await member.embed([image], { exif: 'apply', allowSvg: false }), await expectedVector(image, DESCRIPTION));
    } finally {
      member.close();
    }
  });

  it('runs a model exported with a batch of 1 one image at a time', async () => {
    const file = modelWithSidecar('single', DESCRIPTION, { input: [1, 3, SIZE, SIZE] });
    const member = await OnnxMember.open({ name: 'single', file }, ['cpu']);
    try {
      const inputs = SAMPLE_IDS.slice(0, 3).map(imageFile);
      const v = await member.embed(inputs, { exif: 'apply', allowSvg: false });
      for (let r = 0; r < 3; r++) expectClose(v.subarray(r * DIM, (r + 1) * DIM), await expectedVector(inputs[r]!, DESCRIPTION));
    } finally {
      member.close();
    }
  });

  it('refuses at open a model whose output is not 384-d, naming the file and 384', async () => {
    const file = modelWithSidecar('short', DESCRIPTION, { dim: 383 });
    await expect(OnnxMember.open({ name: 'short', file }, ['cpu'])).rejects.toThrow(
      `${file}: output 'vector' [batch, 383] gives 383-d vectors; an ONNX member must give 384-d ones (MiniLM's prompt space)`,
    );
  });

  it('refuses at open an input whose size or channels do not match the description', async () => {
    const file = modelWithSidecar('big', { ...DESCRIPTION, size: 64 });
    await expect(OnnxMember.open({ name: 'big', file }, ['cpu'])).rejects.toThrow(
      `${file}: input 'pixels' [batch, 3, 32, 32] takes 32×32 images, but preprocessing description says size 64`,
    );
    const gray = modelWithSidecar('gray', DESCRIPTION, { input: ['batch', 1, SIZE, SIZE] });
    await expect(OnnxMember.open({ name: 'gray', file: gray }, ['cpu'])).rejects.toThrow(
      `${gray}: input 'pixels' [batch, 1, 32, 32] takes 1 channels, but preprocessing description describes 3 (rgb)`,
    );
  });

  it('refuses a model without a description, or with a bad one, naming where it should be', async () => {
    const bare = modelWithSidecar('bare', null);
    await expect(OnnxMember.open({ name: 'bare', file: bare }, ['cpu'])).rejects.toThrow(
      `${bare}: no preprocessing description: write one to ${path.join(work, 'bare.json')} or into the model's metadata under "img2prompt.preprocessing"`,
    );
    const noStd = modelWithSidecar('nostd', { size: SIZE, mean: [0, 0, 0] });
    await expect(OnnxMember.open({ name: 'nostd', file: noStd }, ['cpu'])).rejects.toThrow(
      `${path.join(work, 'nostd.json')}: preprocessing description: preprocessing: Expected three positive numbers (R, G, B) for std but received undefined`,
    );
    const typo = modelWithSidecar('typo', { ...DESCRIPTION, chanelOrder: 'bgr' });
    await expect(OnnxMember.open({ name: 'typo', file: typo }, ['cpu'])).rejects.toThrow('unknown option "chanelOrder" (did you mean "channelOrder"?)');
  });
});

describe('ONNX member names', () => {
  it('are onnx:NAME in the ensemble; a built-in or unsafe name is refused', () => {
    expect(parseOnnxMemberOptions(['vit=models/vit.onnx', 'b_2=x.onnx'])).toEqual([{ name: 'vit', file: 'models/vit.onnx' }, { name: 'b_2', file: 'x.onnx' }]);
    expect(() => parseOnnxMemberOptions(['knn=x.onnx'])).toThrow('--member knn=x.onnx: the name "knn" is a built-in member\'s name');
    expect(() => parseOnnxMemberOptions(['a b=x.onnx'])).toThrow('must start with a letter and hold only letters, digits, _ and -');
    expect(() => parseOnnxMemberOptions(['x.onnx'])).toThrow('--member must be NAME=FILE.onnx, got "x.onnx"');
    expect(() => parseOnnxMemberOptions(['v=a.onnx', 'v=b.onnx'])).toThrow('the name "v" is given twice');
    expect(parseMemberList('knn,onnx:vit')).toEqual(['knn', 'onnx:vit']);
    expect(() => parseMemberList('onnx:knn')).toThrow('unknown member "onnx:knn"');
    expect(() => parseBuiltInMemberList('knn,onnx:vit', '--members')).toThrow('--members: this command has no ONNX members ("onnx:vit")');
  });

  it('join the default members, and a weights file naming one that was not given says how to give it', () => {
    const notices: string[] = [];
    expect(chooseMembers(undefined, undefined, 'w', (m) => notices.push(m), false, ['onnx:vit'])).toEqual(['knn', 'map', 'interrogator', 'onnx:vit']);
    const weights = { members: { knn: 0.5, 'onnx:vit': 0.5 } };
    expect(chooseMembers(undefined, weights, 'w.json', (m) => notices.push(m))).toEqual(['knn']);
    expect(notices).toEqual(['w.json names ONNX member onnx:vit, whose model was not given (--member vit=FILE.onnx, or onnxMembers); it is absent']);
  });

  it('PredictEngine.open checks onnxMembers through the options reader', async () => {
    await expect(PredictEngine.open({ onnxMembers: [{ name: 'map', file: 'x.onnx' }] })).rejects.toThrow(
      'PredictEngine.open(): Expected a member name (this one is a built-in member\'s name (knn, map, interrogator, captioner); choose another) for onnxMembers[0].name but received "map"',
    );
    await expect(PredictEngine.open({ onnxMembers: [{ name: 'v', path: 'x.onnx' }] as never })).rejects.toThrow(TypeError);
    await expect(PredictEngine.open({ members: ['knn', 'onnx:'] as never })).rejects.toThrow(RangeError);
  });
});

describe('predict and fit-weights with --member', () => {
  const home = tempDir('img2prompt-onnx-member-home-');
  let saved: string | undefined;
  let common: string[];
  let model: string;

  beforeAll(async () => {
    saved = await useTinyClipHome(home, 5);
    common = writeSmallBankAndLabels(work).options;
    model = modelWithSidecar('vit', DESCRIPTION);
  });

  afterAll(() => {
    restoreHome(saved);
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('predict writes a submission with the member in the ensemble; fit-weights lists its column and weights it', async () => {
    const out = path.join(work, 'sub.csv');
    const r = await runCliInProcess(['predict', images, '-o', out, '--members', 'knn,onnx:vit', '--member', `vit=${model}`, ...common], home);
    expect(r.stderr).toContain('members: knn, onnx:vit');
    expect(r.code).toBe(0);
    const sub = await readSubmission(out);
    expect([...sub.ids].sort()).toEqual(SAMPLE_IDS);

    // With the member alone, the submission is the member's vector.
    const alone = path.join(work, 'alone.csv');
    expect((await runCliInProcess(['predict', images, '-o', alone, '--members', 'onnx:vit', '--member', `vit=${model}`, ...common], home)).code).toBe(0);
    const only = await readSubmission(alone);
    const i = only.ids.indexOf(SAMPLE_IDS[2]!);
    expectClose(only.vectors.subarray(i * DIM, (i + 1) * DIM), await expectedVector(imageFile(SAMPLE_IDS[2]!), DESCRIPTION));

    const weights = path.join(work, 'weights.json');
    const fit = await runCliInProcess(
      ['fit-weights', '--images', images, '--truth', TRUTH, '--folds', '3', '--members', 'knn,onnx:vit', '--member', `vit=${model}`, '-o', weights, ...common],
      home,
    );
    expect(fit.code).toBe(0);
    expect(fit.stdout).toMatch(/^fold\s+images\s+knn\s+onnx:vit\s+ensemble$/m);
    const fitted = JSON.parse(fs.readFileSync(weights, 'utf8')).members as Record<string, number>;
    expect(Object.keys(fitted)).toEqual(['knn', 'onnx:vit']);
    expect(fitted['knn']! + fitted['onnx:vit']!).toBeCloseTo(1, 9);

    // Weights naming the member bring it back with its model; without it, a notice says how.
    const both = path.join(work, 'both.json');
    fs.writeFileSync(both, JSON.stringify({ members: { knn: 0.5, 'onnx:vit': 0.5 } }));
    const weighted = path.join(work, 'weighted.csv');
    const withModel = await runCliInProcess(['predict', images, '-o', weighted, '--weights', both, '--member', `vit=${model}`, ...common], home);
    expect(withModel.code).toBe(0);
    expect(withModel.stderr).toContain('members: knn, onnx:vit');
    const without = await runCliInProcess(['predict', images, '-o', weighted, '--weights', both, ...common], home);
    expect(without.code).toBe(0);
    expect(without.stderr).toContain(`${both} names ONNX member onnx:vit, whose model was not given (--member vit=FILE.onnx, or onnxMembers); it is absent`);
    expect(without.stderr).toContain('members: knn\n');
  });

  it('from Node: PredictEngine.open({ onnxMembers }) gives each result the member vector, and the fingerprint its file and preprocessing', async () => {
    const bankFile = common[common.indexOf('--prompts-bank') + 1]!;
    const labelsDir = common[common.indexOf('--labels-dir') + 1]!;
    const engine = await PredictEngine.open({
      model: 'tiny', promptsBank: [bankFile], labelsDir, members: ['knn', 'onnx:vit'], onnxMembers: [{ name: 'vit', file: model }],
    });
    try {
      expect(engine.members).toEqual(['knn', 'onnx:vit']);
      const member = engine.onnxMembers[0]!;
      expect(engine.fingerprintOptions(16, 512, 'apply').onnxMembers).toEqual([{ name: 'onnx:vit', sha256: member.sha256, preprocessing: DESCRIPTION }]);
      const inputs = [imageFile(SAMPLE_IDS[0]!), { id: 'up', data: fs.readFileSync(imageFile(SAMPLE_IDS[1]!)) }];
      const results = [];
      for await (const r of engine.run(inputs, { batchSize: 2 })) results.push(r);
      expectClose(results[0]!.members['onnx:vit']!, await expectedVector(imageFile(SAMPLE_IDS[0]!), DESCRIPTION));
      expectClose(results[1]!.members['onnx:vit']!, await expectedVector(imageFile(SAMPLE_IDS[1]!), DESCRIPTION));
    } finally {
      engine.close();
    }
  });

  it('a checkpoint written with one ONNX model refuses to resume with another', async () => {
    const bankFile = common[common.indexOf('--prompts-bank') + 1]!;
    const labelsDir = common[common.indexOf('--labels-dir') + 1]!;
    const checkpoint = path.join(work, 'member.ckpt');
    const open = (file: string) => PredictEngine.open({ model: 'tiny', promptsBank: [bankFile], labelsDir, members: ['onnx:m'], onnxMembers: [{ name: 'm', file }] });
    const first = modelWithSidecar('m1', DESCRIPTION);
    const other = modelWithSidecar('m2', { ...DESCRIPTION, mean: [0.4, 0.4, 0.4] });
    const inputs = SAMPLE_IDS.slice(0, 2).map(imageFile);
    await expectResumeRefusedWithOtherMember(
      open,
      { first, other },
      { inputs, checkpoint, check: (members) => expect(members['onnx:m']).toBeDefined() },
      /option onnxMembers: .*"mean":\[0\.5,0\.4,0\.3\].* → .*"mean":\[0\.4,0\.4,0\.4\]/,
    );
  });

  it('refuses, at open, a --member whose output is not 384-d', async () => {
    const short = modelWithSidecar('short2', DESCRIPTION, { dim: 383 });
    const r = await runCliInProcess(['predict', images, '-o', path.join(work, 'never.csv'), '--member', `s=${short}`, ...common], home);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${short}: output 'vector' [batch, 383] gives 383-d vectors; an ONNX member must give 384-d ones`);
  });
});
