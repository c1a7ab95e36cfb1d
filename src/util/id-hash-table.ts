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

export class IdHashTable {
  private hi: Uint32Array;
  private lo: Uint32Array;
  private values: Float64Array;
  private count = 0;

  constructor(expected = 0) {
    let capacity = MIN_CAPACITY;
    while (capacity < expected * 2) capacity *= 2;
    this.hi = new Uint32Array(capacity);
    this.lo = new Uint32Array(capacity);
    this.values = new Float64Array(capacity).fill(EMPTY);
  }

  /** Ids (hashes) held. */
  get size(): number {
    return this.count;
  }

  /** The value stored for `id`'s hash, or undefined. */
  get(id: string): number | undefined {
    const [h, l] = idHash64(id);
    const slot = this.find(h, l);
    const v = this.values[slot]!;
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
    const seen = this.values[slot] !== EMPTY;
    if (!seen) {
      if ((this.count + 1) * 2 > this.values.length) {
        this.grow();
        slot = this.find(h, l);
      }
      this.hi[slot] = h;
      this.lo[slot] = l;
      this.count++;
    }
    this.values[slot] = value;
    return seen;
  }

  /** Linear probing: the slot holding (h, l), or the empty slot where it would go. */
  private find(h: number, l: number): number {
    const mask = this.values.length - 1;
    let slot = (l ^ Math.imul(h, 0x9e3779b1)) & mask;
    while (this.values[slot] !== EMPTY && (this.hi[slot] !== h || this.lo[slot] !== l)) slot = (slot + 1) & mask;
    return slot;
  }

  private grow(): void {
    const { hi, lo, values } = this;
    const capacity = values.length * 2;
    this.hi = new Uint32Array(capacity);
    this.lo = new Uint32Array(capacity);
    this.values = new Float64Array(capacity).fill(EMPTY);
    for (let i = 0; i < values.length; i++) {
      if (values[i] === EMPTY) continue;
      const slot = this.find(hi[i]!, lo[i]!);
      this.hi[slot] = hi[i]!;
      this.lo[slot] = lo[i]!;
      this.values[slot] = values[i]!;
    }
  }
}
