/**
 * The metadata_props of an ONNX model file (ModelProto field 14: key/value strings an exporter may
 * attach, e.g. `onnx.helper.set_model_props`). The native session does not hand them out, so they are
 * read here from the file's top-level protobuf fields. Only the fields' headers are read: the graph,
 * which holds the weights and can be gigabytes, is stepped over by its length, never loaded.
 */
import { Img2PromptError } from '../util/errors.js';
import { openToRead } from '../util/open-to-read.js';

const METADATA_PROPS = 14;
const ENTRY_KEY = 1;
const ENTRY_VALUE = 2;
/** A metadata entry larger than this is not a description anyone wrote by hand: it is skipped. */
const MAX_ENTRY_BYTES = 1 << 20;

/** A protobuf varint at `pos` of `bytes` → [value, next position]; arithmetic, not bit operations, so values past 2^31 stay exact. */
function varint(bytes: Uint8Array, pos: number, label: string): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= bytes.length) throw new Img2PromptError(label, 'not an ONNX model: the file ends inside a field header', { code: 'FILE_INVALID' });
    const b = bytes[pos++]!;
    value += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) return [value, pos];
    scale *= 128;
  }
  throw new Img2PromptError(label, 'not an ONNX model: a field header is malformed', { code: 'FILE_INVALID' });
}

/** The key/value pairs of one StringStringEntryProto. */
function entryOf(bytes: Uint8Array, label: string): [string, string] {
  let key = '';
  let value = '';
  let pos = 0;
  const text = new TextDecoder();
  while (pos < bytes.length) {
    const [tag, afterTag] = varint(bytes, pos, label);
    if ((tag & 7) !== 2) throw new Img2PromptError(label, 'not an ONNX model: a metadata entry is malformed', { code: 'FILE_INVALID' });
    const [length, start] = varint(bytes, afterTag, label);
    const field = bytes.subarray(start, start + length);
    if (tag >>> 3 === ENTRY_KEY) key = text.decode(field);
    else if (tag >>> 3 === ENTRY_VALUE) value = text.decode(field);
    pos = start + length;
  }
  return [key, value];
}

/** The model's metadata_props as a map (empty when it has none). */
export async function readOnnxMetadata(file: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const handle = await openToRead(file, 'the model');
  try {
    const size = (await handle.stat()).size;
    const header = new Uint8Array(20);
    let pos = 0;
    while (pos < size) {
      const { bytesRead } = await handle.read(header, 0, header.length, pos);
      const [tag, afterTag] = varint(header.subarray(0, bytesRead), 0, file);
      const wire = tag % 8;
      let next: number;
      let body: [number, number] | undefined;
      if (wire === 0) next = pos + varint(header.subarray(0, bytesRead), afterTag, file)[1];
      else if (wire === 1) next = pos + afterTag + 8;
      else if (wire === 5) next = pos + afterTag + 4;
      else if (wire === 2) {
        const [length, start] = varint(header.subarray(0, bytesRead), afterTag, file);
        body = [pos + start, length];
        next = pos + start + length;
      } else {
        throw new Img2PromptError(file, `not an ONNX model: field wire type ${wire} at byte ${pos}`, { code: 'FILE_INVALID' });
      }
      if (next > size) throw new Img2PromptError(file, 'not an ONNX model: a field runs past the end of the file', { code: 'FILE_INVALID' });
      if (Math.floor(tag / 8) === METADATA_PROPS && body && body[1] <= MAX_ENTRY_BYTES) {
        const bytes = new Uint8Array(body[1]);
        await handle.read(bytes, 0, body[1], body[0]);
        const [key, value] = entryOf(bytes, file);
        out.set(key, value);
      }
      pos = next;
    }
  } finally {
    await handle.close();
  }
  return out;
}
