import { Img2PromptError } from './errors.js';

type Json = Record<string, unknown>;

export function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Typed accessors over one JSON object, with errors that name the file and the key path. */
export class Fields {
  constructor(
    private readonly obj: Json,
    private readonly file: string,
    private readonly where: string,
  ) {}

  private label(key: string): string {
    return this.where ? `${this.where}.${key}` : key;
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  raw(key: string): unknown {
    return this.obj[key];
  }

  int(key: string, fallback?: number): number {
    const v = this.obj[key] ?? fallback;
    if (!Number.isInteger(v) || (v as number) <= 0) {
      throw new Img2PromptError(this.file, `"${this.label(key)}" must be a positive integer, got ${JSON.stringify(this.obj[key])}`, { code: 'FILE_INVALID' });
    }
    return v as number;
  }

  num(key: string, fallback?: number): number {
    const v = this.obj[key] ?? fallback;
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) {
      throw new Img2PromptError(this.file, `"${this.label(key)}" must be a positive number, got ${JSON.stringify(this.obj[key])}`, { code: 'FILE_INVALID' });
    }
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.obj[key] ?? fallback;
    if (typeof v !== 'boolean') throw new Img2PromptError(this.file, `"${this.label(key)}" must be true or false, got ${JSON.stringify(v)}`, { code: 'FILE_INVALID' });
    return v;
  }

  child(key: string): Fields {
    const v = this.obj[key];
    if (!isObject(v)) throw new Img2PromptError(this.file, `"${this.label(key)}" must be an object`, { code: 'FILE_INVALID' });
    return new Fields(v, this.file, this.label(key));
  }

  /** Refuse a feature this engine does not implement, rather than silently compute something else. */
  requireDefault(key: string, allowed: readonly unknown[], what: string): void {
    const v = this.obj[key];
    if (v === undefined || v === null || allowed.includes(v)) return;
    throw new Img2PromptError(this.file, `unsupported ${what}: "${this.label(key)}" is ${JSON.stringify(v)}`, { code: 'FILE_INVALID' });
  }

  /** The image size, written as a number or as a square [h, w]. */
  squareSize(key: string, fallback: number): number {
    const v = this.obj[key] ?? fallback;
    if (Array.isArray(v)) {
      if (v.length !== 2 || v[0] !== v[1]) throw new Img2PromptError(this.file, `unsupported non-square "${this.label(key)}" ${JSON.stringify(v)}`, { code: 'FILE_INVALID' });
      return this.checkPositiveInt(key, v[0]);
    }
    return this.checkPositiveInt(key, v);
  }

  private checkPositiveInt(key: string, v: unknown): number {
    if (!Number.isInteger(v) || (v as number) <= 0) {
      throw new Img2PromptError(this.file, `"${this.label(key)}" must be a positive integer, got ${JSON.stringify(v)}`, { code: 'FILE_INVALID' });
    }
    return v as number;
  }

  rgb(key: string): [number, number, number] | undefined {
    const v = this.obj[key];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      throw new Img2PromptError(this.file, `"${this.label(key)}" must be three numbers, got ${JSON.stringify(v)}`, { code: 'FILE_INVALID' });
    }
    return [v[0], v[1], v[2]];
  }
}
