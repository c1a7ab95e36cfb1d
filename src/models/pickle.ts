/**
 * A restricted reader of Python pickle streams (protocols 0–5). Python's own unpickler rebuilds objects by calling
 * whatever callable the stream names (GLOBAL, then REDUCE), which is how a malicious checkpoint runs code when it is
 * loaded. This reader calls nothing of the file's choosing: every global the stream names is looked up in the
 * caller's allowlist of JavaScript functions, and the first name not on it stops the read, naming it, before any
 * later opcode is even looked at.
 *
 * Values come out as plain JavaScript: None → null, bool, int → number (bigint beyond 2^53), float → number,
 * str → string, bytes → Uint8Array, list → array, tuple → frozen array, dict → Map (keys keep their Python type),
 * set → Set. Allowed globals come out as whatever their handler returns.
 */
import { Img2PromptError } from '../util/errors.js';

/** What an allowed global is: a function called with its arguments (REDUCE, NEWOBJ), or a name only passed around. */
export type PickleGlobalHandler = ((args: readonly unknown[]) => unknown) | 'token';

/** An allowed global that is only passed around (a storage type, a dtype, a class compared by name). */
export class PickleToken {
  constructor(readonly qualifiedName: string) {}
}

export interface UnpickleOptions {
  /** The file the bytes come from, for error messages. */
  file: string;
  /** The only globals the stream may name, by "module.name". */
  globals: ReadonlyMap<string, PickleGlobalHandler>;
  /** Resolves a persistent id (PERSID, BINPERSID); without it such a stream is refused. */
  persistentLoad?: (pid: unknown) => unknown;
}

export interface UnpickleResult {
  value: unknown;
  /** Offset just past the STOP opcode (streams may follow each other, as in torch's legacy format). */
  end: number;
}

/** The stream ended before its STOP opcode: the caller may retry with more of the file. */
export class PickleTruncatedError extends Img2PromptError {}

const MARK = Symbol('mark');

/** A callable allowed global, as the stream passes it around (e.g. as an argument of another one). */
export class PickleCallable {
  constructor(
    readonly qualifiedName: string,
    readonly call: (args: readonly unknown[]) => unknown,
  ) {}
}

const OPCODE_NAMES: Record<number, string> = {
  0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER', 0x53: 'STRING',
};

/** A short Python-ish name for what a pickled value is, for error messages. */
export function pickledTypeName(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof Map) return 'dict';
  if (Array.isArray(v)) return Object.isFrozen(v) ? 'tuple' : 'list';
  if (v instanceof PickleCallable || v instanceof PickleToken) return v.qualifiedName;
  if (v instanceof Uint8Array) return 'bytes';
  if (typeof v === 'object') return v.constructor?.name ?? 'object';
  return typeof v;
}

class Reader {
  private pos: number;
  private readonly stack: unknown[] = [];
  private readonly marks: number[] = [];
  private readonly memo = new Map<number, unknown>();

  constructor(
    private readonly bytes: Uint8Array,
    start: number,
    private readonly options: UnpickleOptions,
  ) {
    this.pos = start;
  }

  private fail(reason: string): never {
    throw new Img2PromptError(this.options.file, `corrupt pickle at byte ${this.pos}: ${reason}`, { code: 'FILE_INVALID' });
  }

  private need(n: number): void {
    if (n < 0 || this.pos + n > this.bytes.length) {
      throw new PickleTruncatedError(this.options.file, `truncated pickle: needs ${n} bytes at byte ${this.pos}, ${this.bytes.length - this.pos} left`, { code: 'FILE_INVALID' });
    }
  }

  private take(n: number): Uint8Array {
    this.need(n);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  private u8(): number {
    this.need(1);
    return this.bytes[this.pos++]!;
  }

  private view(n: number): DataView {
    const b = this.take(n);
    return new DataView(b.buffer, b.byteOffset, n);
  }

  private u16(): number {
    return this.view(2).getUint16(0, true);
  }

  private u32(): number {
    return this.view(4).getUint32(0, true);
  }

  private i32(): number {
    return this.view(4).getInt32(0, true);
  }

  private u64(): number {
    const n = this.view(8).getBigUint64(0, true);
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`length ${n} is impossibly large`);
    return Number(n);
  }

  private line(): string {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0) throw new PickleTruncatedError(this.options.file, `truncated pickle: no end of line after byte ${this.pos}`, { code: 'FILE_INVALID' });
    const text = latin1(this.bytes.subarray(this.pos, end));
    this.pos = end + 1;
    return text;
  }

  private utf8(n: number): string {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(this.take(n));
    } catch (err) {
      if (err instanceof Img2PromptError) throw err;
      return this.fail('a str is not valid UTF-8');
    }
  }

  private push(v: unknown): void {
    this.stack.push(v);
  }

  private pop(): unknown {
    if (this.stack.length === 0 || (this.marks.length > 0 && this.stack.length <= this.marks[this.marks.length - 1]!)) {
      this.fail('stack underflow');
    }
    return this.stack.pop();
  }

  private top(): unknown {
    if (this.stack.length === 0) this.fail('stack underflow');
    return this.stack[this.stack.length - 1];
  }

  /** Everything pushed since the last MARK, removing the mark. */
  private popMark(): unknown[] {
    const at = this.marks.pop();
    if (at === undefined) this.fail('no MARK to pop to');
    return this.stack.splice(at);
  }

  private memoGet(i: number): unknown {
    if (!this.memo.has(i)) this.fail(`memo entry ${i} was never stored`);
    return this.memo.get(i);
  }

  private memoPut(i: number): void {
    this.memo.set(i, this.top());
  }

  /** The allowlist decides here, when the name is read: an unlisted one never reaches the stack. */
  private global(module: string, name: string): unknown {
    const qualified = `${module}.${name}`;
    const handler = this.options.globals.get(qualified);
    if (handler === undefined) {
      throw new Img2PromptError(
        this.options.file,
        `refusing to unpickle ${qualified}: only tensors, their storages and plain containers are allowed (nothing in the file was run)`, { code: 'FILE_INVALID' },
      );
    }
    return handler === 'token' ? new PickleToken(qualified) : new PickleCallable(qualified, handler);
  }

  private call(fn: unknown, args: unknown, how: string): unknown {
    if (!(fn instanceof PickleCallable)) this.fail(`${how} on ${pickledTypeName(fn)}, which is not an allowed callable`);
    if (!Array.isArray(args)) this.fail(`${how} on ${fn.qualifiedName} with ${pickledTypeName(args)} arguments, not a tuple`);
    return fn.call(args);
  }

  private setItems(target: unknown, items: unknown[]): void {
    if (!(target instanceof Map)) this.fail(`SETITEMS on ${pickledTypeName(target)}, not a dict`);
    if (items.length % 2 !== 0) this.fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) target.set(items[i], items[i + 1]);
  }

  private append(target: unknown, items: unknown[]): void {
    if (!Array.isArray(target) || Object.isFrozen(target)) this.fail(`APPEND on ${pickledTypeName(target)}, not a list`);
    target.push(...items);
  }

  /**
   * BUILD sets an object's state after it was made. The only one that carries state in a state dict is an
   * OrderedDict with attributes (torch's `_metadata`): the attributes are data and are dropped.
   */
  private build(target: unknown, state: unknown): void {
    if (target instanceof Map && (state === null || state instanceof Map || Array.isArray(state))) return;
    this.fail(`BUILD on ${pickledTypeName(target)} with ${pickledTypeName(state)} state is not allowed`);
  }

  private long(bytes: Uint8Array): number | bigint {
    if (bytes.length === 0) return 0;
    let v = 0n;
    for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
    if (bytes[bytes.length - 1]! & 0x80) v -= 1n << BigInt(8 * bytes.length);
    return smallest(v);
  }

  private persistent(pid: unknown): unknown {
    if (!this.options.persistentLoad) this.fail('a persistent id, and this stream allows none');
    return this.options.persistentLoad(pid);
  }

  run(): UnpickleResult {
    for (;;) {
      const at = this.pos;
      const op = this.u8();
      switch (op) {
        case 0x80: // PROTO
          if (this.u8() > 5) this.fail('pickle protocol above 5');
          break;
        case 0x95: // FRAME: only a size hint
          this.take(8);
          break;
        case 0x2e: // STOP
          return { value: this.pop(), end: this.pos };
        case 0x28: // MARK
          this.marks.push(this.stack.length);
          break;
        case 0x30: // POP
          if (this.marks.length > 0 && this.marks[this.marks.length - 1] === this.stack.length) this.marks.pop();
          else this.pop();
          break;
        case 0x31: // POP_MARK
          this.popMark();
          break;
        case 0x32: // DUP
          this.push(this.top());
          break;

        case 0x4e: // NONE
          this.push(null);
          break;
        case 0x88: // NEWTRUE
          this.push(true);
          break;
        case 0x89: // NEWFALSE
          this.push(false);
          break;
        case 0x4a: // BININT
          this.push(this.i32());
          break;
        case 0x4b: // BININT1
          this.push(this.u8());
          break;
        case 0x4d: // BININT2
          this.push(this.u16());
          break;
        case 0x8a: // LONG1
          this.push(this.long(this.take(this.u8())));
          break;
        case 0x8b: { // LONG4
          const n = this.i32();
          if (n < 0) this.fail('negative LONG4 length');
          this.push(this.long(this.take(n)));
          break;
        }
        case 0x49: { // INT (text; I01/I00 are protocol 0's booleans)
          const text = this.line();
          if (text === '01' || text === '00') this.push(text === '01');
          else this.push(parseIntText(text) ?? this.fail(`bad INT ${JSON.stringify(text)}`));
          break;
        }
        case 0x4c: { // LONG (text)
          const text = this.line().replace(/L$/, '');
          this.push(parseIntText(text) ?? this.fail(`bad LONG ${JSON.stringify(text)}`));
          break;
        }
        case 0x47: // BINFLOAT (big-endian)
          this.push(this.view(8).getFloat64(0, false));
          break;
        case 0x46: { // FLOAT (text)
          const text = this.line();
          const v = Number(text);
          if (Number.isNaN(v) && !/^[-+]?nan$/i.test(text)) this.fail(`bad FLOAT ${JSON.stringify(text)}`);
          this.push(v);
          break;
        }

        case 0x58: // BINUNICODE
          this.push(this.utf8(this.u32()));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.push(this.utf8(this.u8()));
          break;
        case 0x8d: // BINUNICODE8
          this.push(this.utf8(this.u64()));
          break;
        case 0x56: // UNICODE (protocol 0, raw-unicode-escape)
          this.push(rawUnicodeEscape(this.line()));
          break;
        case 0x54: { // BINSTRING (Python 2 str)
          const n = this.i32();
          if (n < 0) this.fail('negative BINSTRING length');
          this.push(latin1(this.take(n)));
          break;
        }
        case 0x55: // SHORT_BINSTRING
          this.push(latin1(this.take(this.u8())));
          break;
        case 0x42: // BINBYTES
          this.push(new Uint8Array(this.take(this.u32())));
          break;
        case 0x43: // SHORT_BINBYTES
          this.push(new Uint8Array(this.take(this.u8())));
          break;
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
          this.push(new Uint8Array(this.take(this.u64())));
          break;

        case 0x29: // EMPTY_TUPLE
          this.push(Object.freeze([]));
          break;
        case 0x85: // TUPLE1
          this.push(Object.freeze([this.pop()]));
          break;
        case 0x86: { // TUPLE2
          const b = this.pop();
          const a = this.pop();
          this.push(Object.freeze([a, b]));
          break;
        }
        case 0x87: { // TUPLE3
          const c = this.pop();
          const b = this.pop();
          const a = this.pop();
          this.push(Object.freeze([a, b, c]));
          break;
        }
        case 0x74: // TUPLE
          this.push(Object.freeze(this.popMark()));
          break;
        case 0x5d: // EMPTY_LIST
          this.push([]);
          break;
        case 0x6c: // LIST
          this.push(this.popMark());
          break;
        case 0x61: { // APPEND
          const v = this.pop();
          this.append(this.top(), [v]);
          break;
        }
        case 0x65: { // APPENDS
          const items = this.popMark();
          this.append(this.top(), items);
          break;
        }
        case 0x7d: // EMPTY_DICT
          this.push(new Map());
          break;
        case 0x64: { // DICT
          const m = new Map();
          this.setItems(m, this.popMark());
          this.push(m);
          break;
        }
        case 0x73: { // SETITEM
          const v = this.pop();
          const k = this.pop();
          this.setItems(this.top(), [k, v]);
          break;
        }
        case 0x75: { // SETITEMS
          const items = this.popMark();
          this.setItems(this.top(), items);
          break;
        }
        case 0x8f: // EMPTY_SET
          this.push(new Set());
          break;
        case 0x90: { // ADDITEMS
          const items = this.popMark();
          const set = this.top();
          if (!(set instanceof Set)) this.fail(`ADDITEMS on ${pickledTypeName(set)}, not a set`);
          for (const v of items) set.add(v);
          break;
        }
        case 0x91: // FROZENSET
          this.push(new Set(this.popMark()));
          break;

        case 0x67: // GET
          this.push(this.memoGet(Number(this.line())));
          break;
        case 0x68: // BINGET
          this.push(this.memoGet(this.u8()));
          break;
        case 0x6a: // LONG_BINGET
          this.push(this.memoGet(this.u32()));
          break;
        case 0x70: // PUT
          this.memoPut(Number(this.line()));
          break;
        case 0x71: // BINPUT
          this.memoPut(this.u8());
          break;
        case 0x72: // LONG_BINPUT
          this.memoPut(this.u32());
          break;
        case 0x94: // MEMOIZE
          this.memoPut(this.memo.size);
          break;

        case 0x63: { // GLOBAL
          const module = this.line();
          const name = this.line();
          this.push(this.global(module, name));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string') this.fail('STACK_GLOBAL needs two strings');
          this.push(this.global(module, name));
          break;
        }
        case 0x69: { // INST: class named inline, arguments since MARK
          const module = this.line();
          const name = this.line();
          const cls = this.global(module, name);
          this.push(this.call(cls, Object.freeze(this.popMark()), 'INST'));
          break;
        }
        case 0x6f: { // OBJ: class and arguments since MARK
          const [cls, ...args] = this.popMark();
          this.push(this.call(cls, Object.freeze(args), 'OBJ'));
          break;
        }
        case 0x52: { // REDUCE
          const args = this.pop();
          const fn = this.pop();
          this.push(this.call(fn, args, 'REDUCE'));
          break;
        }
        case 0x81: { // NEWOBJ
          const args = this.pop();
          const cls = this.pop();
          this.push(this.call(cls, args, 'NEWOBJ'));
          break;
        }
        case 0x92: { // NEWOBJ_EX
          const kwargs = this.pop();
          const args = this.pop();
          const cls = this.pop();
          if (!(kwargs instanceof Map) || kwargs.size > 0) this.fail('NEWOBJ_EX with keyword arguments');
          this.push(this.call(cls, args, 'NEWOBJ_EX'));
          break;
        }
        case 0x62: { // BUILD
          const state = this.pop();
          this.build(this.top(), state);
          break;
        }
        case 0x50: // PERSID
          this.push(this.persistent(this.line()));
          break;
        case 0x51: // BINPERSID
          this.push(this.persistent(this.pop()));
          break;

        default:
          this.pos = at;
          this.fail(`unsupported opcode ${OPCODE_NAMES[op] ?? `0x${op.toString(16).padStart(2, '0')}`}`);
      }
    }
  }
}

/** Bytes as ISO-8859-1 (TextDecoder's "latin1" is windows-1252, which remaps 0x80–0x9f). */
function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
}

function smallest(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function parseIntText(text: string): number | bigint | undefined {
  if (!/^[-+]?\d+$/.test(text)) return undefined;
  return smallest(BigInt(text));
}

function rawUnicodeEscape(text: string): string {
  return text.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, u4: string | undefined, u8: string | undefined) =>
    String.fromCodePoint(parseInt((u4 ?? u8)!, 16)),
  );
}

/** Read one pickle starting at `start`; see the module comment for what is allowed. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions, start = 0): UnpickleResult {
  return new Reader(bytes, start, options).run();
}
