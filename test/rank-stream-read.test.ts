import { describe, expect, it } from 'vitest';
import { native } from '../src/native/addon.js';

// The streaming-read probe behind the bench's bandwidth floor: it must really read every element.
describe('streamRead (bandwidth probe)', () => {
  it('sums every element, whatever the thread count and the tail', async () => {
    // 1,000,037 values: not a multiple of 32 nor of any slice, so every thread's tail loop runs.
    const n = 1_000_037;
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = (i % 7) - 3; // small integers: float sums are exact
    let want = 0;
    for (let i = 0; i < n; i++) want += data[i]!;
    for (const threads of [1, 2, 3, 8]) {
      const got = await native().streamRead(data, { threads, passes: 2 });
      expect(got.sum).toBe(want);
      expect(got.seconds).toHaveLength(2);
      for (const s of got.seconds) expect(s).toBeGreaterThan(0);
      expect(['avx2', 'scalar']).toContain(got.kernel);
    }
    const tiny = await native().streamRead(Float32Array.of(1.5, 2.5), { threads: 4 });
    expect(tiny.sum).toBe(4);
  });

  it('rejects bad arguments', () => {
    expect(() => native().streamRead(new Float64Array(4) as unknown as Float32Array)).toThrow('streamRead: data must be a Float32Array');
    expect(() => native().streamRead(new Float32Array(4), { threads: 0 })).toThrow('streamRead: threads must be an integer from 1 to 1024');
    expect(() => native().streamRead(new Float32Array(4), { passes: 2.5 })).toThrow('streamRead: passes must be an integer from 1 to 1000');
  });
});
