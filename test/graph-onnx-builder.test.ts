import type { onnx as OnnxTypes } from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import {
  GraphBuilder,
  IR_VERSION,
  OPSET_VERSION,
  attr,
  causalMaskBias,
  gelu,
  l2Normalize,
  layerNorm,
  linear,
  maskedMeanPool,
  paddingMaskBias,
  quickGelu,
  selfAttention,
  transpose2d,
} from '../models/graph/onnx-builder.js';

const { onnx } = onnxProto;

/** Deterministic pseudo-random values in [-1, 1) (a fixed LCG, so failures reproduce). */
function rand(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

// ---- reference maths in float64 on row-major arrays ----

/** x [rows, inF] · W[out, in]ᵀ + b. */
function refLinear(x: ArrayLike<number>, rows: number, w: Float32Array, b: Float32Array | undefined, inF: number, outF: number): Float64Array {
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outF; o++) {
      let acc = b ? b[o]! : 0;
      for (let i = 0; i < inF; i++) acc += x[r * inF + i]! * w[o * inF + i]!;
      y[r * outF + o] = acc;
    }
  return y;
}

function refLayerNorm(x: Float64Array, rows: number, dim: number, g: Float32Array, b: Float32Array, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < dim; i++) mean += x[r * dim + i]!;
    mean /= dim;
    let v = 0;
    for (let i = 0; i < dim; i++) v += (x[r * dim + i]! - mean) ** 2;
    v /= dim;
    for (let i = 0; i < dim; i++) y[r * dim + i] = ((x[r * dim + i]! - mean) / Math.sqrt(v + eps)) * g[i]! + b[i]!;
  }
  return y;
}

/** erf by Abramowitz–Stegun 7.1.26 is too coarse here; use a series/continued-fraction pair accurate to ~1e-15. */
function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // Maclaurin series.
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 100; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction (Lentz).
  let f = ax;
  let c = ax;
  let d = 0;
  for (let n = 1; n < 200; n++) {
    const an = n / 2;
    d = ax + an * d;
    d = 1 / d;
    c = ax + an / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / (f * Math.sqrt(Math.PI));
  return Math.sign(x) * (1 - erfc);
}

const refGelu = (v: number): number => 0.5 * v * (1 + erf(v / Math.SQRT2));

async function runModel(bytes: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('GraphBuilder', () => {
  it('runs linear → LayerNorm → GELU in onnxruntime and matches a float64 hand computation', async () => {
    const [inF, outF, batch, seq] = [6, 5, 2, 3];
    const w = rand(outF * inF, 1); // PyTorch layout [out, in]
    const bias = rand(outF, 2);
    const g = rand(outF, 3).map((v) => 1 + 0.5 * v);
    const beta = rand(outF, 4);
    const b = new GraphBuilder('tiny');
    const x = b.input('x', 'float32', ['batch', 'seq', inF]);
    const y = linear(b, x, { weight: w, bias, inFeatures: inF, outFeatures: outF, name: 'fc' });
    const n = layerNorm(b, y, { weight: g, bias: beta, epsilon: 1e-5, name: 'ln' });
    const out = gelu(b, n);
    b.output(out, 'y', 'float32', ['batch', 'seq', outF]);
    b.output(quickGelu(b, n), 'y_quick', 'float32', ['batch', 'seq', outF]);

    const input = rand(batch * seq * inF, 5).map((v) => 3 * v);
    const res = await runModel(b.toBytes(), { x: new ort.Tensor('float32', input, [batch, seq, inF]) });
    expect(res.y!.dims).toEqual([batch, seq, outF]);

    const rows = batch * seq;
    const normed = refLayerNorm(refLinear(input, rows, w, bias, inF, outF), rows, outF, g, beta, 1e-5);
    const expected = normed.map(refGelu);
    const expectedQuick = normed.map((v) => v / (1 + Math.exp(-1.702 * v)));
    expect(maxAbsDiff(res.y!.data as Float32Array, expected)).toBeLessThan(1e-5);
    expect(maxAbsDiff(res.y_quick!.data as Float32Array, expectedQuick)).toBeLessThan(1e-5);
  });

  it('runs masked multi-head self-attention, mean pooling and L2 normalisation like the reference', async () => {
    const [batch, seq, hidden, heads] = [2, 4, 6, 2];
    const headDim = hidden / heads;
    const p = (seed: number) => ({ weight: rand(hidden * hidden, seed), bias: rand(hidden, seed + 100) });
    const params = { q: p(11), k: p(12), v: p(13), o: p(14) };
    const b = new GraphBuilder('attn');
    const x = b.input('x', 'float32', ['batch', 'seq', hidden]);
    const mask = b.input('mask', 'int64', ['batch', 'seq']);
    const a = selfAttention(b, x, {
      hidden,
      heads,
      query: params.q,
      key: params.k,
      value: params.v,
      out: params.o,
      bias: paddingMaskBias(b, mask),
    });
    b.output(a, 'attn', 'float32', ['batch', 'seq', hidden]);
    b.output(l2Normalize(b, maskedMeanPool(b, a, mask)), 'pooled', 'float32', ['batch', hidden]);

    const input = rand(batch * seq * hidden, 21);
    const maskValues = [1, 1, 1, 0, 1, 1, 0, 0];
    const res = await runModel(b.toBytes(), {
      x: new ort.Tensor('float32', input, [batch, seq, hidden]),
      mask: new ort.Tensor('int64', BigInt64Array.from(maskValues.map(BigInt)), [batch, seq]),
    });

    // Reference: per batch and head, softmax over the unmasked keys only.
    const rows = batch * seq;
    const q = refLinear(input, rows, params.q.weight, params.q.bias, hidden, hidden);
    const k = refLinear(input, rows, params.k.weight, params.k.bias, hidden, hidden);
    const v = refLinear(input, rows, params.v.weight, params.v.bias, hidden, hidden);
    const ctx = new Float64Array(rows * hidden);
    for (let bi = 0; bi < batch; bi++)
      for (let h = 0; h < heads; h++)
        for (let i = 0; i < seq; i++) {
          const scores: number[] = [];
          for (let j = 0; j < seq; j++) {
            if (!maskValues[bi * seq + j]) continue;
            let s = 0;
            for (let d = 0; d < headDim; d++) s += q[(bi * seq + i) * hidden + h * headDim + d]! * k[(bi * seq + j) * hidden + h * headDim + d]!;
            scores.push(s / Math.sqrt(headDim));
          }
          const mx = Math.max(...scores);
          const e = scores.map((s) => Math.exp(s - mx));
          const z = e.reduce((s, t) => s + t, 0);
          for (let d = 0; d < headDim; d++) {
            let acc = 0;
            let jj = 0;
            for (let j = 0; j < seq; j++) {
              if (!maskValues[bi * seq + j]) continue;
              acc += (e[jj++]! / z) * v[(bi * seq + j) * hidden + h * headDim + d]!;
            }
            ctx[(bi * seq + i) * hidden + h * headDim + d] = acc;
          }
        }
    const expected = refLinear(ctx, rows, params.o.weight, params.o.bias, hidden, hidden);
    expect(maxAbsDiff(res.attn!.data as Float32Array, expected)).toBeLessThan(1e-5);

    const pooled = new Float64Array(batch * hidden);
    for (let bi = 0; bi < batch; bi++) {
      const count = maskValues.slice(bi * seq, bi * seq + seq).reduce((s, m) => s + m, 0);
      for (let d = 0; d < hidden; d++) {
        let s = 0;
        for (let i = 0; i < seq; i++) s += maskValues[bi * seq + i]! * expected[(bi * seq + i) * hidden + d]!;
        pooled[bi * hidden + d] = s / count;
      }
      let norm = 0;
      for (let d = 0; d < hidden; d++) norm += pooled[bi * hidden + d]! ** 2;
      for (let d = 0; d < hidden; d++) pooled[bi * hidden + d]! /= Math.sqrt(norm);
    }
    expect(maxAbsDiff(res.pooled!.data as Float32Array, pooled)).toBeLessThan(1e-5);
  });

  it('writes opset 17 / IR 8, symbolic dims, raw-data initializers and every attribute kind', () => {
    const b = new GraphBuilder('attrs', { producerName: 'test' });
    const x = b.input('x', 'float32', ['batch', 4]);
    const w = b.initializer('w', Float32Array.from([1, 2, 3, 4]), [4]);
    const ids = b.initializer('w', BigInt64Array.from([5n, -6n]), [2]);
    expect(ids).not.toBe(w);
    const y = b.op('Mul', [x, w], {}, 'scale');
    const y2 = b.op('Mul', [y, w], {}, 'scale');
    expect(y2).not.toBe(y);
    const c = b.op('Constant', [], { value: attr.tensor(Float32Array.from([0.5]), [1]) });
    const z = b.op('Add', [y2, c], {
      an_int: 3,
      a_float: 0.25,
      a_forced_float: attr.float(1),
      some_ints: [1, -2, 3],
      some_floats: [0.5, 1.5],
      a_string: 'hello',
    });
    b.output(z, 'out', 'float32', ['batch', 4]);
    expect(() => b.op('Relu', ['nope'])).toThrow(/unknown input value "nope"/);
    expect(() => b.input('x', 'float32', [1])).toThrow(/already exists/);

    const model = onnx.ModelProto.decode(b.toBytes());
    expect(Number(model.irVersion)).toBe(IR_VERSION);
    expect(IR_VERSION).toBe(8);
    expect(model.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', OPSET_VERSION]]);
    expect(OPSET_VERSION).toBe(17);
    expect(model.producerName).toBe('test');
    const g = model.graph as OnnxTypes.GraphProto;
    expect(g.input[0]!.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue))).toEqual(['batch', 4]);
    const wInit = g.initializer.find((t) => t.name === w)!;
    expect(wInit.dataType).toBe(onnx.TensorProto.DataType.FLOAT);
    expect(Array.from(new Float32Array(Uint8Array.from(wInit.rawData!).buffer))).toEqual([1, 2, 3, 4]);
    const idsInit = g.initializer.find((t) => t.name === ids)!;
    expect(idsInit.dataType).toBe(onnx.TensorProto.DataType.INT64);
    expect(Array.from(new BigInt64Array(Uint8Array.from(idsInit.rawData!).buffer))).toEqual([5n, -6n]);

    const add = g.node.find((n) => n.opType === 'Add')!;
    const T = onnx.AttributeProto.AttributeType;
    const byName = Object.fromEntries(add.attribute!.map((a) => [a.name, a]));
    expect([byName.an_int!.type, Number(byName.an_int!.i)]).toEqual([T.INT, 3]);
    expect([byName.a_float!.type, byName.a_float!.f]).toEqual([T.FLOAT, 0.25]);
    expect([byName.a_forced_float!.type, byName.a_forced_float!.f]).toEqual([T.FLOAT, 1]);
    expect([byName.some_ints!.type, byName.some_ints!.ints.map(Number)]).toEqual([T.INTS, [1, -2, 3]]);
    expect([byName.some_floats!.type, byName.some_floats!.floats]).toEqual([T.FLOATS, [0.5, 1.5]]);
    expect([byName.a_string!.type, new TextDecoder().decode(byName.a_string!.s)]).toEqual([T.STRING, 'hello']);
    const constant = g.node.find((n) => n.opType === 'Constant')!;
    expect(constant.attribute![0]!.type).toBe(T.TENSOR);
    // Node names and value names are unique.
    expect(new Set(g.node.map((n) => n.name)).size).toBe(g.node.length);
    const produced = g.node.flatMap((n) => n.output);
    expect(new Set(produced).size).toBe(produced.length);
  });

  it('shares small constants, scopes names, and builds a causal mask', async () => {
    const b = new GraphBuilder('misc');
    expect(b.constFloat(0.5)).toBe(b.constFloat(0.5));
    expect(b.constInt64([1, 2])).not.toBe(b.constInt64([1, 3]));
    const x = b.input('x', 'float32', [1, 1, 3, 3]);
    const named = b.scoped('layer0', () => b.scoped('attn', () => b.op('Add', [x, causalMaskBias(b, 3, -100)])));
    expect(named).toBe('layer0/attn/Add');
    b.output(named, 'y', 'float32', [1, 1, 3, 3]);
    const res = await runModel(b.toBytes(), { x: new ort.Tensor('float32', new Float32Array(9), [1, 1, 3, 3]) });
    expect(Array.from(res.y!.data as Float32Array)).toEqual([0, -100, -100, 0, 0, -100, 0, 0, 0]);
  });

  it('transposes [out, in] weights for MatMul', () => {
    expect(Array.from(transpose2d(Float32Array.from([1, 2, 3, 4, 5, 6]), 2, 3))).toEqual([1, 4, 2, 5, 3, 6]);
    expect(() => transpose2d(new Float32Array(5), 2, 3)).toThrow(/do not form/);
  });
});
