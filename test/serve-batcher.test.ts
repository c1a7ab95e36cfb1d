// The cross-request batcher on fake lanes: what shares a run, the order results come back in, the
// queue limit, cancellation, and a lane that throws.
import { describe, expect, it } from 'vitest';
import { Batcher, type Lane } from '../src/server/batcher.js';
import { HttpError } from '../src/server/errors.js';

/** A lane that records each run's items and answers `<item>!`, after `delayMs`. */
function recordingLane(key: string, runs: string[][], delayMs = 5): Lane<string, string> {
  return {
    key,
    name: key,
    async run(items) {
      runs.push([...items]);
      await new Promise((r) => setTimeout(r, delayMs));
      return items.map((x) => `${x}!`);
    },
  };
}

describe('Batcher', () => {
  it('gathers requests that arrive within maxWaitMs into one run and answers each in its own order', async () => {
    const runs: string[][] = [];
    const sizes: number[] = [];
    const b = new Batcher<string, string>({ maxBatch: 10, maxWaitMs: 50, maxQueue: 100, onBatch: (_l, n) => sizes.push(n) });
    const lane = recordingLane('a', runs);
    const [x, y, z] = await Promise.all([b.submit(lane, ['x1', 'x2']), b.submit(lane, ['y1']), b.submit(lane, ['z1', 'z2', 'z3'])]);
    expect(runs).toEqual([['x1', 'x2', 'y1', 'z1', 'z2', 'z3']]);
    expect(sizes).toEqual([6]);
    expect([x, y, z]).toEqual([['x1!', 'x2!'], ['y1!'], ['z1!', 'z2!', 'z3!']]);
  });

  it('runs a full batch at once, splits a request over several runs, and keeps lanes with other options apart', async () => {
    const runs: string[][] = [];
    const b = new Batcher<string, string>({ maxBatch: 3, maxWaitMs: 10_000, maxQueue: 100 });
    const t0 = performance.now();
    const big = b.submit(recordingLane('a', runs), ['a1', 'a2', 'a3', 'a4', 'a5', 'a6']);
    expect(await big).toEqual(['a1!', 'a2!', 'a3!', 'a4!', 'a5!', 'a6!']);
    // Full batches do not wait for maxWaitMs.
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(runs).toEqual([['a1', 'a2', 'a3'], ['a4', 'a5', 'a6']]);

    const fast = new Batcher<string, string>({ maxBatch: 8, maxWaitMs: 20, maxQueue: 100 });
    const mixed: string[][] = [];
    const results = await Promise.all([fast.submit(recordingLane('fast', mixed), ['f1']), fast.submit(recordingLane('best', mixed), ['b1']), fast.submit(recordingLane('fast', mixed), ['f2'])]);
    expect(results).toEqual([['f1!'], ['b1!'], ['f2!']]);
    expect(mixed).toEqual([['f1', 'f2'], ['b1']]);
  });

  it('refuses with 429 and Retry-After what would overfill the queue, and counts the depth', async () => {
    const runs: string[][] = [];
    const b = new Batcher<string, string>({ maxBatch: 10, maxWaitMs: 30, maxQueue: 3 });
    const lane = recordingLane('a', runs);
    const first = b.submit(lane, ['a', 'b']);
    expect(b.depth).toBe(2);
    const refused = await b.submit(lane, ['c', 'd']).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(HttpError);
    expect(refused).toMatchObject({ status: 429, code: 'queue_full', headers: { 'retry-after': expect.stringMatching(/^[1-9]\d*$/) } });
    expect(await first).toEqual(['a!', 'b!']);
    expect(b.depth).toBe(0);
  });

  it('takes a cancelled request\'s waiting items out of the queue; the others still run', async () => {
    const runs: string[][] = [];
    const b = new Batcher<string, string>({ maxBatch: 10, maxWaitMs: 30, maxQueue: 10 });
    const lane = recordingLane('a', runs);
    const controller = new AbortController();
    const gone = b.submit(lane, ['g1', 'g2'], controller.signal);
    const kept = b.submit(lane, ['k1']);
    const why = new Error('client went away');
    controller.abort(why);
    await expect(gone).rejects.toBe(why);
    expect(b.depth).toBe(1);
    expect(await kept).toEqual(['k1!']);
    expect(runs).toEqual([['k1']]);
    await expect(b.submit(lane, ['late'], controller.signal)).rejects.toBe(why);
  });

  it('rejects the requests of a run whose lane throws, and goes on with the next run', async () => {
    const b = new Batcher<string, string>({ maxBatch: 2, maxWaitMs: 1, maxQueue: 10 });
    let calls = 0;
    const flaky: Lane<string, string> = {
      key: 'f', name: 'f',
      async run(items) {
        if (calls++ === 0) throw new Error('engine failed');
        return items.map((x) => x.toUpperCase());
      },
    };
    const [bad, good] = await Promise.allSettled([b.submit(flaky, ['a', 'b']), b.submit(flaky, ['c'])]);
    expect(bad).toEqual({ status: 'rejected', reason: new Error('engine failed') });
    expect(good).toEqual({ status: 'fulfilled', value: ['C'] });
    await b.drain();
    expect(b.busy).toBe(false);
  });
});
