import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { installRandomClip } from '../src/models/install-local.js';
import { modelDir } from '../src/models/cache.js';
import { ClipModel } from '../src/clip/model.js';
import { ensureClipOnnx } from '../src/clip/onnx-cache.js';
import { ensureMiniLMOnnx } from '../models/graph/bert.js';
import { precisionFor, requestedPrecision } from '../src/runtime/precision.js';
import { asset, tempDir } from './helpers/paths.js';
import { restoreHome } from './helpers/tiny-clip-home.js';
import { runCli } from './helpers/cli.js';

const { onnx } = onnxProto;
const T = onnx.TensorProto.DataType;
const TYPE_NAME: Record<number, string> = { [T.FLOAT]: 'float32', [T.FLOAT16]: 'float16', [T.INT64]: 'int64', [T.INT32]: 'int32', [T.BOOL]: 'bool' };

interface TypedNode {
  op: string;
  name: string;
  inputs: string[];
  outputs: string[];
  inputTypes: string[];
  attrs: Map<string, number>;
}

/**
 * The element type of every value in a graph, propagated from its inputs and initializers the way
 * these builders use each operator: a test-side reading of the file that owes nothing to the builder.
 */
function typedNodes(file: string): { nodes: TypedNode[]; initializers: Map<string, { type: string; size: number }>; outputs: Map<string, string> } {
  const model = onnx.ModelProto.decode(fs.readFileSync(file));
  const graph = model.graph!;
  const types = new Map<string, string>();
  const initializers = new Map<string, { type: string; size: number }>();
  for (const i of graph.input ?? []) types.set(i.name!, TYPE_NAME[i.type!.tensorType!.elemType!]!);
  for (const t of graph.initializer ?? []) {
    const type = TYPE_NAME[t.dataType!]!;
    types.set(t.name!, type);
    initializers.set(t.name!, { type, size: (t.dims ?? []).reduce((a: number, d) => a * Number(d), 1) });
  }
  const nodes: TypedNode[] = [];
  for (const n of graph.node ?? []) {
    const attrs = new Map((n.attribute ?? []).map((a) => [a.name!, Number(a.i ?? 0)]));
    const inputTypes = (n.input ?? []).map((i) => types.get(i) ?? '?');
    let out: string;
    if (n.opType === 'Cast') out = TYPE_NAME[attrs.get('to')!]!;
    else if (n.opType === 'Shape' || n.opType === 'ArgMax') out = 'int64';
    else if (n.opType === 'Equal') out = 'bool';
    else out = inputTypes[0]!;
    for (const o of n.output ?? []) types.set(o, out);
    nodes.push({ op: n.opType!, name: n.name!, inputs: n.input ?? [], outputs: n.output ?? [], inputTypes, attrs });
  }
  const outputs = new Map((graph.output ?? []).map((o) => [o.name!, types.get(o.name!)!]));
  return { nodes, initializers, outputs };
}

const count = (nodes: TypedNode[], op: string, inputType?: string) => nodes.filter((n) => n.op === op && (inputType === undefined || n.inputTypes[0] === inputType)).length;

let home: string;
let saved: string | undefined;

beforeAll(async () => {
  home = tempDir('img2prompt-precision-');
  saved = process.env.IMG2PROMPT_HOME;
  process.env.IMG2PROMPT_HOME = home;
  await installRandomClip({ arch: 'tiny', seed: 11, name: 'tiny', layout: 'open_clip', tokenizerDir: asset('tokenizers', 'clip', 'hf-openai-clip-vit-large-patch14') });
});

afterAll(() => {
  restoreHome(saved);
  fs.rmSync(home, { recursive: true, force: true });
});

describe('fp16 CLIP graphs', () => {
  it('run the blocks in float16 and softmax, the final LayerNorm, the projection and the normalisation in float32', async () => {
    const dir = modelDir('tiny');
    const files = await ensureClipOnnx(dir, { precision: 'fp16' });
    expect(files).toMatchObject({ kind: 'built', precision: 'fp16', vision: path.join(dir, 'vision.fp16.onnx'), text: path.join(dir, 'text.fp16.onnx') });
    for (const [tower, head, layers] of [['vision', 'ln_post', 2], ['text', 'ln_final', 2]] as const) {
      const g = typedNodes(tower === 'vision' ? files.vision : files.text);
      const config = tower === 'vision' ? files.config.vision : files.config.text;
      expect(config.layers).toBe(layers);
      // Per block: q/k/v in-projection, out_proj, c_fc, c_proj and the two attention products.
      expect(count(g.nodes, 'MatMul', 'float16')).toBe(6 * layers);
      expect(count(g.nodes, 'Softmax')).toBe(layers);
      expect(count(g.nodes, 'Softmax', 'float32')).toBe(layers);
      expect(count(g.nodes, 'LayerNormalization', 'float16')).toBe(2 * layers + (tower === 'vision' ? 1 : 0)); // + ln_pre
      // stash_type 1 (the default, float32 statistics) everywhere: never set to anything else.
      expect(g.nodes.filter((n) => n.op === 'LayerNormalization' && n.attrs.has('stash_type'))).toEqual([]);
      const headNode = g.nodes.find((n) => n.op === 'LayerNormalization' && n.name === head)!;
      expect(headNode.inputTypes).toEqual(['float32', 'float32', 'float32']);
      const project = g.nodes.find((n) => n.name === 'project')!;
      expect(project.inputTypes).toEqual(['float32', 'float32']);
      expect(count(g.nodes, 'ReduceL2', 'float32')).toBe(1);
      expect([...g.outputs.values()]).toEqual(['float32', 'float32']);
      // The projection stays float32; every other weight matrix is half (the text tower's causal mask is a float32 constant).
      expect(g.initializers.get(tower === 'vision' ? 'proj' : 'text_projection')!.type).toBe('float32');
      const big = [...g.initializers].filter(([, t]) => t.size >= 256);
      expect(big.filter(([, t]) => t.type === 'float32').map(([n]) => n).sort()).toEqual(tower === 'vision' ? ['proj'] : ['causal_mask/full', 'text_projection']);
      expect(big.filter(([, t]) => t.type === 'float16').length).toBeGreaterThanOrEqual(4 * layers + 2); // 4 per block + embeddings
    }
  });

  it('leave the fp32 graphs without a single float16 value, and cache each precision separately', async () => {
    const dir = modelDir('tiny');
    const fp32 = await ensureClipOnnx(dir, { precision: 'fp32' });
    expect(fp32).toMatchObject({ precision: 'fp32', vision: path.join(dir, 'vision.onnx'), text: path.join(dir, 'text.onnx') });
    for (const file of [fp32.vision, fp32.text]) {
      const g = typedNodes(file);
      expect(g.nodes.filter((n) => n.op === 'Cast' && n.attrs.get('to') === T.FLOAT16)).toEqual([]);
      expect([...g.initializers.values()].filter((t) => t.type === 'float16')).toEqual([]);
    }
    const stamps = () => ['vision.onnx', 'text.onnx', 'vision.fp16.onnx', 'text.fp16.onnx'].map((f) => fs.statSync(path.join(dir, f)).mtimeMs);
    const before = stamps();
    await ensureClipOnnx(dir, { precision: 'fp16' });
    await ensureClipOnnx(dir, { precision: 'fp32' });
    expect(stamps()).toEqual(before); // neither rebuilds the other
    expect(fs.existsSync(path.join(dir, 'clip-onnx.json')) && fs.existsSync(path.join(dir, 'clip-onnx.fp16.json'))).toBe(true);
  });
});

describe('choosing the precision', () => {
  it('is fp16 when sessions try CUDA first, fp32 on the CPU, unless told', () => {
    expect(precisionFor(['cuda', 'cpu'])).toBe('fp16');
    expect(precisionFor(['cpu'])).toBe('fp32');
    const env = process.env.IMG2PROMPT_PRECISION;
    try {
      delete process.env.IMG2PROMPT_PRECISION;
      expect(requestedPrecision()).toBeUndefined();
      process.env.IMG2PROMPT_PRECISION = 'fp16';
      expect(requestedPrecision()).toBe('fp16');
      expect(requestedPrecision('fp32')).toBe('fp32');
      process.env.IMG2PROMPT_PRECISION = 'half';
      expect(() => requestedPrecision()).toThrow("IMG2PROMPT_PRECISION must be fp32 or fp16, got 'half'");
    } finally {
      if (env === undefined) delete process.env.IMG2PROMPT_PRECISION;
      else process.env.IMG2PROMPT_PRECISION = env;
    }
  });

  it('ClipModel.open: fp32 on the CPU, fp16 on CUDA, and fp32 again when CUDA was tried but the session fell back to the CPU', async () => {
    const cpu = await ClipModel.open('tiny', { sessionOptions: { providers: ['cpu'] } });
    expect(cpu.precision).toBe('fp32');
    cpu.close();
    const forced = await ClipModel.open('tiny', { precision: 'fp16', sessionOptions: { providers: ['cpu'] } });
    expect([forced.precision, forced.provider]).toEqual(['fp16', 'cpu']);
    forced.close();
    const tried = await ClipModel.open('tiny', { sessionOptions: { providers: ['cuda', 'cpu'] } });
    // The CUDA branch runs on a GPU machine (scripts/device-check.sh); here CUDA cannot load.
    expect([tried.provider, tried.precision]).toEqual(tried.provider === 'cuda' ? ['cuda', 'fp16'] : ['cpu', 'fp32']);
    tried.close();
  });

  it('embed-images --precision fp16 builds and uses the fp16 graphs; a bad value is a usage error', () => {
    const out = path.join(home, 'e.npy');
    const images = asset('eval', 'kaggle-sample', 'images');
    fs.rmSync(path.join(modelDir('tiny'), 'vision.fp16.onnx'));
    const ok = runCli(['embed-images', images, '--model', 'tiny', '-o', out, '--precision', 'fp16'], home, { env: { IMG2PROMPT_PROVIDERS: 'cpu' } });
    expect(ok.stderr).toContain('7 images');
    expect(ok.code).toBe(0);
    expect(fs.existsSync(path.join(modelDir('tiny'), 'vision.fp16.onnx'))).toBe(true);
    const bad = runCli(['embed-images', images, '--model', 'tiny', '-o', out, '--precision', 'fp8'], home);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("argument 'fp8' is invalid. Allowed choices are fp32, fp16");
  });
});

describe('fp16 MiniLM graph', () => {
  it('runs the encoder in float16 and pooling, normalisation and both outputs in float32', async () => {
    const work = tempDir('img2prompt-minilm16-');
    for (const f of ['model.safetensors', 'config.json']) fs.symlinkSync(path.join(modelDirOfRealMiniLM(), f), path.join(work, f));
    const file = await ensureMiniLMOnnx(work, 'fp16');
    expect(file).toBe(path.join(work, 'model.fp16.onnx'));
    expect(fs.existsSync(path.join(work, 'model.fp16.onnx.json'))).toBe(true);
    expect(fs.existsSync(path.join(work, 'model.onnx'))).toBe(false);
    const g = typedNodes(file);
    // Per layer: q, k, v, out, intermediate, output and the two attention products, all half.
    expect(count(g.nodes, 'MatMul', 'float16')).toBe(8 * 6);
    expect(count(g.nodes, 'MatMul')).toBe(8 * 6);
    expect(count(g.nodes, 'Softmax', 'float32')).toBe(6);
    expect(count(g.nodes, 'ReduceSum', 'float32')).toBe(2);
    expect(count(g.nodes, 'ReduceL2', 'float32')).toBe(1);
    expect([...g.outputs]).toEqual([['token_embeddings', 'float32'], ['sentence_embedding', 'float32']]);
    fs.rmSync(work, { recursive: true, force: true });
  });
});

/** The real MiniLM that global setup pulled, wherever IMG2PROMPT_HOME pointed before this file moved it. */
function modelDirOfRealMiniLM(): string {
  const was = process.env.IMG2PROMPT_HOME;
  restoreHome(saved);
  try {
    return modelDir('minilm');
  } finally {
    process.env.IMG2PROMPT_HOME = was;
  }
}
