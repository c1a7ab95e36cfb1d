import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeNpy, encodeNpy, npyHeader, NpyRowWriter, readNpy, readNpyMatrix, writeNpy } from '../src/util/npy.js';
import { Img2PromptError } from '../src/util/errors.js';
import { tempDir } from './helpers/paths.js';

let dir: string;
beforeEach(() => {
  dir = tempDir('img2prompt-npy-');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Byte-for-byte what numpy.save(np.zeros((2, 3), '<f4')) writes before the data. */
function numpyHeaderFor2x3(): Buffer {
  const dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  const text = dict + ' '.repeat(58) + '\n'; // 10 + 59 + 58 + 1 = 128
  return Buffer.concat([Buffer.from([0x93]), Buffer.from('NUMPY', 'latin1'), Buffer.from([1, 0, 118, 0]), Buffer.from(text, 'latin1')]);
}

async function rejects(p: Promise<unknown>, file: string, pattern: RegExp): Promise<void> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(Img2PromptError);
  expect((err as Error).message.startsWith(`${file}: `)).toBe(true);
  expect((err as Error).message).toMatch(pattern);
}

describe('npy', () => {
  it('writes the header numpy writes, padded to 64 bytes and ending in a newline', () => {
    const header = npyHeader([2, 3]);
    expect(header.length).toBe(128);
    expect(header.equals(numpyHeaderFor2x3())).toBe(true);
    for (const shape of [[0, 384], [1, 1], [123456, 768], [7], []]) {
      const h = npyHeader(shape);
      expect(h.length % 64).toBe(0);
      expect(h[h.length - 1]).toBe(0x0a);
      expect(h.readUInt16LE(8)).toBe(h.length - 10);
    }
    expect(npyHeader([7]).toString('latin1')).toContain("'shape': (7,), }");
    expect(npyHeader([]).toString('latin1')).toContain("'shape': (), }");
  });

  it('round-trips a [N, D] matrix through a file, values bit-exact', async () => {
    const rows = 37;
    const dim = 384;
    const data = new Float32Array(rows * dim);
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.731) * 1e3 ** ((i % 5) - 2);
    data[5] = -0;
    data[6] = Number.MIN_VALUE;
    const file = path.join(dir, 'emb.npy');
    await writeNpy(file, data, [rows, dim]);
    expect(fs.statSync(file).size).toBe(npyHeader([rows, dim]).length + rows * dim * 4);
    const back = await readNpyMatrix(file);
    expect(back.rows).toBe(rows);
    expect(back.dim).toBe(dim);
    expect(Buffer.from(back.data.buffer).equals(Buffer.from(data.buffer))).toBe(true);
    // No temp files left next to the target.
    expect(fs.readdirSync(dir)).toEqual(['emb.npy']);
  });

  it('reads a hand-built numpy file and an in-memory one', async () => {
    const values = new Float32Array([1, 2, 3, 4, 5, 6.5]);
    const file = path.join(dir, 'hand.npy');
    fs.writeFileSync(file, Buffer.concat([numpyHeaderFor2x3(), Buffer.from(values.buffer)]));
    const a = await readNpy(file);
    expect(a.shape).toEqual([2, 3]);
    expect(Array.from(a.data)).toEqual([1, 2, 3, 4, 5, 6.5]);
    const b = decodeNpy(encodeNpy(values, [3, 2]));
    expect(b.shape).toEqual([3, 2]);
    expect(Array.from(b.data)).toEqual(Array.from(values));
  });

  it('accepts version 2.0 headers and Python 2 longs', () => {
    const dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1L, 2L), }";
    const pad = 64 - ((12 + dict.length + 1) % 64);
    const text = dict + ' '.repeat(pad) + '\n';
    const head = Buffer.alloc(12);
    Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0]).copy(head);
    head.writeUInt32LE(text.length, 8);
    const bytes = Buffer.concat([head, Buffer.from(text, 'latin1'), Buffer.from(new Float32Array([7, 8]).buffer)]);
    const a = decodeNpy(bytes, 'v2.npy');
    expect(a.shape).toEqual([1, 2]);
    expect(Array.from(a.data)).toEqual([7, 8]);
  });

  it('rejects bad magic, version, dtype, order, shape and truncation with the file name', async () => {
    const good = encodeNpy(new Float32Array(6), [2, 3]);
    const cases: [string, Buffer, RegExp][] = [
      ['magic.npy', Buffer.concat([Buffer.from('PK'), good.subarray(2)]), /bad magic/],
      ['version.npy', Buffer.from(good).fill(9, 6, 7), /version 9\.0/],
      ['dtype.npy', Buffer.from(good.toString('latin1').replace("'<f4'", "'<f8'"), 'latin1'), /dtype is '<f8'/],
      ['bigendian.npy', Buffer.from(good.toString('latin1').replace("'<f4'", "'>f4'"), 'latin1'), /'>f4'/],
      ['fortran.npy', Buffer.from(good.toString('latin1').replace('False', 'True '), 'latin1'), /Fortran order/],
      ['truncated.npy', good.subarray(0, good.length - 4), /needs 24 data bytes, the file has 20/],
      ['short.npy', good.subarray(0, 40), /truncated/],
      ['empty.npy', Buffer.alloc(0), /bad magic/],
    ];
    for (const [name, bytes, pattern] of cases) {
      const file = path.join(dir, name);
      fs.writeFileSync(file, bytes);
      await rejects(readNpy(file), file, pattern);
    }
    const missing = path.join(dir, 'missing.npy');
    await rejects(readNpy(missing), missing, /cannot read/);
    const oneD = path.join(dir, 'oned.npy');
    await writeNpy(oneD, new Float32Array(4), [4]);
    await rejects(readNpyMatrix(oneD), oneD, /expected a 2-d array/);
    await rejects(writeNpy(path.join(dir, 'x.npy'), new Float32Array(5), [2, 3]), path.join(dir, 'x.npy'), /needs 6 values/);
  });

  it('writes a large matrix batch by batch and publishes it only when complete', async () => {
    const file = path.join(dir, 'rows.npy');
    const w = await NpyRowWriter.create(file, 5, 4);
    await w.append(Float32Array.from({ length: 8 }, (_, i) => i));
    expect(fs.existsSync(file)).toBe(false);
    await w.append(Float32Array.from({ length: 12 }, (_, i) => 8 + i));
    await w.finish();
    const back = await readNpyMatrix(file);
    expect([back.rows, back.dim]).toEqual([5, 4]);
    expect(Array.from(back.data)).toEqual(Array.from({ length: 20 }, (_, i) => i));

    const partial = path.join(dir, 'partial.npy');
    const p = await NpyRowWriter.create(partial, 3, 4);
    await p.append(new Float32Array(4));
    await rejects(p.finish(), partial, /only 1 of 3 rows/);
    expect(fs.readdirSync(dir).sort()).toEqual(['rows.npy']);
  });
});
