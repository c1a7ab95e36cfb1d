import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { writeFileAtomic, writeFully } from '../util/atomic-write.js';
import { Img2PromptError, osReason } from '../util/errors.js';
import { outputFs, type OutputHandle } from '../util/output-fs.js';
import { IdHashTable } from '../util/id-hash-table.js';
import { inputChange, readInputContents, type InputContents } from './input-fingerprint.js';
import { parseRecordMeta, type RecordMeta } from './records.js';

/**
 * The resume file of a `predict` run: one JSON line per finished image with each member's vector
 * (float32, base64), appended in chunks, each chunk fsync'd. A crash loses at most the chunk in
 * flight; a record cut off mid-write (the last line, without its newline or unparseable) is dropped
 * on load and cut from the file before new records are appended.
 *
 * Each record line ends with a short sha256 of the rest of the line, so a record changed after it was
 * written (a flipped byte still parses as base64) counts as corrupt, like a torn one, and is not used.
 *
 * The first line describes the run: a fingerprint of the input list and of the inputs' contents (see
 * input-fingerprint.ts; the contents themselves, a line per input, are in `<checkpoint>.inputs`), the
 * options that change the predictions and the model ids. Resuming under a different fingerprint would
 * mix two runs' vectors in one submission, so it is refused, naming what changed (for inputs, which
 * images). Nothing here grows with the number of inputs but a 16-byte slot per record (IdHashTable).
 */

const FORMAT = 'img2prompt-predict-checkpoint';
/** Version 3: the inputs' content fingerprints are in a file of their own; the header holds their hash. */
const VERSION = 3;
/** Hex digits of a record's own hash: enough to catch damage, not a defence against forgery. */
const RECORD_HASH_HEX = 16;
const DEFAULT_CHUNK = 64;

export interface RunDescription {
  /** The images of the run, in order (ids or paths), summarised (inputNamesSummary). */
  inputs: InputNames;
  /** Content fingerprints of the inputs, in order (writeInputContents): a changed image refuses the resume. */
  contents?: InputContents;
  /** Options that change the predictions (k, temperature, member list, weights, ...). JSON values. */
  options: Record<string, unknown>;
  /** Model ids (e.g. clip, minilm). */
  models: Record<string, string>;
}

/** The hash of a run's input names (one a line, in order) and their count. */
export interface InputNames {
  hash: string;
  count: number;
}

/** InputNames of `names`. */
export function inputNamesSummary(names: readonly string[]): InputNames {
  const h = createHash('sha256');
  for (const name of names) h.update(`${name}\n`);
  return { hash: h.digest('hex'), count: names.length };
}

/** InputNames of names read as they come (a list file of millions of inputs). */
export async function inputNamesOf(names: AsyncIterable<string>): Promise<InputNames> {
  const h = createHash('sha256');
  let count = 0;
  for await (const name of names) {
    h.update(`${name}\n`);
    count++;
  }
  return { hash: h.digest('hex'), count };
}

/** Where a checkpoint keeps its run's input fingerprints. */
export function contentsFileFor(checkpoint: string): string {
  return `${checkpoint}.inputs`;
}

interface RunSummary {
  inputsHash: string;
  inputCount: number;
  contentsHash?: string;
  options: Record<string, unknown>;
  models: Record<string, string>;
}

export interface CheckpointRecord {
  id: string;
  /** Member name → vector of length `dim`; members that failed for this image are left out. */
  members: Record<string, Float32Array>;
  /** The record's typed extras (prompt, nearest prompt, failure). */
  meta?: RecordMeta;
}

/** JSON with object keys sorted at every level, so equal values always hash alike. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value as object)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function summarise(run: RunDescription): RunSummary {
  // Round-trip through JSON so the summary compares equal to one read back from the file.
  return JSON.parse(
    canonicalJson({ inputsHash: run.inputs.hash, inputCount: run.inputs.count, contentsHash: run.contents?.hash, options: run.options, models: run.models }),
  ) as RunSummary;
}

/**
 * The fingerprint of a run: sha256 of its canonical summary, less the inputs' content fingerprints.
 * Those are compared one by one instead (inputChange), since an image whose mtime alone moved can
 * still be the same image.
 */
export function runFingerprint(run: RunDescription): string {
  const { contentsHash: _compared, ...rest } = summarise({ ...run, contents: undefined });
  return createHash('sha256').update(canonicalJson(rest)).digest('hex');
}

/** Changed inputs named in a refusal; the rest are counted. */
const NAMED_CHANGES = 5;

/**
 * The inputs whose content changed, by name: the fingerprints the checkpoint kept (`stored`) against
 * this run's, read side by side with the inputs' names, a line at a time.
 */
async function describeChangedInputs(before: string | undefined, stored: string, now: InputContents | undefined): Promise<string | undefined> {
  if (before === now?.hash) return undefined;
  if (before === undefined || now === undefined) return 'input contents (not fingerprinted alike)';
  const old = await fs.stat(stored).then(() => readInputContents(stored), () => undefined);
  if (!old) return `input contents (their fingerprints, ${stored}, are missing)`;
  const fresh = readInputContents(now.file);
  const names = now.names()[Symbol.asyncIterator]();
  const changed: string[] = [];
  let count = 0;
  try {
    for (;;) {
      const [a, b, name] = await Promise.all([old.next(), fresh.next(), names.next()]);
      if (a.done || b.done || name.done) {
        if (!(a.done && b.done)) return 'input contents (not fingerprinted alike)';
        break;
      }
      const why = a.value === undefined ? 'fingerprint unreadable' : inputChange(a.value, b.value ?? null);
      if (why && count++ < NAMED_CHANGES) changed.push(`${name.value} (${why})`);
    }
  } finally {
    await old.return(undefined);
    await fresh.return(undefined);
    await names.return?.(undefined);
  }
  if (count === 0) return undefined;
  const more = count > NAMED_CHANGES ? ` and ${count - NAMED_CHANGES} more` : '';
  return `${count} input image${count === 1 ? '' : 's'} changed since the checkpoint was written: ${changed.join(', ')}${more}`;
}

/** What changed between two runs, for the refusal message. */
async function describeDifferences(before: RunSummary, now: RunSummary, stored: string, contents: InputContents | undefined): Promise<string> {
  const diffs: string[] = [];
  if (before.inputsHash !== now.inputsHash) {
    diffs.push(before.inputCount !== now.inputCount ? `input list (${before.inputCount} → ${now.inputCount} images)` : 'input list (same count, different images or order)');
  } else {
    const changed = await describeChangedInputs(before.contentsHash, stored, contents);
    if (changed) diffs.push(changed);
  }
  for (const key of ['options', 'models'] as const) {
    const a = before[key] ?? {};
    const b = now[key] ?? {};
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      const x = canonicalJson((a as Record<string, unknown>)[k]);
      const y = canonicalJson((b as Record<string, unknown>)[k]);
      if (x !== y) diffs.push(`${key === 'options' ? 'option' : 'model'} ${k}: ${x === 'null' ? '(unset)' : x} → ${y === 'null' ? '(unset)' : y}`);
    }
  }
  return diffs.length > 0 ? diffs.join('; ') : 'fingerprint differs';
}

function encodeRecord(record: CheckpointRecord, dim: number, file: string): string {
  if (typeof record.id !== 'string' || record.id.length === 0) throw new Img2PromptError(file, 'checkpoint record needs a non-empty id');
  const m: Record<string, string> = {};
  for (const [name, v] of Object.entries(record.members)) {
    if (!(v instanceof Float32Array) || v.length !== dim) {
      throw new Img2PromptError(file, `checkpoint record '${record.id}': member '${name}' must be a Float32Array of ${dim} values`);
    }
    m[name] = Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  }
  const body = JSON.stringify(record.meta === undefined ? { id: record.id, m } : { id: record.id, m, x: record.meta });
  return `${body.slice(0, -1)},"h":"${recordHash(body)}"}\n`;
}

function recordHash(body: string): string {
  return createHash('sha256').update(body).digest('hex').slice(0, RECORD_HASH_HEX);
}

/** The record's JSON without its hash, or null when the hash is missing or does not match. */
function verifiedBody(line: string): string | null {
  const tail = line.length - (RECORD_HASH_HEX + 8); // `,"h":"` + hex + `"}`
  if (tail < 2 || line.slice(tail, tail + 6) !== ',"h":"' || !line.endsWith('"}')) return null;
  const body = `${line.slice(0, tail)}}`;
  return recordHash(body) === line.slice(tail + 6, -2) ? body : null;
}

/** A record line, or null when it is not one (torn, or changed since it was written). */
function decodeRecord(line: string, dim: number): CheckpointRecord | null {
  const body = verifiedBody(line);
  if (body === null) return null;
  let obj: unknown;
  try {
    obj = JSON.parse(body);
  } catch {
    return null;
  }
  if (typeof obj !== 'object' || obj === null) return null;
  const { id, m, x } = obj as { id?: unknown; m?: unknown; x?: unknown };
  if (typeof id !== 'string' || typeof m !== 'object' || m === null) return null;
  const members: Record<string, Float32Array> = {};
  for (const [name, b64] of Object.entries(m as Record<string, unknown>)) {
    if (typeof b64 !== 'string') return null;
    const bytes = Buffer.from(b64, 'base64');
    if (bytes.length !== dim * 4) return null;
    const v = new Float32Array(dim);
    Buffer.from(v.buffer).set(bytes);
    members[name] = v;
  }
  const record: CheckpointRecord = { id, members };
  if (x !== undefined) {
    const meta = parseRecordMeta(x);
    if (meta === null) return null;
    record.meta = meta;
  }
  return record;
}

/** Splits a file into newline-terminated lines with their byte ranges; streams, so big files are fine. */
async function* lines(fh: fs.FileHandle): AsyncGenerator<{ text: string; start: number; end: number; complete: boolean }> {
  const chunk = Buffer.alloc(4 << 20);
  let pending: Buffer = Buffer.alloc(0);
  let pendingStart = 0;
  let position = 0;
  for (;;) {
    const { bytesRead } = await fh.read(chunk, 0, chunk.length, position);
    if (bytesRead === 0) break;
    position += bytesRead;
    let buf = Buffer.concat([pending, chunk.subarray(0, bytesRead)]);
    let at = 0;
    for (let nl = buf.indexOf(0x0a, at); nl !== -1; nl = buf.indexOf(0x0a, at)) {
      yield { text: buf.toString('utf8', at, nl), start: pendingStart + at, end: pendingStart + nl + 1, complete: true };
      at = nl + 1;
    }
    pendingStart += at;
    buf = buf.subarray(at);
    pending = Buffer.from(buf);
  }
  if (pending.length > 0) yield { text: pending.toString('utf8'), start: pendingStart, end: pendingStart + pending.length, complete: false };
}

export interface OpenCheckpointOptions {
  /** Continue an existing file (predict --resume); otherwise any existing file is replaced. */
  resume: boolean;
  /** Vector length (384). */
  dim: number;
  /** Records per fsync'd append; default 64. */
  chunkSize?: number;
  /**
   * Whether records added by this run can be read back (default true). A run that hands each record
   * out as it adds it (predict) says false: only the records of an earlier run are then indexed, and
   * a fresh run of a million images keeps no index at all.
   */
  indexAdded?: boolean;
}

export class PredictCheckpoint {
  /**
   * Where each record is, by image id: the byte offset of its line (a later record for an id wins).
   * Only offsets stay in memory, never the vectors or the ids: 16 bytes a slot, and `read` fetches a
   * record back from the file (checking its id) when it is needed.
   */
  private readonly done = new IdHashTable();
  /** Records added by this run that are not indexed (indexAdded false). */
  private unindexed = 0;
  /** Bytes of a torn last record that were dropped on resume (0 when the file was clean). */
  droppedBytes = 0;
  /** True when a resume found no usable file and started a new one. */
  startedFresh = true;

  private pending: string[] = [];
  /** Records queued but not yet appended: `read` serves them from here until the next flush. */
  private pendingRecords = new Map<string, CheckpointRecord>();
  private writing: Promise<void> = Promise.resolve();
  private fh: OutputHandle | undefined;
  private reader: fs.FileHandle | undefined;
  /** Where the next record line goes: the end of the file once everything queued is appended. */
  private end = 0;
  /** Bytes of the longest record line: one read of this size at a record's offset holds all of it. */
  private longestLine = 0;

  private constructor(
    readonly file: string,
    readonly fingerprint: string,
    readonly dim: number,
    private readonly chunkSize: number,
    private readonly indexAdded: boolean,
  ) {}

  static async open(file: string, run: RunDescription, options: OpenCheckpointOptions): Promise<PredictCheckpoint> {
    const { dim } = options;
    const chunkSize = options.chunkSize ?? DEFAULT_CHUNK;
    if (!Number.isInteger(dim) || dim <= 0) throw new Img2PromptError(file, `checkpoint dimension must be a positive integer, got ${dim}`);
    if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new Img2PromptError(file, `checkpoint chunk size must be a positive integer, got ${chunkSize}`);
    const summary = summarise(run);
    const cp = new PredictCheckpoint(file, runFingerprint(run), dim, chunkSize, options.indexAdded ?? true);
    const stored = contentsFileFor(file);
    try {
      let keep: number | undefined;
      if (options.resume) keep = await cp.load(summary, run.contents);
      if (keep === undefined) {
        // This run's fingerprints become the checkpoint's (or none are kept).
        if (run.contents) await fs.rename(run.contents.file, stored);
        else await fs.rm(stored, { force: true });
        const header = { format: FORMAT, version: VERSION, fingerprint: cp.fingerprint, dim, run: summary, created: new Date().toISOString() };
        const line = `${JSON.stringify(header)}\n`;
        await writeFileAtomic(file, line);
        cp.fh = await outputFs.open(file, 'r+');
        cp.end = Buffer.byteLength(line);
      } else {
        // The checkpoint's own fingerprints stay the reference: this run's matched them.
        if (run.contents) await fs.rm(run.contents.file, { force: true });
        cp.startedFresh = false;
        cp.fh = await outputFs.open(file, 'r+');
        const size = (await cp.fh.stat()).size;
        if (size > keep) {
          // Cut the torn tail so new records start on a line of their own.
          cp.droppedBytes = size - keep;
          await cp.fh.truncate(keep);
          await cp.fh.sync();
        }
        cp.end = keep;
      }
    } catch (err) {
      await cp.fh?.close();
      if (run.contents) await fs.rm(run.contents.file, { force: true });
      if (err instanceof Img2PromptError) throw err;
      throw new Img2PromptError(file, `cannot open checkpoint: ${osReason(err)}`, { code: 'FILE_UNREADABLE', cause: err });
    }
    return cp;
  }

  /** Reads an existing file into `done`; returns the byte length of its valid prefix, or undefined to start fresh. */
  private async load(summary: RunSummary, contents: InputContents | undefined): Promise<number | undefined> {
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(this.file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      let lineNo = 0;
      let validEnd = 0;
      let tornAt: number | undefined;
      for await (const line of lines(fh)) {
        lineNo++;
        if (lineNo === 1) {
          // A header cut off mid-write means nothing was recorded yet.
          if (!line.complete) return undefined;
          await this.checkHeader(line.text, summary, contents);
          validEnd = line.end;
          continue;
        }
        const record = line.complete ? decodeRecord(line.text, this.dim) : null;
        if (record === null) {
          tornAt ??= lineNo;
          continue;
        }
        if (tornAt !== undefined) {
          throw new Img2PromptError(this.file, `checkpoint is corrupt at line ${tornAt} (valid records follow it); rerun with --restart to start over`, { code: 'FILE_INVALID' });
        }
        // Checked in full (hash, vectors, extras) and then let go: only where it is stays.
        this.done.set(record.id, line.start);
        this.longestLine = Math.max(this.longestLine, line.end - line.start);
        validEnd = line.end;
      }
      return lineNo === 0 ? undefined : validEnd;
    } finally {
      await fh.close();
    }
  }

  private async checkHeader(text: string, summary: RunSummary, contents: InputContents | undefined): Promise<void> {
    let header: { format?: unknown; version?: unknown; fingerprint?: unknown; dim?: unknown; run?: RunSummary };
    try {
      header = JSON.parse(text) as typeof header;
    } catch {
      throw new Img2PromptError(this.file, 'not a predict checkpoint (unreadable first line); delete it or choose another checkpoint path', { code: 'FILE_INVALID' });
    }
    if (header?.format !== FORMAT) throw new Img2PromptError(this.file, 'not a predict checkpoint; delete it or choose another checkpoint path', { code: 'FILE_INVALID' });
    if (header.version !== VERSION) throw new Img2PromptError(this.file, `checkpoint version ${String(header.version)} is not supported (expected ${VERSION})`, { code: 'FILE_INVALID' });
    const stored = contentsFileFor(this.file);
    const changed = header.fingerprint === this.fingerprint ? await describeChangedInputs(header.run?.contentsHash, stored, contents) : undefined;
    if (header.fingerprint !== this.fingerprint || changed) {
      const what = changed ?? (header.run ? await describeDifferences(header.run, summary, stored, contents) : 'fingerprint differs');
      throw new Img2PromptError(this.file, `checkpoint belongs to a different run (${what}); rerun with --restart to start over`, { code: 'RESUME_CONFLICT' });
    }
    if (header.dim !== this.dim) throw new Img2PromptError(this.file, `checkpoint holds vectors of ${String(header.dim)} values, this run uses ${this.dim}`, { code: 'RESUME_CONFLICT' });
  }

  /** True when a record of image `id` was loaded or (indexAdded) written, pending ones included. */
  has(id: string): boolean {
    return this.done.has(id);
  }

  /** Images with a record, loaded or written so far, pending ones included. */
  get size(): number {
    return this.done.size + this.unindexed;
  }

  /** The record of image `id` (the latest one written), read back from the file; undefined when there is none. */
  async read(id: string): Promise<CheckpointRecord | undefined> {
    const queued = this.pendingRecords.get(id);
    if (queued) return queued;
    const at = this.done.get(id);
    if (at === undefined) return undefined;
    await this.writing;
    try {
      this.reader ??= await fs.open(this.file, 'r');
      const buf = Buffer.alloc(Math.min(this.longestLine, this.end - at));
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await this.reader.read(buf, got, buf.length - got, at + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      const nl = buf.indexOf(0x0a);
      const record = nl < 0 ? null : decodeRecord(buf.toString('utf8', 0, nl), this.dim);
      if (record?.id !== id) throw new Error(`the record of '${id}' at byte ${at} is not readable`);
      return record;
    } catch (err) {
      throw new Img2PromptError(this.file, `cannot read back a checkpoint record (changed while the run was going?): ${osReason(err)}`, { code: 'FILE_INVALID', cause: err });
    }
  }

  /** The records of `ids`, in order (undefined where there is none). */
  async readMany(ids: readonly string[]): Promise<(CheckpointRecord | undefined)[]> {
    const out: (CheckpointRecord | undefined)[] = [];
    for (const id of ids) out.push(await this.read(id));
    return out;
  }

  /** Queue a finished image; every `chunkSize` records are appended and fsync'd. */
  async add(record: CheckpointRecord): Promise<void> {
    if (!this.fh) throw new Img2PromptError(this.file, 'checkpoint is closed');
    const line = encodeRecord(record, this.dim, this.file);
    const bytes = Buffer.byteLength(line);
    this.pending.push(line);
    if (this.indexAdded) {
      this.pendingRecords.set(record.id, record);
      this.done.set(record.id, this.end);
    } else {
      this.unindexed++;
    }
    this.end += bytes;
    this.longestLine = Math.max(this.longestLine, bytes);
    if (this.pending.length >= this.chunkSize) await this.flush();
  }

  /** Append and fsync everything queued. */
  flush(): Promise<void> {
    const batch = this.pending.join('');
    this.pending = [];
    if (batch.length === 0) return this.writing;
    // From here `read` waits for this append and reads the records from the file.
    this.pendingRecords = new Map();
    const position = this.end - Buffer.byteLength(batch);
    // Chained, so concurrent flushes append in call order.
    this.writing = this.writing.then(async () => {
      const fh = this.fh;
      if (!fh) throw new Img2PromptError(this.file, 'checkpoint is closed');
      try {
        await writeFully(fh, Buffer.from(batch, 'utf8'), position);
        await fh.sync();
      } catch (err) {
        // A torn append is cut on resume (see load), so the file stays usable whatever got written.
        throw new Img2PromptError(this.file, `cannot append to checkpoint: ${osReason(err)}`, { code: 'OUTPUT_FAILED', cause: err });
      }
    });
    return this.writing;
  }

  async close(): Promise<void> {
    if (!this.fh) return;
    try {
      await this.flush();
    } finally {
      await this.fh.close();
      this.fh = undefined;
      await this.reader?.close();
      this.reader = undefined;
    }
  }
}
