/**
 * A table from image id to a number (a byte offset, an index) that holds 16 bytes a slot and no string:
 * each id is kept as a 64-bit hash of its UTF-16 code units. A run of millions of images needs its ids
 * checked unique and, on resume, where each finished image's record is; a Map or Set of the ids would
 * hold 80–120 bytes an image (the string, the entry, the table), which at 1M images is most of a run's
 * memory. Two different ids share a hash with probability about n²/2⁶⁵ (3·10⁻⁸ at a million ids), so a
 * hit means "this id was probably seen": callers confirm a hit against the ids themselves (the listing
 * re-reads the ids that hit; the checkpoint reads back the record and compares its id).
 */

/** Two 32-bit halves of a 64-bit FNV-1a-style hash with a final avalanche on each half. */
export function idHash64(id: string): [hi: number, lo: number] {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x9e3779b9;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  // Mix length and each half into the other so ids of one prefix spread over the table.
  a = Math.imul(a ^ (a >>> 16) ^ id.length, 0x85ebca6b);
  a = Math.imul(a ^ (a >>> 13), 0xc2b2ae35);
  a ^= a >>> 16;
  b = Math.imul(b ^ (b >>> 16) ^ a, 0x27d4eb2f);
  b = Math.imul(b ^ (b >>> 15), 0x165667b1);
  b ^= b >>> 16;
  return [a >>> 0, b >>> 0];
}

const EMPTY = -1;
const MIN_CAPACITY = 1024;
const BYTES_PER_SLOT = 16;

// ES2024's resizable ArrayBuffer (Node 20 has it; the project's TypeScript lib is ES2022).
type ResizableArrayBuffer = ArrayBuffer & { resize(bytes: number): void };
type ResizableArrayBufferConstructor = new (bytes: number, options: { maxByteLength: number }) => ResizableArrayBuffer;

/**
 * One generation of the table's slots in one resizable ArrayBuffer: the value (8 bytes) and the two
 * halves of the hash (4 + 4). Resizable so that `free()` gives its memory back at once: a plain
 * ArrayBuffer that is dropped waits for a major GC, and the listing of a million ids drops a 32 MB
 * table (and its 16 + 8 + ... MB predecessors) just before the models open, where it would add to the
 * run's peak.
 */
class Slots {
  readonly values: Float64Array;
  readonly hi: Uint32Array;
  readonly lo: Uint32Array;
  private readonly buffer: ResizableArrayBuffer;

  constructor(readonly capacity: number) {
    const bytes = capacity * BYTES_PER_SLOT;
    this.buffer = new (ArrayBuffer as unknown as ResizableArrayBufferConstructor)(bytes, { maxByteLength: bytes });
    this.values = new Float64Array(this.buffer, 0, capacity).fill(EMPTY);
    this.hi = new Uint32Array(this.buffer, capacity * 8, capacity);
    this.lo = new Uint32Array(this.buffer, capacity * 12, capacity);
  }

  /** Returns the memory to the system now; the views are unusable after this. */
  free(): void {
    this.buffer.resize(0);
  }
}

export class IdHashTable {
  private slots: Slots;
  private count = 0;

  constructor(expected = 0) {
    let capacity = MIN_CAPACITY;
    while (capacity < expected * 2) capacity *= 2;
    this.slots = new Slots(capacity);
  }

  /** Ids (hashes) held. */
  get size(): number {
    return this.count;
  }

  /** The value stored for `id`'s hash, or undefined. */
  get(id: string): number | undefined {
    const [h, l] = idHash64(id);
    const slot = this.find(h, l);
    const v = this.slots.values[slot]!;
    return v === EMPTY ? undefined : v;
  }

  has(id: string): boolean {
    return this.get(id) !== undefined;
  }

  /** Stores `value` (a non-negative number) for `id`; returns true when the hash was already there (the value is replaced). */
  set(id: string, value = 0): boolean {
    if (!(value >= 0)) throw new RangeError(`IdHashTable values must be non-negative numbers, got ${value}`);
    const [h, l] = idHash64(id);
    let slot = this.find(h, l);
    const seen = this.slots.values[slot] !== EMPTY;
    if (!seen) {
      if ((this.count + 1) * 2 > this.slots.capacity) {
        this.grow();
        slot = this.find(h, l);
      }
      this.slots.hi[slot] = h;
      this.slots.lo[slot] = l;
      this.count++;
    }
    this.slots.values[slot] = value;
    return seen;
  }

  /**
   * Gives the table's memory back at once and leaves it empty (usable again). The listing calls it
   * when every id is checked, so that its table does not wait for a GC while the models load.
   */
  release(): void {
    this.slots.free();
    this.slots = new Slots(MIN_CAPACITY);
    this.count = 0;
  }

  /** Linear probing: the slot holding (h, l), or the empty slot where it would go. */
  private find(h: number, l: number): number {
    const { values, hi, lo, capacity } = this.slots;
    const mask = capacity - 1;
    let slot = (l ^ Math.imul(h, 0x9e3779b1)) & mask;
    while (values[slot] !== EMPTY && (hi[slot] !== h || lo[slot] !== l)) slot = (slot + 1) & mask;
    return slot;
  }

  private grow(): void {
    const old = this.slots;
    this.slots = new Slots(old.capacity * 2);
    const { values, hi, lo } = this.slots;
    for (let i = 0; i < old.capacity; i++) {
      if (old.values[i] === EMPTY) continue;
      const slot = this.find(old.hi[i]!, old.lo[i]!);
      hi[slot] = old.hi[i]!;
      lo[slot] = old.lo[i]!;
      values[slot] = old.values[i]!;
    }
    old.free();
  }
}
