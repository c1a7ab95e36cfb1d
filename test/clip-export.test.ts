import fs from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { architectureConfig } from '../src/clip/architectures.js';
import { writeRandomCheckpoint } from '../src/clip/random-checkpoint.js';
import { loadClipCheckpoint, type ClipCheckpoint } from '../src/clip/weights.js';
import { ClipModel } from '../src/clip/model.js';
import { ensureClipOnnx } from '../src/clip/onnx-cache.js';
import { readOnnxHeader } from '../src/clip/onnx-header.js';
import { classifyTower } from '../src/clip/tower-io.js';
import { ClipTokenizer, padClipBatch, padIdFor } from '../src/clip/tokenizer.js';
import { Session, tensor } from '../src/runtime/session.js';
import { bankKey, staleReason } from '../src/interrogate/bank-cache.js';
import { clipTextGraphBuilder } from '../models/graph/clip-text.js';
import { clipVisionGraphBuilder } from '../models/graph/clip-vision.js';
import { onnxDataType, type GraphBuilder } from '../models/graph/onnx-builder.js';
import { asset, KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { maxAbsDiff } from './reference/compare.js';

const { onnx } = onnxProto;
const TOKENIZER = asset('tokenizers', 'clip', 'hf-openai-clip-vit-large-patch14', 'tokenizer.json');
const IMAGES = ['20057f34d.png', 'c98f79f71.png'].map((f) => path.join(KAGGLE_SAMPLE, 'images', f));
const TEXTS = ['a', 'a castle in the clouds', 'portrait of an old man, highly detailed, by rembrandt, trending on artstation', ''];

const root = tempDir('img2prompt-clip-export-');
/** Our own checkpoint (seed 7, HF layout): ClipModel builds its graphs, the reference answers. */
const ckptDir = path.join(root, 'ckpt');
let ckpt: ClipCheckpoint;
let other: ClipCheckpoint;

beforeAll(async () => {
  const config = architectureConfig('tiny');
  await writeRandomCheckpoint(ckptDir, config, 7, 'hf');
  fs.copyFileSync(TOKENIZER, path.join(ckptDir, 'tokenizer.json'));
  ckpt = await loadClipCheckpoint(ckptDir);
  await writeRandomCheckpoint(path.join(root, 'other'), config, 8, 'hf');
  other = await loadClipCheckpoint(path.join(root, 'other'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function nodeOf(b: GraphBuilder, pick: (n: onnxProto.onnx.INodeProto) => boolean): onnxProto.onnx.INodeProto {
  const node = b.toModel().graph!.node!.find(pick);
  if (!node) throw new Error('node not found');
  return node;
}

function write(file: string, model: onnxProto.onnx.ModelProto): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, onnx.ModelProto.encode(model).finish());
}

/** Moves the named output to the front, as HF exports list last_hidden_state first. */
function outputsFirst(model: onnxProto.onnx.ModelProto, keep: string[]): void {
  const byName = new Map(model.graph!.output!.map((o) => [o.name!, o]));
  model.graph!.output = keep.map((n) => byName.get(n)!);
}

/**
 * Our text graph shaped like a Hugging Face export: inputs input_ids + attention_mask, outputs
 * last_hidden_state (first) and text_embeds. It pools at sum(attention_mask) - 1 instead of the
 * argmax of the ids, so embeddings are right only if the caller's mask is.
 */
function writeHfTextExport(file: string, c: ClipCheckpoint): void {
  const b = clipTextGraphBuilder(c.config, c.weights);
  const mask = b.input('attention_mask', 'int64', ['batch', 'sequence']);
  const hidden = nodeOf(b, (n) => n.opType === 'GatherND').input![0]!;
  const lengths = b.op('ReduceSum', [mask, b.constInt64([1])], { keepdims: 1 }, 'lengths');
  const lastIndex = b.op('Sub', [lengths, b.constInt64(1)], {}, 'last_index');
  const maskF = b.op('Unsqueeze', [b.op('Cast', [mask], { to: onnxDataType('float32') }), b.constInt64([2])]);
  b.output(b.op('Mul', [hidden, maskF], {}, 'masked_hidden'), 'last_hidden_state', 'float32');
  const model = b.toModel();
  model.graph!.node!.find((n) => n.opType === 'GatherND')!.input![1] = lastIndex;
  outputsFirst(model, ['last_hidden_state', 'text_embeds']);
  write(file, model);
}

/**
 * Our vision graph shaped like a Hugging Face export: outputs last_hidden_state (first) and the raw
 * (not unit-length) image_embeds; with `embeds: false`, last_hidden_state and pooler_output only.
 */
function writeHfVisionExport(file: string, c: ClipCheckpoint, embeds = true): void {
  const b = clipVisionGraphBuilder(c.config, c.weights);
  b.output(nodeOf(b, (n) => n.name === 'class_token').input![0]!, 'last_hidden_state', 'float32');
  b.output(nodeOf(b, (n) => n.name === 'project').input![0]!, 'pooler_output', 'float32');
  const model = b.toModel();
  const nodes = model.graph!.node!;
  const raw = nodes.find((n) => n.output![0] === 'image_embeds_raw')!.input![0]!;
  nodes.find((n) => n.output![0] === 'image_embeds')!.input![0] = raw;
  outputsFirst(model, embeds ? ['last_hidden_state', 'image_embeds'] : ['last_hidden_state', 'pooler_output']);
  write(file, model);
}

function exportDir(name: string): string {
  const dir = path.join(root, name);
  fs.mkdirSync(path.join(dir, 'onnx'), { recursive: true });
  for (const f of ['config.json', 'preprocessor_config.json', 'tokenizer.json']) fs.copyFileSync(path.join(ckptDir, f), path.join(dir, f));
  return dir;
}

describe('classifyTower: towers are told apart by their input/output names', () => {
  it('takes our graphs and the Hugging Face split, whatever the order of the outputs', () => {
    expect(classifyTower('v.onnx', { inputs: ['pixel_values'], outputs: ['last_hidden_state', 'pooler_output', 'image_embeds'] })).toEqual({
      tower: 'vision', output: 'image_embeds', attentionMask: false,
    });
    expect(classifyTower('t.onnx', { inputs: ['input_ids', 'attention_mask'], outputs: ['last_hidden_state', 'text_embeds'] })).toEqual({
      tower: 'text', output: 'text_embeds', attentionMask: true,
    });
    expect(classifyTower('t.onnx', { inputs: ['input_ids'], outputs: ['text_embeds', 'text_embeds_raw'] }, 'text').attentionMask).toBe(false);
  });

  it('refuses, in one line naming the file and its names, what it cannot use', () => {
    const cases: [Parameters<typeof classifyTower>[1], string][] = [
      [{ inputs: ['pixel_values'], outputs: ['last_hidden_state', 'pooler_output'] },
        'v.onnx: CLIP vision tower has no image_embeds output (inputs: pixel_values; outputs: last_hidden_state, pooler_output)'],
      [{ inputs: ['input_ids', 'attention_mask'], outputs: ['last_hidden_state'] },
        't.onnx: CLIP text tower has no text_embeds output (inputs: input_ids, attention_mask; outputs: last_hidden_state)'],
      [{ inputs: ['input_ids', 'token_type_ids'], outputs: ['text_embeds'] },
        't.onnx: CLIP text tower with inputs we cannot feed: token_type_ids (inputs: input_ids, token_type_ids; outputs: text_embeds)'],
      [{ inputs: ['input_ids', 'pixel_values', 'attention_mask'], outputs: ['logits_per_image', 'text_embeds', 'image_embeds'] },
        'm.onnx: a combined CLIP graph, not one tower (inputs: input_ids, pixel_values, attention_mask; outputs: logits_per_image, text_embeds, image_embeds): use the split export (vision_model.onnx + text_model.onnx)'],
      [{ inputs: ['x'], outputs: ['y'] }, 'x.onnx: not a CLIP tower: no pixel_values or input_ids input (inputs: x; outputs: y)'],
    ];
    for (const [io, message] of cases) expect(() => classifyTower(message.slice(0, message.indexOf(':')), io)).toThrow(message);
    expect(() => classifyTower('t.onnx', { inputs: ['input_ids'], outputs: ['text_embeds'] }, 'vision')).toThrow(
      't.onnx: is a CLIP text tower, expected the vision tower (inputs: input_ids; outputs: text_embeds)',
    );
  });
});

describe('readOnnxHeader', () => {
  it('reads the input and output names and external-data files without loading the weights', async () => {
    const dir = path.join(root, 'header');
    const inline = path.join(dir, 'inline.onnx');
    const external = path.join(dir, 'external.onnx');
    writeHfTextExport(inline, ckpt);
    await clipVisionGraphBuilder(ckpt.config, ckpt.weights).writeModel(external, { externalAbove: 1024 });
    expect(await readOnnxHeader(inline)).toEqual({ inputs: ['input_ids', 'attention_mask'], outputs: ['last_hidden_state', 'text_embeds'], externalFiles: [] });
    expect(await readOnnxHeader(external)).toEqual({ inputs: ['pixel_values'], outputs: ['image_embeds', 'image_embeds_raw'], externalFiles: [`${external}.data`] });
    // The Session (ONNX Runtime's own reading) agrees.
    const s = await Session.open(inline, { providers: ['cpu'] });
    expect(s.inputs.map((i) => i.name)).toEqual(['input_ids', 'attention_mask']);
    expect(s.outputs.map((o) => o.name)).toEqual(['last_hidden_state', 'text_embeds']);
    s.close();
  });

  it('names the file when it is no ONNX model', async () => {
    const file = path.join(root, 'header', 'bad.onnx');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, Buffer.from([0x3a, 0xff, 0xff, 0x7f])); // a graph field longer than the file
    await expect(readOnnxHeader(file)).rejects.toThrow(`${file}: not a readable ONNX model: field runs past its message`);
    // A missing file: the cause in words, the path once (not Node's "ENOENT: ..., open '<path>'").
    const missing = path.join(root, 'header', 'absent.onnx');
    await expect(readOnnxHeader(missing)).rejects.toMatchObject({ message: `${missing}: cannot read the model: no such file`, code: 'FILE_UNREADABLE' });
  });
});

describe('ready Hugging Face-style exports', () => {
  let ours: ClipModel;
  beforeAll(async () => {
    ours = await ClipModel.open(ckptDir, { sessionOptions: { providers: ['cpu'] } });
  });
  afterAll(() => ours.close());

  it('feed attention_mask, read text_embeds and image_embeds (not the first output), and equal our graphs', async () => {
    const dir = exportDir('hf-style');
    writeHfVisionExport(path.join(dir, 'onnx', 'vision_model.onnx'), ckpt);
    writeHfTextExport(path.join(dir, 'onnx', 'text_model.onnx'), ckpt);
    const exported = await ClipModel.open(dir, { sessionOptions: { providers: ['cpu'] } });
    expect(exported.files.kind).toBe('export');
    // Its config.json makes it a transformers model, tokenized as transformers does.
    expect([exported.files.layout, exported.tokenizer!.kind]).toEqual(['hf', 'hf']);
    for (const padding of ['dynamic', 'fixed'] as const) {
      const a = await exported.encodeTexts(TEXTS, { padding, batchSize: 4 });
      const b = await ours.encodeTexts(TEXTS, { padding, batchSize: 4 });
      expect(maxAbsDiff(a, b)).toBeLessThan(1e-6);
    }
    // The export's image_embeds are raw projections: ClipModel normalises them.
    const a = await exported.encodeImages(IMAGES);
    const b = await ours.encodeImages(IMAGES);
    expect(maxAbsDiff(a.embeds, b.embeds)).toBeLessThan(1e-6);
    exported.close();
  });

  it('really depend on the mask: an all-ones mask over padding gives other embeddings', async () => {
    const file = path.join(root, 'hf-style', 'onnx', 'text_model.onnx');
    const session = await Session.open(file, { providers: ['cpu'] });
    const tokenizer = await ClipTokenizer.load(ckptDir, { kind: 'hf' });
    const seqs = ['a', 'a castle in the clouds'].map((t) => tokenizer.encode(t));
    const batch = padClipBatch(seqs, 'longest', padIdFor('open_clip'));
    const run = async (mask: BigInt64Array) =>
      (await session.run({
        input_ids: tensor('int64', batch.inputIds, [2, batch.seqLen]),
        attention_mask: tensor('int64', mask, [2, batch.seqLen]),
      }, { outputNames: ['text_embeds'] })).text_embeds!.data as Float32Array;
    const right = new BigInt64Array(2 * batch.seqLen);
    seqs.forEach((s, i) => right.fill(1n, i * batch.seqLen, i * batch.seqLen + s.length));
    const good = await run(right);
    const wrong = await run(new BigInt64Array(2 * batch.seqLen).fill(1n));
    const d = ckpt.config.embedDim;
    expect(maxAbsDiff(good.slice(0, d), wrong.slice(0, d))).toBeGreaterThan(1e-2); // the short text moved
    expect(maxAbsDiff(good.slice(d), wrong.slice(d))).toBe(0); // the longest one has no padding
    expect(maxAbsDiff(good.slice(0, d), (await ours.encodeTexts(['a'])).slice(0, d))).toBeLessThan(1e-6);
    session.close();
  });

  it('are refused, naming the file and its outputs, when the vision tower has no image_embeds', async () => {
    const dir = exportDir('no-embeds');
    const vision = path.join(dir, 'onnx', 'vision_model.onnx');
    writeHfVisionExport(vision, ckpt, false);
    writeHfTextExport(path.join(dir, 'onnx', 'text_model.onnx'), ckpt);
    const err = await ClipModel.open(dir).then(() => undefined, (e: unknown) => e as Error);
    expect(err?.message).toBe(
      `${vision}: CLIP vision tower has no image_embeds output (inputs: pixel_values; outputs: last_hidden_state, pooler_output)`,
    );
  });

  it('are classified by their names, not their file names', async () => {
    // Swapped file names: each file is still used as the tower it is.
    const swapped = exportDir('swapped');
    writeHfTextExport(path.join(swapped, 'onnx', 'vision_model.onnx'), ckpt);
    writeHfVisionExport(path.join(swapped, 'onnx', 'text_model.onnx'), ckpt);
    const files = await ensureClipOnnx(swapped);
    expect([path.basename(files.vision), path.basename(files.text)]).toEqual(['text_model.onnx', 'vision_model.onnx']);
    // Any names: the one vision and one text tower among the .onnx files.
    const named = exportDir('any-names');
    writeHfVisionExport(path.join(named, 'onnx', 'clip-image.onnx'), ckpt);
    writeHfTextExport(path.join(named, 'onnx', 'clip-words.onnx'), ckpt);
    const model = await ClipModel.open(named, { sessionOptions: { providers: ['cpu'] } });
    expect(path.basename(model.files.vision)).toBe('clip-image.onnx');
    expect(maxAbsDiff(await model.encodeTexts(TEXTS), await ours.encodeTexts(TEXTS))).toBeLessThan(1e-6);
    model.close();
    // Two candidates for one tower: refused rather than guessed.
    writeHfVisionExport(path.join(named, 'onnx', 'clip-image_fp16.onnx'), ckpt);
    await expect(ensureClipOnnx(named)).rejects.toThrow(
      `${named}: several CLIP vision towers (onnx/clip-image.onnx, onnx/clip-image_fp16.onnx): keep one, or name the pair vision_model.onnx + text_model.onnx`,
    );
  });
});

describe('the weight hash of a ready export', () => {
  it('covers both towers and their external data, so changing only the text tower rebuilds label banks', async () => {
    const dir = exportDir('hash');
    const vision = path.join(dir, 'onnx', 'vision_model.onnx');
    const text = path.join(dir, 'onnx', 'text_model.onnx');
    await clipVisionGraphBuilder(ckpt.config, ckpt.weights).writeModel(vision, { externalAbove: 1024 });
    await clipTextGraphBuilder(ckpt.config, ckpt.weights).writeModel(text, { externalAbove: 1024 });
    const visionBytes = fs.readFileSync(vision);
    const first = await ClipModel.open(dir, { towers: ['text'], sessionOptions: { providers: ['cpu'] } });
    first.close();
    expect((await ensureClipOnnx(dir)).weightHash).toBe(first.weightHash); // stable

    // Only the text tower's external data changes (one byte of one weight).
    const data = fs.readFileSync(`${text}.data`);
    data[data.length - 1] ^= 1;
    fs.writeFileSync(`${text}.data`, data);
    const flipped = (await ensureClipOnnx(dir)).weightHash;
    expect(flipped).not.toBe(first.weightHash);

    // Only the text tower changes (other weights, same architecture and file sizes).
    await clipTextGraphBuilder(other.config, other.weights).writeModel(text, { externalAbove: 1024 });
    const second = await ClipModel.open(dir, { towers: ['text'], sessionOptions: { providers: ['cpu'] } });
    second.close();
    expect(fs.readFileSync(vision).equals(visionBytes)).toBe(true);
    expect(second.weightHash).not.toBe(first.weightHash);
    expect(second.weightHash).not.toBe(flipped);
    const def = { name: 'mediums', role: 'medium' as const, labels: ['oil painting'], source: 'test' };
    expect(staleReason(bankKey(first, def, 'fp32'), bankKey(second, def, 'fp32'))).toMatch(/^built for model|^built with other model weights$/);
  });
});
