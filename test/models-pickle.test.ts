import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PickleToken, PickleTruncatedError, unpickle, type PickleGlobalHandler } from '../src/models/pickle.js';
import { Img2PromptError } from '../src/util/errors.js';

const FIXTURES = 'test/fixtures/torch-checkpoints';
const NO_GLOBALS = new Map<string, PickleGlobalHandler>();

/** Protocol 2 pickle bytes from opcodes written out (strings are latin-1). */
function bytes(...parts: (string | number[])[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => (typeof p === 'string' ? [...Buffer.from(p, 'latin1')] : p)));
}

const read = (b: Uint8Array, globals = NO_GLOBALS) => unpickle(b, { file: 'x.pkl', globals }).value;

describe('plain values (pickle.dumps by CPython, protocols 0 to 5)', () => {
  const rows = JSON.parse(fs.readFileSync(`${FIXTURES}/plain-pickles.json`, 'utf8')) as { protocol: number; hex: string }[];

  it.each(rows)('protocol $protocol', ({ protocol, hex }) => {
    const v = read(Buffer.from(hex, 'hex'));
    expect(v).toBeInstanceOf(Map);
    const m = v as Map<unknown, unknown>;
    expect(m.get('ints')).toEqual([0, 1, 255, 256, 65535, 65536, -1, -(2 ** 31), 2 ** 31 - 1, 2 ** 31, 2n ** 53n + 1n, 2n ** 70n, -(2n ** 70n)]);
    expect(m.get('floats')).toEqual([0.5, -1e300, 1 / 3]);
    expect(m.get('str')).toBe('café ✓ \\ \n');
    expect(m.get('none')).toBeNull();
    // Tuples are frozen arrays, lists are not.
    expect(m.get('bools')).toEqual([true, false]);
    expect(Object.isFrozen(m.get('bools'))).toBe(true);
    expect(m.get('tuple1')).toEqual(['one']);
    const [t, l, d] = m.get('empty') as unknown[];
    expect(t).toEqual([]);
    expect(Object.isFrozen(t)).toBe(true);
    expect(Object.isFrozen(l)).toBe(false);
    expect(d).toEqual(new Map());
    // One Python object referenced twice is one JavaScript object (the memo).
    const [a, b] = m.get('shared') as unknown[][];
    expect(a).toEqual([1, 'x']);
    expect(a).toBe(b);
    // Keys keep their Python type: the int 5, not the string "5".
    expect(m.get(5)).toBe('int key');
    expect(m.has('5')).toBe(false);
    if (protocol >= 3) expect(m.get('bytes')).toEqual(Uint8Array.of(0x00, 0x80, 0xff));
  });
});

describe('refusals', () => {
  it('refuses a GLOBAL that is not allowed when it is read, naming it, before the REDUCE that would call it', () => {
    // PROTO 2, GLOBAL os.system, then an argument tuple and REDUCE that must never be reached.
    const evil = bytes([0x80, 2], 'cos\nsystem\n', 'X', [2, 0, 0, 0], 'ls', [0x85], 'R.');
    expect(() => read(evil)).toThrow(new Img2PromptError('x.pkl', 'refusing to unpickle os.system: only tensors, their storages and plain containers are allowed (nothing in the file was run)', { code: 'FILE_INVALID' }));
  });

  it('refuses STACK_GLOBAL, INST and a REDUCE on something that is not an allowed callable', () => {
    const stack = bytes([0x80, 4], [0x8c, 8], 'builtins', [0x8c, 4], 'exec', [0x93], '.');
    expect(() => read(stack)).toThrow('refusing to unpickle builtins.exec');
    const inst = bytes('(Vls\nios\nsystem\n.');
    expect(() => read(inst)).toThrow('refusing to unpickle os.system');
    // A tuple "called" with REDUCE.
    const reduceTuple = bytes([0x80, 2], ')', ')', 'R.');
    expect(() => read(reduceTuple)).toThrow('REDUCE on tuple, which is not an allowed callable');
  });

  it('calls only the allowlist, and hands tokens around without calling them', () => {
    const seen: unknown[] = [];
    const globals = new Map<string, PickleGlobalHandler>([
      ['m.f', (args) => (seen.push(args), 'made')],
      ['m.T', 'token'],
    ]);
    // f((m.T,)) → 'made'
    const v = read(bytes([0x80, 2], 'cm\nf\n', 'cm\nT\n', [0x85], [0x85], 'R.'), globals);
    expect(v).toBe('made');
    expect(seen).toHaveLength(1);
    expect((seen[0] as unknown[])[0]).toEqual([new PickleToken('m.T')]);
    // A token cannot be called.
    expect(() => read(bytes([0x80, 2], 'cm\nT\n', ')', 'R.'), globals)).toThrow('REDUCE on m.T, which is not an allowed callable');
  });

  it('refuses persistent ids without a loader, extension codes and out-of-band buffers', () => {
    expect(() => read(bytes([0x80, 2], 'X', [1, 0, 0, 0], 'k', 'Q.'))).toThrow('a persistent id, and this stream allows none');
    expect(() => read(bytes([0x80, 2, 0x82, 1], '.'))).toThrow('unsupported opcode EXT1');
    expect(() => read(bytes([0x80, 5, 0x97], '.'))).toThrow('unsupported opcode NEXT_BUFFER');
  });

  it('reports a stream cut short as truncated, and a bad memo reference as corrupt', () => {
    const full = bytes([0x80, 2], 'X', [5, 0, 0, 0], 'hello', '.');
    expect(read(full)).toBe('hello');
    expect(() => read(full.subarray(0, 8))).toThrow(PickleTruncatedError);
    expect(() => read(full.subarray(0, full.length - 1))).toThrow(PickleTruncatedError);
    expect(() => read(bytes([0x80, 2], 'h', [7], '.'))).toThrow('memo entry 7 was never stored');
    expect(() => read(bytes([0x80, 2], 'a.'))).toThrow('stack underflow');
  });

  it('reads consecutive pickles from one buffer, as the legacy torch format stores them', () => {
    const two = bytes([0x80, 2, 0x4b, 7], '.', [0x80, 2], 'N.');
    const first = unpickle(two, { file: 'x', globals: NO_GLOBALS });
    expect(first).toEqual({ value: 7, end: 5 });
    expect(unpickle(two, { file: 'x', globals: NO_GLOBALS }, first.end)).toEqual({ value: null, end: two.length });
  });
});
