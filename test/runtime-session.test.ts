import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import * as ort from 'onnxruntime-node';
import { Session, tensor, availableProviders, ortVersion, cudaProviderInstalled } from '../src/runtime/session.js';
import { GraphBuilder } from '../models/graph/onnx-builder.js';
import { Img2PromptError } from '../src/util/errors.js';
import { native } from '../src/native/addon.js';
import { TINY_MODELS, tempDir } from './helpers/paths.js';

const DISTILBERT = path.join(TINY_MODELS, 'optimum-tiny-distilbert-sst2', 'model.onnx');
const GPT2 = path.join(TINY_MODELS, 'ort-genai-tiny-random-gpt2-fp32', 'past.onnx');

function ids(values: number[]): BigInt64Array {
  return BigInt64Array.from(values.map(BigInt));
}

describe('native Session', () => {
  let session: Session;
  beforeAll(async () => {
    session = await Session.open(DISTILBERT, { providers: ['cpu'], intraOpThreads: 1 });
  });
  afterAll(() => session.close());

  it('reports the ORT version, providers and the model signature', () => {
    expect(ortVersion()).toMatch(/^1\.\d+\.\d+/);
    expect(availableProviders()).toContain('CPUExecutionProvider');
    expect(session.provider).toBe('cpu');
    expect(session.inputs.map((i) => [i.name, i.type, i.dims])).toEqual([
      ['input_ids', 'int64', ['batch', 'sequence']],
      ['attention_mask', 'int64', ['batch', 'sequence']],
    ]);
    expect(session.outputs.map((o) => [o.name, o.type, o.dims])).toEqual([['logits', 'float32', ['batch', 2]]]);
  });

  it('gives the same logits as onnxruntime-node on the same model', async () => {
    const input = ids([101, 7592, 2088, 102, 101, 2023, 2003, 102]);
    const mask = ids([1, 1, 1, 1, 1, 1, 1, 0]);
    const ours = await session.run({ input_ids: tensor('int64', input, [2, 4]), attention_mask: tensor('int64', mask, [2, 4]) });
    const ref = await ort.InferenceSession.create(DISTILBERT, { intraOpNumThreads: 1 });
    const theirs = await ref.run({ input_ids: new ort.Tensor('int64', input, [2, 4]), attention_mask: new ort.Tensor('int64', mask, [2, 4]) });
    expect(ours.logits.dims).toEqual([2, 2]);
    expect(Array.from(ours.logits.data as Float32Array)).toEqual(Array.from(theirs.logits.data as Float32Array));
    await ref.release();
  });

  it('writes outputs into a caller-provided buffer', async () => {
    const out = new Float32Array(2).fill(NaN);
    const r = await session.run(
      { input_ids: tensor('int64', ids([101, 102]), [1, 2]), attention_mask: tensor('int64', ids([1, 1]), [1, 2]) },
      { into: { logits: { data: out, dims: [1, 2] } } },
    );
    expect(r.logits.data).toBe(out);
    expect(Number.isFinite(out[0]) && Number.isFinite(out[1])).toBe(true);
  });

  it('runs concurrent calls and keeps each result with its inputs', async () => {
    const feeds = [1, 2, 3, 4].map((n) => {
      const seq = ids([101, ...Array.from({ length: n }, (_, i) => 2000 + i), 102]);
      return { input_ids: tensor('int64', seq, [1, n + 2]), attention_mask: tensor('int64', ids(Array(n + 2).fill(1)), [1, n + 2]) };
    });
    const together = await Promise.all(feeds.map((f) => session.run(f)));
    for (let i = 0; i < feeds.length; i++) {
      const alone = await session.run(feeds[i]);
      expect(Array.from(together[i].logits.data as Float32Array)).toEqual(Array.from(alone.logits.data as Float32Array));
    }
  });

  it('rejects a wrong dtype, a wrong rank, a missing or an unknown input with a clear error', async () => {
    const good = tensor('int64', ids([101, 102]), [1, 2]);
    await expect(session.run({ input_ids: tensor('int32', new Int32Array(2), [1, 2]), attention_mask: good })).rejects.toThrow(
      /input 'input_ids' must be int64, got int32/,
    );
    await expect(session.run({ input_ids: tensor('int64', ids([101, 102]), [2]), attention_mask: good })).rejects.toThrow(
      /input 'input_ids': expected rank 2/,
    );
    await expect(session.run({ input_ids: good })).rejects.toThrow(/missing input 'attention_mask'/);
    await expect(session.run({ input_ids: good, attention_mask: good, token_type_ids: good })).rejects.toThrow(
      /model has no input 'token_type_ids'/,
    );
    // Mismatched batch sizes pass our checks and fail inside ORT: its message comes back, with the model path.
    await expect(
      session.run({ input_ids: good, attention_mask: tensor('int64', ids([1, 1, 1, 1]), [2, 2]) }),
    ).rejects.toThrow(new RegExp(DISTILBERT.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')));
  });

  it('checks that data length and array kind fit the dims', () => {
    expect(() => tensor('int64', ids([1, 2, 3]), [1, 2])).toThrow(/need 2 elements, the array has 3/);
    expect(() => tensor('float32', new Float64Array(2) as never, [2])).toThrow(/needs a Float32Array/);
    expect(() => tensor('float32', new Float32Array(2), [-2, -1])).toThrow(/non-negative/);
  });

  it('rejects a caller buffer of the wrong size', async () => {
    await expect(
      session.run(
        { input_ids: tensor('int64', ids([101, 102]), [1, 2]), attention_mask: tensor('int64', ids([1, 1]), [1, 2]) },
        { into: { logits: { data: new Float32Array(3), dims: [1, 3] } } },
      ),
    ).rejects.toThrow(/output buffer for 'logits': dimension 1 must be 2/);
  });

  it('refuses an unknown output and an output buffer of the wrong kind or length, naming the model', async () => {
    const feeds = { input_ids: tensor('int64', ids([101, 102]), [1, 2]), attention_mask: tensor('int64', ids([1, 1]), [1, 2]) };
    await expect(session.run(feeds, { outputNames: ['nope'] })).rejects.toThrow(`${DISTILBERT}: model has no output 'nope' (outputs: logits)`);
    await expect(session.run(feeds, { into: { logits: { data: new Float64Array(2) as never, dims: [1, 2] } } })).rejects.toThrow(
      `${DISTILBERT}: output buffer for 'logits': a float32 tensor needs a Float32Array, got Float64Array`,
    );
    await expect(session.run(feeds, { into: { logits: { data: new Float32Array(3), dims: [1, 2] } } })).rejects.toThrow(
      `${DISTILBERT}: output buffer for 'logits': dims [1,2] need 2 elements, the array has 3`,
    );
  });

  it('native run() keeps only terse memory guards: the array must fit its dims and the model', async () => {
    const raw = await native().openSession(DISTILBERT, { providers: ['cpu'], intraOpThreads: 1, optimization: 'all', spinWait: true });
    const mask = { name: 'attention_mask', data: ids([1, 1]), dims: [1, 2] };
    const invalid = (what: string) => new TypeError(`run: invalid ${what}`);
    expect(() => raw.runSync([{ name: 'input_ids', data: new Int32Array(2), dims: [1, 2] }, mask], [])).toThrow(invalid('array kind'));
    expect(() => raw.runSync([{ name: 'input_ids', data: ids([1, 2, 3]), dims: [1, 2] }, mask], [])).toThrow(invalid('array length'));
    expect(() => raw.runSync([{ name: 'input_ids', data: ids([1, 2]), dims: [1, -2] }, mask], [])).toThrow(invalid('dims'));
    expect(() => raw.runSync([{ name: 'token_type_ids', data: ids([1, 2]), dims: [1, 2] }, mask], [])).toThrow(invalid('input name'));
    expect(() => raw.runSync([mask], [{ name: 'nope' }])).toThrow(invalid('output name'));
    expect(() => raw.runSync([7 as never], [])).toThrow(invalid('feed'));
    expect(() => raw.runSync({} as never, [])).toThrow(invalid('arguments'));
    // What only the model can know is ORT's to say: a missing input comes back as ORT's own reason, without a label.
    const missing = (() => {
      try {
        raw.runSync([mask], [{ name: 'logits' }]);
      } catch (err) {
        return (err as Error).message;
      }
    })();
    expect(missing).toMatch(/Missing Input: input_ids/);
    expect(missing).not.toContain(DISTILBERT);
    raw.close();
  });
});

describe('Session.open', () => {
  it('opens a model from memory', async () => {
    const s = await Session.open(new Uint8Array(fs.readFileSync(DISTILBERT)), { providers: ['cpu'] });
    expect(s.modelPath).toBeUndefined();
    expect(s.inputs.length).toBe(2);
    s.close();
  });

  it('uses CUDA when it can, else falls back to CPU with the reason', async () => {
    const s = await Session.open(DISTILBERT, { providers: ['cuda', 'cpu'] });
    try {
      if (!cudaProviderInstalled()) expect(s.provider).toBe('cpu'); // no provider library: CUDA cannot load
      if (s.provider === 'cpu') {
        // The note says why: what CUDA lacks here (cudaStatus), or ORT's own reason when creating the CUDA session failed.
        expect(s.providerNote).toMatch(/^(CUDA was asked for but cannot be used here: .{10,}; running on the CPU|CUDA unavailable, using CPU: \S.{10,})$/);
      } else {
        expect(s.provider).toBe('cuda');
        expect(s.providerNote).toBe('');
        // Same model on the GPU: logits agree with the CPU session's to float32 kernel differences.
        const feeds = { input_ids: tensor('int64', ids([101, 7592, 2088, 102]), [1, 4]), attention_mask: tensor('int64', ids([1, 1, 1, 1]), [1, 4]) };
        const gpu = (await s.run(feeds)).logits.data as Float32Array;
        const cpu = await Session.open(DISTILBERT, { providers: ['cpu'] });
        const ref = (await cpu.run(feeds)).logits.data as Float32Array;
        cpu.close();
        for (let i = 0; i < ref.length; i++) expect(Math.abs(gpu[i]! - ref[i]!)).toBeLessThan(1e-3);
      }
    } finally {
      s.close();
    }
  });

  it('refuses wrong-typed options in TypeScript, and natively too instead of dropping them', async () => {
    await expect(Session.open(DISTILBERT, { spinWait: 'no' as never })).rejects.toThrow(new TypeError('Session.open(): Expected true or false for spinWait but received "no" of type string'));
    const good = { providers: ['cpu'], intraOpThreads: 1, optimization: 'all', spinWait: true } as const;
    const open = (options: object) => () => native().openSession(DISTILBERT, { ...good, ...options } as never);
    const invalid = (what: string) => new TypeError(`openSession: invalid ${what}`);
    expect(open({ providers: 'cpu' })).toThrow(invalid('options.providers'));
    expect(open({ providers: ['gpu'] })).toThrow(invalid('options.providers'));
    expect(open({ intraOpThreads: '2' })).toThrow(invalid('options.intraOpThreads'));
    expect(open({ intraOpThreads: 1.5 })).toThrow(invalid('options.intraOpThreads'));
    expect(open({ spinWait: 'no' })).toThrow(invalid('options.spinWait'));
    expect(open({ optimization: 3 })).toThrow(invalid('options.optimization'));
    expect(() => native().openSession(DISTILBERT, 'fast' as never)).toThrow(invalid('options'));
    expect(() => native().openSession(new Uint16Array(4) as never, good)).toThrow(invalid('model'));
    const s = await native().openSession(DISTILBERT, good);
    expect(s.provider).toBe('cpu');
    s.close();
  });

  it('handles int32 and multi-output models (tiny GPT-2 with past)', async () => {
    const s = await Session.open(GPT2, { providers: ['cpu'] });
    const past = Object.fromEntries(
      [0, 1, 2, 3, 4].map((i) => [`past_${i}`, tensor('float32', new Float32Array(0), [2, 1, 4, 0, 8])]),
    );
    const r = await s.run({
      input_ids: tensor('int32', Int32Array.from([5, 6, 7]), [1, 3]),
      position_ids: tensor('int32', Int32Array.from([0, 1, 2]), [1, 3]),
      attention_mask: tensor('int32', Int32Array.from([1, 1, 1]), [1, 3]),
      ...past,
    });
    expect(r.logits.dims).toEqual([1, 3, 1000]);
    expect(r.present_0.dims).toEqual([2, 1, 4, 3, 8]);
    s.close();
  });

  it('names the file and the reason for a missing, truncated or non-ONNX model', async () => {
    const dir = tempDir();
    const truncated = path.join(dir, 'truncated.onnx');
    fs.writeFileSync(truncated, fs.readFileSync(DISTILBERT).subarray(0, 5000));
    const text = path.join(dir, 'text.onnx');
    fs.writeFileSync(text, 'this is not a protobuf');
    await expect(Session.open(path.join(dir, 'nope.onnx'))).rejects.toThrow(`${path.join(dir, 'nope.onnx')}: model file not found`);
    for (const f of [truncated, text]) {
      const err = await Session.open(f, { providers: ['cpu'] }).catch((e) => e);
      expect(err).toBeInstanceOf(Img2PromptError);
      expect(err.message.startsWith(`${f}: cannot load model: `)).toBe(true);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses runs after close, but lets a run in flight finish', async () => {
    const s = await Session.open(DISTILBERT, { providers: ['cpu'] });
    const pending = s.run({ input_ids: tensor('int64', ids([101, 102]), [1, 2]), attention_mask: tensor('int64', ids([1, 1]), [1, 2]) });
    s.close();
    await expect(pending).resolves.toHaveProperty('logits');
    await expect(s.run({})).rejects.toThrow(/session is closed/);
  });
});

describe('Session.runSync', () => {
  it('gives the same result as run() and reports errors the same way', async () => {
    const s = await Session.open(DISTILBERT, { providers: ['cpu'], intraOpThreads: 1 });
    const feeds = { input_ids: tensor('int64', ids([101, 2023, 102]), [1, 3]), attention_mask: tensor('int64', ids([1, 1, 1]), [1, 3]) };
    const a = await s.run(feeds);
    const b = s.runSync(feeds);
    expect(Array.from(b.logits.data as Float32Array)).toEqual(Array.from(a.logits.data as Float32Array));
    expect(() => s.runSync({ input_ids: feeds.input_ids, attention_mask: tensor('int64', ids([1, 1, 1, 1, 1, 1]), [2, 3]) })).toThrow(
      new RegExp(`^${DISTILBERT.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: `),
    );
    s.close();
    expect(() => s.runSync(feeds)).toThrow(/session is closed/);
  });
});

describe('Session.run off the JS thread', () => {
  /** y = A·B·B·B·B on [N, N] inputs: inputs, not weights, so ORT cannot fold any of it away. */
  function matmulChain(n: number, depth: number): Uint8Array {
    const b = new GraphBuilder('matmul_chain');
    const a = b.input('a', 'float32', [n, n]);
    const m = b.input('b', 'float32', [n, n]);
    let y = b.op('MatMul', [a, m]);
    for (let i = 1; i < depth; i++) y = b.op('MatMul', [y, m]);
    b.output(y, 'y', 'float32', [n, n]);
    return b.toBytes();
  }

  /** Counts event-loop turns (setImmediate) and the longest stretch without one. */
  function loopWatch() {
    let ticks = 0;
    let last = performance.now();
    let maxGap = 0;
    let timer: NodeJS.Immediate | undefined;
    const tick = () => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      ticks++;
      timer = setImmediate(tick);
    };
    timer = setImmediate(tick);
    return {
      get ticks() {
        return ticks;
      },
      stop() {
        clearImmediate(timer);
        return { ticks, maxGap: Math.max(maxGap, performance.now() - last) };
      },
    };
  }

  it('keeps the event loop turning during run(), while runSync() holds it for the whole inference', async () => {
    const n = 1024;
    const s = await Session.open(matmulChain(n, 6), { providers: ['cpu'], intraOpThreads: 1 });
    try {
      const a = new Float32Array(n * n).map((_, i) => ((i % 13) - 6) / 64);
      const m = new Float32Array(n * n).map((_, i) => ((i % 7) - 3) / 256);
      const feeds = { a: tensor('float32', a, [n, n]), b: tensor('float32', m, [n, n]) };
      s.runSync(feeds); // first run allocates; keep it out of the measurements

      const sync = loopWatch();
      const t0 = performance.now();
      const expected = s.runSync(feeds).y.data as Float32Array;
      const syncMs = performance.now() - t0;
      const ticksDuringSync = sync.ticks;
      sync.stop();
      // The inference is long enough for a blocked loop to matter (and for the async case to show).
      expect(syncMs).toBeGreaterThanOrEqual(50);
      expect(ticksDuringSync).toBe(0);

      const watch = loopWatch();
      const t1 = performance.now();
      const got = (await s.run(feeds)).y.data as Float32Array;
      const asyncMs = performance.now() - t1;
      const { ticks, maxGap } = watch.stop();
      console.log(`runSync ${syncMs.toFixed(0)} ms (loop blocked); run ${asyncMs.toFixed(0)} ms with ${ticks} loop turns, longest gap ${maxGap.toFixed(1)} ms`);
      expect(ticks).toBeGreaterThanOrEqual(20);
      // Turns all through the run, not only before and after it.
      expect(maxGap).toBeLessThan(asyncMs / 2);
      expect(Array.from(got)).toEqual(Array.from(expected));
    } finally {
      s.close();
    }
  });
});
