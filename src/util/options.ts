/**
 * The one way the public API checks an options object. Every entry point reads its options through
 * an `OptionsReader`, which remembers each key it was asked for, and ends with `done()`, which refuses
 * any key nobody read: a misspelt `batchsize` fails at once instead of silently running with the
 * default. All messages share one form, so a caller learns it once:
 *
 *   predict(): unknown option "modle" (did you mean "model"?)                       TypeError
 *   predict(): Expected a positive integer for batchSize but received "3" of type string   TypeError
 *   predict(): Expected an integer >= 1 for batchSize but received 0                  RangeError
 *
 * TypeError when the value has the wrong type, RangeError when it has the right type and a value
 * outside what is allowed (as the JS built-ins do). A key whose value is `undefined` counts as absent,
 * so callers can forward optional settings without filtering them first.
 *
 * Problems with files and data are not option problems: those stay Img2PromptErrors (errors.ts).
 */

export interface IntBounds {
  min?: number;
  max?: number;
}

export interface NumberBounds extends IntBounds {
  /** True: `min` itself is not allowed (a value must be greater). */
  minExclusive?: boolean;
}

/** Reads `options` for the call named `call` (written as it appears in messages: 'predict()'). */
export function readOptions(options: unknown, call: string): OptionsReader {
  return new OptionsReader(options, call);
}

export class OptionsReader {
  private readonly values: Record<string, unknown>;
  private readonly read = new Set<string>();

  constructor(options: unknown, readonly call: string) {
    if (options === undefined) {
      this.values = {};
    } else if (typeof options !== 'object' || options === null || Array.isArray(options)) {
      throw new TypeError(`${call}: Expected an object for options but received ${shown(options)}${typeSuffix(options)}`);
    } else {
      this.values = options as Record<string, unknown>;
    }
  }

  /** True when `key` holds a value other than undefined (does not count as reading it). */
  has(key: string): boolean {
    return this.values[key] !== undefined;
  }

  /** The raw value, unchecked: for values another function validates (an engine, session options). */
  any<T = unknown>(key: string): T | undefined {
    this.read.add(key);
    return this.values[key] as T | undefined;
  }

  /** `value` (read by one of the methods here), or the TypeError of a required key that is absent. */
  required<T>(key: string, value: T | undefined, expected: string): T {
    if (value === undefined) throw this.typeError(key, expected, value);
    return value;
  }

  /** Marks keys as known without reading them: they are handed on, whole, to a callee that checks them. */
  known(keys: readonly string[]): void {
    for (const k of keys) this.read.add(k);
  }

  int(key: string, bounds: IntBounds = {}): number | undefined {
    const v = this.any(key);
    if (v === undefined) return undefined;
    const { min, max } = bounds;
    if (typeof v !== 'number') throw this.typeError(key, integerWords(min, max), v);
    if (!Number.isSafeInteger(v) || (min !== undefined && v < min) || (max !== undefined && v > max)) {
      throw this.rangeError(key, `an integer${rangeWords(min, max, false)}`, v);
    }
    return v;
  }

  number(key: string, bounds: NumberBounds = {}): number | undefined {
    const v = this.any(key);
    if (v === undefined) return undefined;
    const { min, max, minExclusive = false } = bounds;
    if (typeof v !== 'number') throw this.typeError(key, 'a number', v);
    const low = min === undefined || (minExclusive ? v > min : v >= min);
    const high = max === undefined || v <= max;
    if (!Number.isFinite(v) || !low || !high) throw this.rangeError(key, `a finite number${rangeWords(min, max, minExclusive)}`, v);
    return v;
  }

  bool(key: string): boolean | undefined {
    const v = this.any(key);
    if (v === undefined || typeof v === 'boolean') return v;
    throw this.typeError(key, 'true or false', v);
  }

  /** A string; `nonEmpty` refuses '' (RangeError). */
  string(key: string, options: { nonEmpty?: boolean } = {}): string | undefined {
    const v = this.any(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw this.typeError(key, options.nonEmpty ? 'a non-empty string' : 'a string', v);
    if (options.nonEmpty && v === '') throw this.rangeError(key, 'a non-empty string', v);
    return v;
  }

  stringList(key: string): string[] | undefined {
    const v = this.any(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw this.typeError(key, 'an array of strings', v);
    return v;
  }

  /** One of `choices`: a value of another type is a TypeError, an unlisted one of the same type a RangeError. */
  oneOf<const T extends string | number | boolean>(key: string, choices: readonly T[]): T | undefined {
    const v = this.any(key);
    if (v === undefined || choices.includes(v as T)) return v as T | undefined;
    const expected = `one of ${choices.map((c) => shown(c)).join(', ')}`;
    throw choices.some((c) => typeof c === typeof v) ? this.rangeError(key, expected, v) : this.typeError(key, expected, v);
  }

  /** An array whose every element is one of `choices`, each at most once unless `allowRepeats`. */
  subsetOf<const T extends string>(key: string, choices: readonly T[], options: { allowRepeats?: boolean } = {}): T[] | undefined {
    const v = this.any(key);
    if (v === undefined) return undefined;
    const expected = `an array of ${choices.map((c) => shown(c)).join(', ')}`;
    if (!Array.isArray(v)) throw this.typeError(key, expected, v);
    if (!v.every((c) => choices.includes(c as T))) throw this.rangeError(key, options.allowRepeats ? expected : `${expected}, each at most once`, v);
    if (!options.allowRepeats && new Set(v).size !== v.length) throw this.rangeError(key, `${expected}, each at most once`, v);
    return v as T[];
  }

  func<F extends (...args: never[]) => unknown>(key: string): F | undefined {
    const v = this.any(key);
    if (v === undefined || typeof v === 'function') return v as F | undefined;
    throw this.typeError(key, 'a function', v);
  }

  /** A plain object (not null, not an array); its contents are the callee's to check. */
  object<T extends object = Record<string, unknown>>(key: string): T | undefined {
    const v = this.any(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw this.typeError(key, 'an object', v);
    return v as T;
  }

  /** A value `accept` approves, else a TypeError saying `expected` ('a Float32Array'). */
  check<T>(key: string, accept: (value: unknown) => value is T, expected: string): T | undefined {
    const v = this.any(key);
    if (v === undefined || accept(v)) return v as T | undefined;
    throw this.typeError(key, expected, v);
  }

  /**
   * Refuses `keys` that do not belong in this call's situation, e.g.
   * `o.refuse(['model'], 'with an opened engine (pass it to PredictEngine.open)')` →
   * `predict(): option "model" cannot be given with an opened engine (pass it to PredictEngine.open)`.
   */
  refuse(keys: readonly string[], situation: string): void {
    for (const key of keys) {
      this.read.add(key);
      if (this.values[key] !== undefined) throw new TypeError(`${this.call}: option "${key}" cannot be given ${situation}`);
    }
  }

  /** Throws for the first key (in the object's order) that was never read; call it after every read. */
  done(): void {
    for (const key of Object.keys(this.values)) {
      if (this.read.has(key) || this.values[key] === undefined) continue;
      const near = closestKey(key, [...this.read]);
      throw new TypeError(`${this.call}: unknown option "${key}"${near === undefined ? '' : ` (did you mean "${near}"?)`}`);
    }
  }

  typeError(key: string, expected: string, value: unknown): TypeError {
    return new TypeError(`${this.call}: Expected ${expected} for ${key} but received ${shown(value)}${typeSuffix(value)}`);
  }

  rangeError(key: string, expected: string, value: unknown): RangeError {
    return new RangeError(`${this.call}: Expected ${expected} for ${key} but received ${shown(value)}`);
  }
}

function integerWords(min: number | undefined, max: number | undefined): string {
  if (max === undefined && min === 1) return 'a positive integer';
  if (max === undefined && min === 0) return 'a non-negative integer';
  return `an integer${rangeWords(min, max, false)}`;
}

function rangeWords(min: number | undefined, max: number | undefined, minExclusive: boolean): string {
  if (min !== undefined && max !== undefined) return minExclusive ? ` > ${min} and <= ${max}` : ` between ${min} and ${max}`;
  if (min !== undefined) return ` ${minExclusive ? '>' : '>='} ${min}`;
  if (max !== undefined) return ` <= ${max}`;
  return '';
}

const SHOWN_MAX = 60;

/** A value as a message shows it: strings quoted, arrays and objects as short JSON, typed arrays by kind and length. */
function shown(value: unknown): string {
  if (typeof value === 'string') return clip(JSON.stringify(value));
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`;
  if (typeof value !== 'object' || value === null) return String(value);
  if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${(value as unknown as ArrayLike<unknown>).length ?? value.byteLength})`;
  try {
    const json = JSON.stringify(value);
    if (json !== undefined) return clip(json);
  } catch {
    // A cycle or a BigInt: fall through to the constructor's name.
  }
  return `[object ${value.constructor?.name ?? 'Object'}]`;
}

function clip(text: string): string {
  return text.length > SHOWN_MAX ? `${text.slice(0, SHOWN_MAX - 1)}…` : text;
}

function typeSuffix(value: unknown): string {
  if (value === null || value === undefined) return '';
  return ` of type ${Array.isArray(value) ? 'array' : typeof value}`;
}

/** The known key nearest to `key` by edit distance, when it is near enough to be a slip (≤ 2, and under half its length). */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance && d <= Math.min(2, Math.floor(Math.max(key.length, k.length) / 2))) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

/** Levenshtein distance (insertions, deletions, substitutions each cost 1). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
