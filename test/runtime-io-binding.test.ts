// IoBinding (native/io_binding.cc, runtime/io-binding.ts) on the CPU provider: an input bound once stays
// bound across runs, each run binds only what it gives, runs on one binding take turns, and outputs come
// back as Session.run's do (or into the caller's buffer).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../models/graph/onnx-builder.js';
import { native } from '../src/native/addon.js';
import { IoBinding } from '../src/runtime/io-binding.js';
import { Session, tensor } from '../src/runtime/session.js';
import { Img2PromptError } from '../src/util/errors.js';

/** sum = constant + x, both float32 [n]; twice = sum · 2 */
function addGraph(n: number): Uint8Array {
  const g = new GraphBuilder('add');
  const c = g.input('constant', 'float32', [n]);
  const x = g.input('x', 'float32', [n]);
  const sum = g.op('Add', [c, x], {}, 'sum');
  g.output(sum, 'sum', 'float32', [n]);
  g.output(g.op('Mul', [sum, g.constFloat(2)], {}, 'twice'), 'twice', 'float32', [n]);
  return g.toBytes();
}

const f32 = (...v: number[]) => tensor('float32', Float32Array.from(v), [v.length]);

describe('IoBinding', () => {
  let session: Session;
  beforeAll(async () => {
    session = await Session.open(addGraph(3), { providers: ['cpu'] });
  });
  afterAll(() => session.close());

  it('keeps a bound input across runs and binds the others per run', async () => {
    const binding = IoBinding.create(session);
    await binding.bindInputs({ constant: f32(100, 200, 300) });
    for (const x of [[1, 2, 3], [4, 5, 6], [-100, 0, 0.5]]) {
      const out = await binding.run({ x: f32(...x) });
      expect(Array.from(out.sum!.data as Float32Array)).toEqual([100 + x[0]!, 200 + x[1]!, 300 + x[2]!]);
      expect(Array.from(out.twice!.data as Float32Array)).toEqual([2 * (100 + x[0]!), 2 * (200 + x[1]!), 2 * (300 + x[2]!)]);
      expect(out.sum!.dims).toEqual([3]);
    }
    // A feed given to run stays bound too; binding the constant again replaces it.
    await binding.bindInputs({ constant: f32(0, 0, 1) });
    expect(Array.from((await binding.run({}, { outputNames: ['sum'] })).sum!.data as Float32Array)).toEqual([-100, 0, 1.5]);
    binding.close();
  });

  it('writes into caller buffers and returns only the outputs asked for', async () => {
    const binding = IoBinding.create(session);
    await binding.bindInputs({ constant: f32(1, 1, 1) });
    const into = new Float32Array(3);
    const out = await binding.run({ x: f32(1, 2, 3) }, { outputNames: ['twice'], into: { twice: { data: into, dims: [3] } } });
    expect(Object.keys(out)).toEqual(['twice']);
    expect(out.twice!.data).toBe(into);
    expect(Array.from(into)).toEqual([4, 6, 8]);
    binding.close();
  });

  it('runs concurrent calls one at a time, each with its own inputs', async () => {
    const binding = IoBinding.create(session);
    await binding.bindInputs({ constant: f32(10, 20, 30) });
    const xs = Array.from({ length: 24 }, (_, i) => [i, -i, i * i]);
    const outs = await Promise.all(xs.map((x) => binding.run({ x: f32(...x) }, { outputNames: ['sum'] })));
    outs.forEach((o, i) => expect(Array.from(o.sum!.data as Float32Array)).toEqual([10 + xs[i]![0]!, 20 + xs[i]![1]!, 30 + xs[i]![2]!]));
    binding.close();
  });

  it('names an input neither bound nor given, and checks feeds against the signature', async () => {
    const binding = IoBinding.create(session);
    await expect(binding.run({ x: f32(1, 2, 3) })).rejects.toThrow("<model buffer>: missing input 'constant' (neither bound nor given)");
    await expect(binding.bindInputs({ constant: f32(1, 2) })).rejects.toThrow("input 'constant': dimension 0 must be 3, got dims [2]");
    await expect(binding.bindInputs({ nope: f32(1, 2, 3) })).rejects.toThrow("model has no input 'nope'");
    await expect(binding.bindInputs({ constant: tensor('int32', Int32Array.of(1, 2, 3), [3]) })).rejects.toBeInstanceOf(Img2PromptError);
    binding.close();
    await expect(binding.run({ x: f32(1, 2, 3) })).rejects.toThrow('binding is closed');
  });

  it('keeps its session alive after Session.close(), and needs an open session to be made', async () => {
    const own = await Session.open(addGraph(2), { providers: ['cpu'] });
    const binding = IoBinding.create(own);
    await binding.bindInputs({ constant: f32(1, 2) });
    own.close();
    expect(Array.from((await binding.run({ x: f32(3, 4) })).sum!.data as Float32Array)).toEqual([4, 6]);
    binding.close();
    expect(() => IoBinding.create(own)).toThrow('session is closed');
  });

  it('the addon refuses anything but a Session', () => {
    const addon = native() as unknown as { createIoBinding(x: unknown): unknown };
    for (const bad of [undefined, {}, 42, native()]) expect(() => addon.createIoBinding(bad)).toThrow('createIoBinding: invalid session');
  });
});
