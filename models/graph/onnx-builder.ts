import path from 'node:path';
import { writeAtomically, writeFileAtomic } from '../../src/util/atomic-write.js';
import { floatToHalfBits, toFloat16 } from '../../src/rank/float16.js';
import type { Precision } from '../../src/runtime/precision.js';
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';

/**
 * A small builder for ONNX graphs (opset 17, default domain, IR version 8) on top of the `onnx-proto`
 * protobuf classes, plus model-agnostic layer helpers (linear, layer norm, GELU, attention pieces,
 * pooling) shared by the text and vision graphs. Weights go in as raw little-endian bytes
 * (`raw_data`), which keeps encoding fast and is fine below protobuf's 2 GB limit.
 *
 * Precision: a builder made with `precision: 'fp16'` stores weights and carries activations in
 * float16, except where the helpers below keep float32 because half precision would cost accuracy:
 * softmax (its exponentials and row sums), the attention mask, pooling and L2 normalisation, and
 * whatever a graph builds inside `withActivations('float32', …)` (CLIP's final LayerNorm and
 * projection). LayerNormalization computes its mean and variance in float32 whatever its input type
 * (ONNX's stash_type, default 1). In an fp32 builder every cast helper is a no-op, so fp32 graphs are
 * exactly what they were before precision existed.
 */

const { onnx } = onnxProto;
type DataType = OnnxTypes.TensorProto.DataType;

export const OPSET_VERSION = 17;
export const IR_VERSION = 8;

export type ElemType =
  | 'float32' | 'float16' | 'bfloat16' | 'float64'
  | 'int64' | 'int32' | 'int16' | 'int8'
  | 'uint64' | 'uint32' | 'uint16' | 'uint8'
  | 'bool';

const ELEM: Record<ElemType, { code: DataType; bytes: number }> = {
  float32: { code: onnx.TensorProto.DataType.FLOAT, bytes: 4 },
  float16: { code: onnx.TensorProto.DataType.FLOAT16, bytes: 2 },
  bfloat16: { code: onnx.TensorProto.DataType.BFLOAT16, bytes: 2 },
  float64: { code: onnx.TensorProto.DataType.DOUBLE, bytes: 8 },
  int64: { code: onnx.TensorProto.DataType.INT64, bytes: 8 },
  int32: { code: onnx.TensorProto.DataType.INT32, bytes: 4 },
  int16: { code: onnx.TensorProto.DataType.INT16, bytes: 2 },
  int8: { code: onnx.TensorProto.DataType.INT8, bytes: 1 },
  uint64: { code: onnx.TensorProto.DataType.UINT64, bytes: 8 },
  uint32: { code: onnx.TensorProto.DataType.UINT32, bytes: 4 },
  uint16: { code: onnx.TensorProto.DataType.UINT16, bytes: 2 },
  uint8: { code: onnx.TensorProto.DataType.UINT8, bytes: 1 },
  bool: { code: onnx.TensorProto.DataType.BOOL, bytes: 1 },
};

export function onnxDataType(t: ElemType): DataType {
  return ELEM[t].code;
}

export type TensorValues =
  | Float32Array | Float64Array | BigInt64Array | BigUint64Array
  | Int32Array | Int16Array | Int8Array | Uint32Array | Uint16Array | Uint8Array;

/** Element type implied by a typed array; 16-bit floats must be named explicitly (they travel as Uint16Array). */
function inferElemType(values: TensorValues): ElemType {
  if (values instanceof Float32Array) return 'float32';
  if (values instanceof Float64Array) return 'float64';
  if (values instanceof BigInt64Array) return 'int64';
  if (values instanceof BigUint64Array) return 'uint64';
  if (values instanceof Int32Array) return 'int32';
  if (values instanceof Int16Array) return 'int16';
  if (values instanceof Int8Array) return 'int8';
  if (values instanceof Uint32Array) return 'uint32';
  if (values instanceof Uint16Array) return 'uint16';
  return 'uint8';
}

/** Dimension of a graph input/output: a fixed size or a symbolic name such as "batch". */
export type Dim = number | string;

/** Wrapped attribute values, for when a plain JS value would be ambiguous (1.0 is an int to JS). */
export type TaggedAttr =
  | { readonly kind: 'float'; readonly value: number }
  | { readonly kind: 'floats'; readonly value: readonly number[] }
  | { readonly kind: 'int'; readonly value: number | bigint }
  | { readonly kind: 'ints'; readonly value: readonly (number | bigint)[] }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'tensor'; readonly value: OnnxTypes.ITensorProto };

/**
 * Plain values map as: integer number or bigint → INT, other number → FLOAT, string → STRING,
 * number[] → INTS when all are integers else FLOATS. Use the `attr.*` wrappers to force a type.
 */
export type AttrValue = number | bigint | string | readonly number[] | readonly bigint[] | TaggedAttr;

export const attr = {
  float: (value: number): TaggedAttr => ({ kind: 'float', value }),
  floats: (value: readonly number[]): TaggedAttr => ({ kind: 'floats', value }),
  int: (value: number | bigint): TaggedAttr => ({ kind: 'int', value }),
  ints: (value: readonly (number | bigint)[]): TaggedAttr => ({ kind: 'ints', value }),
  string: (value: string): TaggedAttr => ({ kind: 'string', value }),
  tensor: (values: TensorValues, dims: readonly number[], type?: ElemType): TaggedAttr => ({
    kind: 'tensor',
    value: makeTensorProto('value', values, dims, type),
  }),
};

function isTagged(v: AttrValue): v is TaggedAttr {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && 'kind' in v;
}

function toInt(v: number | bigint): number {
  if (typeof v === 'bigint') {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new Error(`attribute value ${v} is outside the safe integer range`);
    }
    return Number(v);
  }
  if (!Number.isInteger(v)) throw new Error(`attribute value ${v} is not an integer`);
  return v;
}

function makeAttribute(name: string, v: AttrValue): OnnxTypes.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  const tagged: TaggedAttr = isTagged(v)
    ? v
    : typeof v === 'string'
      ? { kind: 'string', value: v }
      : typeof v === 'bigint'
        ? { kind: 'int', value: v }
        : typeof v === 'number'
          ? Number.isInteger(v) ? { kind: 'int', value: v } : { kind: 'float', value: v }
          : (v as readonly (number | bigint)[]).every((x) => typeof x === 'bigint' || Number.isInteger(x))
            ? { kind: 'ints', value: v as readonly (number | bigint)[] }
            : { kind: 'floats', value: v as readonly number[] };
  switch (tagged.kind) {
    case 'float':
      return { name, type: T.FLOAT, f: tagged.value };
    case 'floats':
      return { name, type: T.FLOATS, floats: [...tagged.value] };
    case 'int':
      return { name, type: T.INT, i: toInt(tagged.value) };
    case 'ints':
      return { name, type: T.INTS, ints: tagged.value.map(toInt) };
    case 'string':
      return { name, type: T.STRING, s: new TextEncoder().encode(tagged.value) };
    case 'tensor':
      return { name, type: T.TENSOR, t: tagged.value };
  }
}

function makeTensorProto(name: string, values: TensorValues, dims: readonly number[], type?: ElemType): OnnxTypes.ITensorProto {
  const elem = type ?? inferElemType(values);
  const count = dims.reduce((a, d) => a * d, 1);
  if (values.byteLength !== count * ELEM[elem].bytes) {
    throw new Error(`tensor "${name}": ${values.byteLength} bytes do not match ${elem}[${dims.join(',')}]`);
  }
  return {
    name,
    dims: [...dims],
    dataType: ELEM[elem].code,
    // A view, not a copy: the weights are copied once, when the model is encoded.
    rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
  };
}

function valueInfo(name: string, type: ElemType, dims: readonly Dim[] | undefined): OnnxTypes.IValueInfoProto {
  const tensorType: OnnxTypes.TypeProto.ITensor = { elemType: ELEM[type].code };
  if (dims) tensorType.shape = { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) };
  return { name, type: { tensorType } };
}

export interface NodeOptions {
  /** Number of outputs (default 1), or explicit output names. */
  outputs?: number | readonly string[];
  /** Name hint for the node and its outputs (made unique). */
  name?: string;
  /** Operator domain; '' is the default ONNX domain. */
  domain?: string;
}

export class GraphBuilder {
  private readonly nodes: OnnxTypes.INodeProto[] = [];
  private readonly inputs: OnnxTypes.IValueInfoProto[] = [];
  private readonly outputs: OnnxTypes.IValueInfoProto[] = [];
  private readonly initializers: OnnxTypes.ITensorProto[] = [];
  private readonly valueNames = new Set<string>();
  private readonly nodeNames = new Set<string>();
  private readonly counters = new Map<string, number>();
  private readonly smallConstants = new Map<string, string>();
  private readonly scopes: string[] = [];
  private initializerBytes = 0;
  private activations: 'float32' | 'float16';

  constructor(
    readonly graphName = 'graph',
    private readonly meta: { producerName?: string; producerVersion?: string; docString?: string; precision?: Precision } = {},
  ) {
    this.activations = meta.precision === 'fp16' ? 'float16' : 'float32';
  }

  /** The float type weights (`weight`) and activations are built in at this point of the graph. */
  get activationType(): 'float32' | 'float16' {
    return this.activations;
  }

  /** Build a part of the graph with another activation type (e.g. a float32 head on an fp16 tower). */
  withActivations<T>(type: 'float32' | 'float16', fn: () => T): T {
    const saved = this.activations;
    this.activations = type;
    try {
      return fn();
    } finally {
      this.activations = saved;
    }
  }

  /** A learned tensor, stored in the current activation type (rounded to nearest half for float16). */
  weight(nameHint: string, values: Float32Array, dims: readonly number[]): string {
    if (this.activations === 'float32') return this.initializer(nameHint, values, dims);
    return this.initializer(nameHint, toFloat16(values), dims, 'float16');
  }

  /** A scalar in the current activation type, for arithmetic on activations. */
  constAct(value: number): string {
    if (this.activations === 'float32') return this.constFloat(value);
    return this.smallConstant('float16', Uint16Array.of(floatToHalfBits(value)), [], 'const_h');
  }

  /** `x` (in the current activation type) as float32: a Cast in fp16 graphs, `x` itself in fp32 ones. */
  toFloat32(x: string, name = 'to_float32'): string {
    return this.activations === 'float32' ? x : this.op('Cast', [x], { to: onnxDataType('float32') }, name);
  }

  /** A float32 `x` back in the current activation type. */
  toActivations(x: string, name = 'to_activations'): string {
    return this.activations === 'float32' ? x : this.op('Cast', [x], { to: onnxDataType(this.activations) }, name);
  }

  /** Total bytes of initializer data added so far. */
  get weightBytes(): number {
    return this.initializerBytes;
  }

  /** Run `fn` with names prefixed by `scope/` (nested scopes join), so node names read like module paths. */
  scoped<T>(scope: string, fn: () => T): T {
    this.scopes.push(scope);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  private unique(hint: string, taken: Set<string>): string {
    const base = [...this.scopes, hint].join('/');
    let name = base;
    if (taken.has(name)) {
      let n = this.counters.get(base) ?? 1;
      while (taken.has(`${base}_${n}`)) n++;
      this.counters.set(base, n + 1);
      name = `${base}_${n}`;
    }
    taken.add(name);
    return name;
  }

  /** A fresh value name (unique within the graph) derived from `hint`. */
  uniqueName(hint: string): string {
    return this.unique(hint, this.valueNames);
  }

  private claimExact(name: string): string {
    if (this.valueNames.has(name)) throw new Error(`graph value "${name}" already exists`);
    this.valueNames.add(name);
    return name;
  }

  /** Declare a graph input; its name is used verbatim (it is part of the model's interface). */
  input(name: string, type: ElemType, dims: readonly Dim[]): string {
    this.inputs.push(valueInfo(this.claimExact(name), type, dims));
    return name;
  }

  /**
   * Declare `value` as a graph output named `name` (an Identity is inserted when the names differ).
   * `dims` may be omitted to leave the shape to inference.
   */
  output(value: string, name: string, type: ElemType, dims?: readonly Dim[]): string {
    if (value !== name) this.node('Identity', [value], {}, { outputs: [name], name });
    this.outputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** Add a weight/constant tensor; returns its (unique) value name. */
  initializer(nameHint: string, values: TensorValues, dims: readonly number[], type?: ElemType): string {
    const name = this.uniqueName(nameHint);
    this.initializers.push(makeTensorProto(name, values, dims, type));
    this.initializerBytes += values.byteLength;
    return name;
  }

  private smallConstant(type: ElemType, values: TensorValues, dims: readonly number[], hint: string): string {
    // Small constants (axes, shapes, scalars) are shared instead of duplicated per use.
    const key = `${type}|${dims.join(',')}|${Array.from(values as ArrayLike<number | bigint>, String).join(',')}`;
    const hit = this.smallConstants.get(key);
    if (hit) return hit;
    const saved = this.scopes.splice(0);
    try {
      const name = this.initializer(hint, values, dims, type);
      this.smallConstants.set(key, name);
      return name;
    } finally {
      this.scopes.push(...saved);
    }
  }

  /** float32 constant: a scalar for a number, else a 1-D tensor (or `dims` when given). */
  constFloat(value: number | readonly number[], dims?: readonly number[]): string {
    const arr = typeof value === 'number' ? [value] : value;
    const shape = dims ?? (typeof value === 'number' ? [] : [arr.length]);
    if (arr.length <= 64) return this.smallConstant('float32', Float32Array.from(arr), shape, 'const_f');
    return this.initializer('const_f', Float32Array.from(arr), shape);
  }

  /** int64 constant: a scalar for a number, else a 1-D tensor (or `dims` when given). */
  constInt64(value: number | bigint | readonly (number | bigint)[], dims?: readonly number[]): string {
    const arr = typeof value === 'number' || typeof value === 'bigint' ? [value] : value;
    const shape = dims ?? (typeof value === 'number' || typeof value === 'bigint' ? [] : [arr.length]);
    const data = BigInt64Array.from(arr, (v) => BigInt(v));
    if (arr.length <= 64) return this.smallConstant('int64', data, shape, 'const_i');
    return this.initializer('const_i', data, shape);
  }

  /** Add a node; returns its output value names. Empty strings in `inputs` stand for omitted optional inputs. */
  node(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, opts: NodeOptions = {}): string[] {
    for (const i of inputs) if (i !== '' && !this.valueNames.has(i)) throw new Error(`${opType}: unknown input value "${i}"`);
    const hint = opts.name ?? opType;
    const nodeName = this.unique(hint, this.nodeNames);
    const outs =
      typeof opts.outputs === 'object'
        ? opts.outputs.map((n) => this.claimExact(n))
        : Array.from({ length: opts.outputs ?? 1 }, (_, k) => this.uniqueName(k === 0 ? hint : `${hint}_out${k}`));
    this.nodes.push({
      name: nodeName,
      opType,
      domain: opts.domain ?? '',
      input: [...inputs],
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => makeAttribute(k, v)),
    });
    return outs;
  }

  /** Add a single-output node and return that output. */
  op(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, name?: string): string {
    return this.node(opType, inputs, attrs, { name })[0]!;
  }

  toModel(): OnnxTypes.ModelProto {
    return onnx.ModelProto.create({
      irVersion: IR_VERSION,
      opsetImport: [{ domain: '', version: OPSET_VERSION }],
      producerName: this.meta.producerName ?? 'img2prompt',
      producerVersion: this.meta.producerVersion ?? '',
      docString: this.meta.docString ?? '',
      graph: {
        name: this.graphName,
        node: this.nodes,
        input: this.inputs,
        output: this.outputs,
        initializer: this.initializers,
      },
    });
  }

  toBytes(): Uint8Array {
    if (this.outputs.length === 0) throw new Error(`graph "${this.graphName}" has no outputs`);
    return onnx.ModelProto.encode(this.toModel()).finish();
  }

  /**
   * Write the model to `file` atomically. A model whose weights pass `externalAbove` bytes (default
   * 1.5 GiB, safely under protobuf's 2 GiB message limit) keeps its large tensors in `<file>.data`
   * as ONNX external data, which ONNX Runtime reads relative to the model file.
   */
  async writeModel(file: string, options: { externalAbove?: number } = {}): Promise<{ external: boolean }> {
    if (this.weightBytes <= (options.externalAbove ?? 1.5 * 2 ** 30)) {
      await writeFileAtomic(file, this.toBytes());
      return { external: false };
    }
    const dataName = `${path.basename(file)}.data`;
    const dataFile = path.join(path.dirname(file), dataName);
    await writeAtomically(dataFile, async (out) => {
      let offset = 0;
      for (const t of this.initializers) {
        const raw = t.rawData as Uint8Array | undefined;
        if (!raw || raw.byteLength < 4096) continue;
        // 4 KiB alignment lets ORT map the file instead of copying it.
        offset = Math.ceil(offset / 4096) * 4096;
        await out.write(raw, offset);
        t.externalData = [
          { key: 'location', value: dataName },
          { key: 'offset', value: String(offset) },
          { key: 'length', value: String(raw.byteLength) },
        ];
        t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
        t.rawData = undefined;
        offset += raw.byteLength;
      }
    });
    await writeFileAtomic(file, this.toBytes());
    return { external: true };
  }
}

// ---------------------------------------------------------------------------------------------------
// Layer helpers. Float32 throughout; weights are plain Float32Arrays in PyTorch layout unless noted.
// ---------------------------------------------------------------------------------------------------

/** Row-major [rows, cols] → [cols, rows]. */
export function transpose2d(m: Float32Array, rows: number, cols: number): Float32Array {
  if (m.length !== rows * cols) throw new Error(`transpose2d: ${m.length} values do not form [${rows},${cols}]`);
  const out = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) {
    const src = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = m[src + c]!;
  }
  return out;
}

export interface LinearParams {
  weight: Float32Array;
  bias?: Float32Array;
  inFeatures: number;
  outFeatures: number;
  /** 'out_in' = PyTorch nn.Linear layout [out, in] (transposed at build time); 'in_out' = already [in, out]. */
  layout?: 'out_in' | 'in_out';
  name?: string;
}

/** y = x·Wᵀ + b over the last axis, as MatMul with a pre-transposed [in, out] weight then Add. */
export function linear(b: GraphBuilder, x: string, p: LinearParams): string {
  const name = p.name ?? 'linear';
  if (p.weight.length !== p.inFeatures * p.outFeatures) {
    throw new Error(`${name}: weight has ${p.weight.length} values, expected ${p.outFeatures}x${p.inFeatures}`);
  }
  const w = (p.layout ?? 'out_in') === 'out_in' ? transpose2d(p.weight, p.outFeatures, p.inFeatures) : p.weight;
  const wName = b.weight(`${name}.weight`, w, [p.inFeatures, p.outFeatures]);
  const y = b.op('MatMul', [x, wName], {}, `${name}/MatMul`);
  if (!p.bias) return y;
  if (p.bias.length !== p.outFeatures) throw new Error(`${name}: bias has ${p.bias.length} values, expected ${p.outFeatures}`);
  const bName = b.weight(`${name}.bias`, p.bias, [p.outFeatures]);
  return b.op('Add', [y, bName], {}, `${name}/Add`);
}

export interface LayerNormParams {
  weight: Float32Array;
  bias: Float32Array;
  epsilon: number;
  /** First normalised axis (default -1: the last). */
  axis?: number;
  name?: string;
}

/** LayerNormalization (opset 17) over the trailing axes. */
export function layerNorm(b: GraphBuilder, x: string, p: LayerNormParams): string {
  const name = p.name ?? 'layer_norm';
  const g = b.weight(`${name}.weight`, p.weight, [p.weight.length]);
  const beta = b.weight(`${name}.bias`, p.bias, [p.bias.length]);
  return b.op('LayerNormalization', [x, g, beta], { axis: p.axis ?? -1, epsilon: attr.float(p.epsilon) }, name);
}

/** Exact GELU, 0.5·x·(1 + erf(x/√2)), as PyTorch computes it (x·√½ rather than x/√2). */
export function gelu(b: GraphBuilder, x: string, name = 'gelu'): string {
  return b.scoped(name, () => {
    const scaled = b.op('Mul', [x, b.constAct(Math.SQRT1_2)]);
    const erf = b.op('Erf', [scaled]);
    const onePlus = b.op('Add', [erf, b.constAct(1)]);
    const prod = b.op('Mul', [x, onePlus]);
    return b.op('Mul', [prod, b.constAct(0.5)]);
  });
}

/** CLIP's QuickGELU: x·σ(1.702·x). */
export function quickGelu(b: GraphBuilder, x: string, name = 'quick_gelu'): string {
  return b.scoped(name, () => {
    const s = b.op('Sigmoid', [b.op('Mul', [x, b.constAct(1.702)])]);
    return b.op('Mul', [x, s]);
  });
}

export function softmax(b: GraphBuilder, x: string, axis = -1, name = 'softmax'): string {
  return b.op('Softmax', [x], { axis }, name);
}

/** Size of axis `axis` of `x` as an int64 tensor of shape [1]. */
export function dimOf(b: GraphBuilder, x: string, axis: number, name = 'dim'): string {
  const end = axis === -1 ? undefined : axis + 1;
  const attrs: Record<string, AttrValue> = { start: axis };
  if (end !== undefined) attrs.end = end;
  return b.op('Shape', [x], attrs, name);
}

/** [B, S, H·D] → [B, H, S, D]. */
export function splitHeads(b: GraphBuilder, x: string, heads: number, headDim: number, name = 'split_heads'): string {
  return b.scoped(name, () => {
    const r = b.op('Reshape', [x, b.constInt64([0, 0, heads, headDim])]);
    return b.op('Transpose', [r], { perm: [0, 2, 1, 3] });
  });
}

/** [B, H, S, D] → [B, S, H·D]. */
export function mergeHeads(b: GraphBuilder, x: string, hidden: number, name = 'merge_heads'): string {
  return b.scoped(name, () => {
    const t = b.op('Transpose', [x], { perm: [0, 2, 1, 3] });
    return b.op('Reshape', [t, b.constInt64([0, 0, hidden])]);
  });
}

/**
 * Additive attention bias from a [B, S] 0/1 padding mask (any numeric type): [B, 1, 1, S] with 0 where
 * mask=1 and `negative` where mask=0. The default -1e4 (the value BERT was trained with) underflows to
 * an exact 0 after softmax's exp, stays finite in float16, and cannot turn a row into NaN.
 */
export function paddingMaskBias(b: GraphBuilder, mask: string, negative = -1e4, name = 'mask_bias'): string {
  return b.scoped(name, () => {
    const m = b.op('Cast', [mask], { to: onnxDataType('float32') });
    const inv = b.op('Sub', [b.constFloat(1), m]);
    const bias = b.op('Mul', [inv, b.constFloat(negative)]);
    return b.op('Unsqueeze', [bias, b.constInt64([1, 2])]);
  });
}

/** Constant causal bias [1, 1, size, size]: 0 on and below the diagonal, `negative` above it. */
export function causalMaskBias(b: GraphBuilder, size: number, negative = -1e4, name = 'causal_mask'): string {
  const m = new Float32Array(size * size);
  for (let r = 0; r < size; r++) for (let c = r + 1; c < size; c++) m[r * size + c] = negative;
  return b.initializer(name, m, [1, 1, size, size]);
}

export interface AttentionOptions {
  headDim: number;
  /** Additive bias broadcastable to [B, H, S_q, S_k]. */
  bias?: string;
  /**
   * Where the 1/√d scale is applied: 'scores' divides QKᵀ by √d (HF BERT), 'query' multiplies Q by
   * 1/√d first (PyTorch scaled_dot_product_attention, open_clip). Same maths, different rounding.
   */
  scaleAt?: 'scores' | 'query';
  name?: string;
}

/**
 * softmax(QKᵀ/√d + bias)·V for q, k, v in [B, H, S, D] layout; returns [B, H, S_q, D]. The scores
 * are turned into float32 before the bias (a float32 tensor) and the softmax, and the probabilities
 * back into the activation type for the product with V.
 */
export function attention(b: GraphBuilder, q: string, k: string, v: string, o: AttentionOptions): string {
  return b.scoped(o.name ?? 'attention', () => {
    const kT = b.op('Transpose', [k], { perm: [0, 1, 3, 2] });
    let scores: string;
    if ((o.scaleAt ?? 'scores') === 'query') {
      const qs = b.op('Mul', [q, b.constAct(1 / Math.sqrt(o.headDim))]);
      scores = b.toFloat32(b.op('MatMul', [qs, kT]), 'scores_float32');
    } else {
      scores = b.op('Div', [b.toFloat32(b.op('MatMul', [q, kT]), 'scores_float32'), b.constFloat(Math.sqrt(o.headDim))]);
    }
    if (o.bias) scores = b.op('Add', [scores, o.bias]);
    const probs = softmax(b, scores, -1);
    return b.op('MatMul', [b.toActivations(probs, 'probs'), v]);
  });
}

export interface SelfAttentionParams {
  hidden: number;
  heads: number;
  query: { weight: Float32Array; bias?: Float32Array };
  key: { weight: Float32Array; bias?: Float32Array };
  value: { weight: Float32Array; bias?: Float32Array };
  out: { weight: Float32Array; bias?: Float32Array };
  bias?: string;
  scaleAt?: 'scores' | 'query';
  name?: string;
}

/** Multi-head self-attention with PyTorch-layout projection weights, [B, S, hidden] → [B, S, hidden]. */
export function selfAttention(b: GraphBuilder, x: string, p: SelfAttentionParams): string {
  const headDim = p.hidden / p.heads;
  if (!Number.isInteger(headDim)) throw new Error(`selfAttention: hidden ${p.hidden} is not divisible by ${p.heads} heads`);
  return b.scoped(p.name ?? 'self_attention', () => {
    const proj = (w: { weight: Float32Array; bias?: Float32Array }, name: string) =>
      linear(b, x, { ...w, inFeatures: p.hidden, outFeatures: p.hidden, name });
    const q = splitHeads(b, proj(p.query, 'query'), p.heads, headDim, 'q_heads');
    const k = splitHeads(b, proj(p.key, 'key'), p.heads, headDim, 'k_heads');
    const v = splitHeads(b, proj(p.value, 'value'), p.heads, headDim, 'v_heads');
    const ctx = attention(b, q, k, v, { headDim, bias: p.bias, scaleAt: p.scaleAt });
    const merged = mergeHeads(b, ctx, p.hidden);
    return linear(b, merged, { ...p.out, inFeatures: p.hidden, outFeatures: p.hidden, name: 'out' });
  });
}

/**
 * Masked mean over the sequence axis: [B, S, D] with a [B, S] 0/1 mask → [B, D], as
 * sentence-transformers computes it: Σ(h·m) / max(Σm, minCount).
 */
export function maskedMeanPool(b: GraphBuilder, h: string, mask: string, minCount = 1e-9, name = 'mean_pool'): string {
  return b.scoped(name, () => {
    const m = b.op('Cast', [mask], { to: onnxDataType('float32') });
    const m3 = b.op('Unsqueeze', [m, b.constInt64([-1])]);
    const sum = b.op('ReduceSum', [b.op('Mul', [h, m3]), b.constInt64([1])], { keepdims: 0 });
    const count = b.op('ReduceSum', [m, b.constInt64([1])], { keepdims: 1 });
    return b.op('Div', [sum, b.op('Max', [count, b.constFloat(minCount)])]);
  });
}

/** x / max(‖x‖₂, eps) along `axis` (torch.nn.functional.normalize). */
export function l2Normalize(b: GraphBuilder, x: string, eps = 1e-12, axis = -1, name = 'l2_normalize'): string {
  return b.scoped(name, () => {
    const norm = b.op('ReduceL2', [x], { axes: [axis], keepdims: 1 });
    return b.op('Div', [x, b.op('Max', [norm, b.constFloat(eps)])]);
  });
}
