import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  parseSafetensors,
  readSafetensors,
  readSafetensorsSync,
  tensorToFloat32,
  writeSafetensors,
} from '../src/models/safetensors.js';
import { Img2PromptError } from '../src/util/errors.js';
import { tempDir } from './helpers/paths.js';

const dir = tempDir();
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A .safetensors file from a header object and a data section, with the header length as given. */
function craft(header: unknown, data: Uint8Array, headerText = JSON.stringify(header)): Buffer {
  const json = Buffer.from(headerText, 'utf-8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([prefix, json, data]);
}

function writeCrafted(name: string, bytes: Uint8Array): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return file;
}

async function expectBad(name: string, bytes: Uint8Array, reason: RegExp): Promise<void> {
  const file = writeCrafted(name, bytes);
  await expect(readSafetensors(file)).rejects.toThrow(Img2PromptError);
  await expect(readSafetensors(file)).rejects.toThrow(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*${reason.source}`));
  expect(() => readSafetensorsSync(file)).toThrow(reason);
}

describe('safetensors round trip', () => {
  const f32 = Float32Array.from([1.5, -2.25, 3, 0.125, 1e-7, -1e7]);
  const i64 = BigInt64Array.from([0n, -1n, 9007199254740993n]);
  const u8 = Uint8Array.from([1, 2, 3]);
  const f16 = Uint16Array.from([0x3c00, 0xc000, 0x3555, 0x7c00]); // 1, -2, ~0.333, +inf
  const bf16 = Uint16Array.from([0x3f80, 0xc040]); // 1, -3
  const i32 = Int32Array.from([7, -8]);

  it('writes and reads every field back, 8-byte aligned, with zero-copy float views', async () => {
    const file = path.join(dir, 'round.safetensors');
    // u8 first so that, without padding, the tensors after it would be misaligned.
    await writeSafetensors(
      file,
      [
        { name: 'bytes', dtype: 'U8', shape: [3], data: u8 },
        { name: 'w', dtype: 'F32', shape: [2, 3], data: f32 },
        { name: 'ids', dtype: 'I64', shape: [3], data: i64 },
        { name: 'half', dtype: 'F16', shape: [2, 2], data: f16 },
        { name: 'brain', dtype: 'BF16', shape: [2], data: bf16 },
        { name: 'ints', dtype: 'I32', shape: [1, 2], data: i32 },
        { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
      ],
      { format: 'pt', note: 'test' },
    );
    const raw = fs.readFileSync(file);
    const headerLength = Number(raw.readBigUInt64LE(0));
    expect((8 + headerLength) % 8).toBe(0);

    for (const st of [await readSafetensors(file), readSafetensorsSync(file), parseSafetensors(raw, file)]) {
      expect(st.metadata).toEqual({ format: 'pt', note: 'test' });
      // Laid out widest dtype first, in the given order within a width.
      expect([...st.tensors.keys()]).toEqual(['ids', 'w', 'ints', 'empty', 'half', 'brain', 'bytes']);
      const w = st.tensors.get('w')!;
      expect(w.dtype).toBe('F32');
      expect(w.shape).toEqual([2, 3]);
      expect(Array.from(w.data as Float32Array)).toEqual(Array.from(f32));
      expect(Array.from(st.tensors.get('ids')!.data as BigInt64Array)).toEqual(Array.from(i64));
      expect(Array.from(st.tensors.get('bytes')!.data as Uint8Array)).toEqual([1, 2, 3]);
      expect(Array.from(st.tensors.get('ints')!.data as Int32Array)).toEqual([7, -8]);
      expect(st.tensors.get('empty')!.shape).toEqual([0, 4]);
      expect(tensorToFloat32(st.tensors.get('half')!)[0]).toBe(1);
      expect(tensorToFloat32(st.tensors.get('half')!)[1]).toBe(-2);
      expect(tensorToFloat32(st.tensors.get('half')!)[2]).toBeCloseTo(1 / 3, 3);
      expect(tensorToFloat32(st.tensors.get('half')!)[3]).toBe(Infinity);
      expect(Array.from(tensorToFloat32(st.tensors.get('brain')!))).toEqual([1, -3]);
      expect(() => tensorToFloat32(st.tensors.get('ids')!)).toThrow(/I64, not a floating-point type/);
    }
    // Every tensor is aligned, so its data is a view over the file buffer, not a copy.
    const st = readSafetensorsSync(file);
    for (const t of st.tensors.values()) expect(t.data.buffer).toBe(t.bytes.buffer);
  });

  it('copies tensors whose data is not aligned for their element type', () => {
    // Header of 13 bytes → data starts at byte 21, so a float32 there cannot be viewed in place.
    const header = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    const values = Float32Array.from([3.5, -1]);
    const buf = Buffer.alloc(8 + header.length + 8);
    buf.writeBigUInt64LE(BigInt(header.length));
    buf.write(header, 8, 'utf-8');
    Buffer.from(values.buffer).copy(buf, 8 + header.length);
    expect((8 + header.length) % 4).not.toBe(0);
    const t = parseSafetensors(buf, 'odd').tensors.get('a')!;
    expect(Array.from(t.data as Float32Array)).toEqual([3.5, -1]);
    expect(t.data.buffer).not.toBe(t.bytes.buffer);
  });

  it('refuses to write inconsistent tensors and leaves no file behind', async () => {
    const file = path.join(dir, 'bad-write.safetensors');
    await expect(writeSafetensors(file, [{ name: 'x', dtype: 'F32', shape: [4], data: new Float32Array(3) }])).rejects.toThrow(
      /F32\[4\] = 16 bytes but its data holds 12/,
    );
    await expect(
      writeSafetensors(file, [
        { name: 'x', dtype: 'F32', shape: [1], data: new Float32Array(1) },
        { name: 'x', dtype: 'F32', shape: [1], data: new Float32Array(1) },
      ]),
    ).rejects.toThrow(/duplicate tensor name "x"/);
    expect(fs.existsSync(file)).toBe(false);
    expect(fs.readdirSync(dir).filter((f) => f.includes('bad-write'))).toEqual([]);
  });
});

describe('safetensors validation', () => {
  const entry = (dtype: string, shape: number[], begin: number, end: number) => ({ dtype, shape, data_offsets: [begin, end] });

  it('rejects a file shorter than the length field', async () => {
    await expectBad('tiny.safetensors', Buffer.from([1, 2, 3]), /truncated: 3 bytes/);
  });

  it('rejects a header length beyond the end of the file', async () => {
    const good = craft({ a: entry('F32', [1], 0, 4) }, new Uint8Array(4));
    await expectBad('cut-header.safetensors', good.subarray(0, 20), /truncated: header length \d+ exceeds/);
  });

  it('rejects a header that is not JSON or not an object', async () => {
    await expectBad('badjson.safetensors', craft(null, new Uint8Array(0), '{"a": [1, 2'), /corrupt header: not valid UTF-8 JSON/);
    await expectBad('array.safetensors', craft([1, 2], new Uint8Array(0)), /corrupt header: the header is not a JSON object/);
    await expectBad('badutf8.safetensors', craft(null, new Uint8Array(0), '{"\xff":1}').fill(0xff, 10, 11), /corrupt header/);
  });

  it('rejects tensor data that runs past the end of the file', async () => {
    await expectBad('short-data.safetensors', craft({ a: entry('F32', [4], 0, 16) }, new Uint8Array(8)), /truncated: tensor "a" ends at data offset 16/);
  });

  it('rejects overlapping tensors', async () => {
    const h = { a: entry('F32', [2], 0, 8), b: entry('F32', [2], 4, 12) };
    await expectBad('overlap.safetensors', craft(h, new Uint8Array(12)), /corrupt header: tensor "b" overlaps tensor "a"/);
  });

  it('rejects a dtype/shape that does not match the byte span', async () => {
    await expectBad('mismatch.safetensors', craft({ a: entry('F32', [3], 0, 8) }, new Uint8Array(8)), /F32\[3\] = 12 bytes but its data_offsets span 8/);
    await expectBad('i64.safetensors', craft({ a: entry('I64', [2], 0, 8) }, new Uint8Array(8)), /I64\[2\] = 16 bytes/);
  });

  it('rejects unknown dtypes, bad shapes, bad offsets, gaps and trailing bytes', async () => {
    await expectBad('dtype.safetensors', craft({ a: entry('F33', [1], 0, 4) }, new Uint8Array(4)), /unknown dtype "F33"/);
    await expectBad('shape.safetensors', craft({ a: entry('F32', [-1], 0, 4) }, new Uint8Array(4)), /invalid shape/);
    await expectBad('offs.safetensors', craft({ a: { dtype: 'F32', shape: [1], data_offsets: [0] } }, new Uint8Array(4)), /invalid data_offsets/);
    await expectBad('rev.safetensors', craft({ a: entry('F32', [0], 4, 0) }, new Uint8Array(4)), /begin after end/);
    const gap = { a: entry('F32', [1], 0, 4), b: entry('F32', [1], 8, 12) };
    await expectBad('gap.safetensors', craft(gap, new Uint8Array(12)), /unused gap of 4 bytes before tensor "b"/);
    await expectBad('tail.safetensors', craft({ a: entry('F32', [1], 0, 4) }, new Uint8Array(6)), /2 trailing bytes after the last tensor/);
    await expectBad('meta.safetensors', craft({ __metadata__: { n: 1 } }, new Uint8Array(0)), /__metadata__\.n is not a string/);
  });

  it('names the file when it cannot be opened', async () => {
    const missing = path.join(dir, 'nope.safetensors');
    await expect(readSafetensors(missing)).rejects.toThrow(`${missing}: cannot read: no such file`);
    expect(() => readSafetensorsSync(missing)).toThrow(`${missing}: cannot read: no such file`);
  });
});
