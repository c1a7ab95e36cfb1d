import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { openToRead } from '../util/open-to-read.js';

/** What an ONNX file declares, read without loading its weights. */
export interface OnnxHeader {
  /** Graph inputs a caller must feed (initializers listed as inputs, as old exporters did, are left out). */
  inputs: string[];
  outputs: string[];
  /** Absolute paths of the external-data files its tensors live in, in first-use order. */
  externalFiles: string[];
}

// Field numbers of onnx.proto3 that matter here.
const MODEL_GRAPH = 7;
const GRAPH_INITIALIZER = 5;
const GRAPH_INPUT = 11;
const GRAPH_OUTPUT = 12;
const VALUE_INFO_NAME = 1;
const TENSOR_NAME = 8;
const TENSOR_EXTERNAL_DATA = 13;
const ENTRY_KEY = 1;
const ENTRY_VALUE = 2;

const CHUNK = 1 << 16;
/** Length-delimited fields longer than this (weights) are skipped by seeking, never read. */
const SMALL = 1 << 16;

/** Buffered positional reads over a file, so skipping a gigabyte of weights costs nothing. */
class Reader {
  pos = 0;
  private buf = Buffer.alloc(0);
  private bufStart = 0;

  constructor(private readonly fh: fs.FileHandle, readonly size: number) {}

  private async fill(n: number): Promise<void> {
    if (this.pos >= this.bufStart && this.pos + n <= this.bufStart + this.buf.length) return;
    if (this.pos + n > this.size) throw new Error('unexpected end of file');
    const buf = Buffer.alloc(Math.max(n, Math.min(CHUNK, this.size - this.pos)));
    const { bytesRead } = await this.fh.read(buf, 0, buf.length, this.pos);
    if (bytesRead < n) throw new Error('unexpected end of file');
    this.buf = buf.subarray(0, bytesRead);
    this.bufStart = this.pos;
  }

  async varint(): Promise<number> {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      await this.fill(1);
      const byte = this.buf[this.pos - this.bufStart]!;
      this.pos++;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
    throw new Error('malformed varint');
  }

  async bytes(n: number): Promise<Buffer> {
    await this.fill(n);
    const start = this.pos - this.bufStart;
    this.pos += n;
    return Buffer.from(this.buf.subarray(start, start + n));
  }
}

interface Field {
  field: number;
  wire: number;
  /** Payload length of a length-delimited field. */
  len: number;
}

/**
 * The fields of the message spanning [r.pos, end). After each yield the reader moves past the field,
 * whether or not the consumer read its payload.
 */
async function* fields(r: Reader, end: number): AsyncGenerator<Field> {
  while (r.pos < end) {
    const tag = await r.varint();
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (wire === 0) {
      await r.varint();
      yield { field, wire, len: 0 };
    } else if (wire === 2) {
      const len = await r.varint();
      const start = r.pos;
      if (start + len > end) throw new Error('field runs past its message');
      yield { field, wire, len };
      r.pos = start + len;
    } else if (wire === 1 || wire === 5) {
      r.pos += wire === 1 ? 8 : 4;
    } else {
      throw new Error(`unexpected protobuf wire type ${wire}`);
    }
  }
  if (r.pos !== end) throw new Error('field runs past its message');
}

/** String fields of a small message held in memory: field number → values. */
function smallStrings(buf: Buffer): Map<number, string[]> {
  const out = new Map<number, string[]>();
  let p = 0;
  const varint = () => {
    let v = 0;
    let scale = 1;
    for (;;) {
      if (p >= buf.length) throw new Error('malformed varint');
      const b = buf[p++]!;
      v += (b & 0x7f) * scale;
      if (b < 0x80) return v;
      scale *= 128;
    }
  };
  while (p < buf.length) {
    const tag = varint();
    const wire = tag % 8;
    if (wire === 0) varint();
    else if (wire === 1) p += 8;
    else if (wire === 5) p += 4;
    else if (wire === 2) {
      const len = varint();
      const field = Math.floor(tag / 8);
      out.set(field, [...(out.get(field) ?? []), buf.toString('utf8', p, p + len)]);
      p += len;
    } else throw new Error(`unexpected protobuf wire type ${wire}`);
  }
  return out;
}

async function readInitializer(r: Reader, end: number): Promise<{ name: string; location?: string }> {
  let name = '';
  let location: string | undefined;
  for await (const f of fields(r, end)) {
    if (f.wire !== 2 || f.len > SMALL) continue;
    if (f.field === TENSOR_NAME) name = (await r.bytes(f.len)).toString('utf8');
    else if (f.field === TENSOR_EXTERNAL_DATA) {
      const entry = smallStrings(await r.bytes(f.len));
      if (entry.get(ENTRY_KEY)?.[0] === 'location') location = entry.get(ENTRY_VALUE)?.[0];
    }
  }
  return { name, location };
}

/**
 * Input and output names and external-data files of an ONNX model, from a scan of its protobuf that
 * seeks over the weights: classifying a 1 GB export takes a few small reads, not a session.
 */
export async function readOnnxHeader(file: string): Promise<OnnxHeader> {
  const fh = await openToRead(file, 'the model');
  try {
    const r = new Reader(fh, (await fh.stat()).size);
    const inputs: string[] = [];
    const outputs: string[] = [];
    const initializers = new Set<string>();
    const external: string[] = [];
    let graphs = 0;
    for await (const m of fields(r, r.size)) {
      if (m.field !== MODEL_GRAPH || m.wire !== 2) continue;
      graphs++;
      for await (const g of fields(r, r.pos + m.len)) {
        if (g.wire !== 2) continue;
        if (g.field === GRAPH_INPUT || g.field === GRAPH_OUTPUT) {
          if (g.len > SMALL) throw new Error('oversized graph input/output entry');
          const name = smallStrings(await r.bytes(g.len)).get(VALUE_INFO_NAME)?.[0] ?? '';
          (g.field === GRAPH_INPUT ? inputs : outputs).push(name);
        } else if (g.field === GRAPH_INITIALIZER) {
          const init = await readInitializer(r, r.pos + g.len);
          initializers.add(init.name);
          if (init.location !== undefined) {
            const abs = path.resolve(path.dirname(file), init.location);
            if (!external.includes(abs)) external.push(abs);
          }
        }
      }
    }
    if (graphs !== 1) throw new Error(graphs === 0 ? 'no graph' : 'several graphs');
    return { inputs: inputs.filter((n) => !initializers.has(n)), outputs, externalFiles: external };
  } catch (err) {
    if (err instanceof Img2PromptError) throw err;
    throw new Img2PromptError(file, `not a readable ONNX model: ${errorMessage(err)}`, { code: 'FILE_INVALID', cause: err });
  } finally {
    await fh.close();
  }
}
