import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';

/**
 * What a resumed run compares to tell whether an input image is still the one its checkpoint was made
 * from: the size, the mtime and a fast hash of the size plus the first and last 64 KiB. That reads at
 * most 128 KiB an image (seconds for 20,000 images), covers every byte of a file up to 128 KiB, and
 * the mtime covers the middle of larger ones. Only regular files are read (a FIFO would block).
 */

const EDGE = 64 * 1024;
const CONCURRENCY = 8;

/** [size, mtimeMs, fast hash (16 hex)], or null for an input that is not a readable regular file. */
export type InputFingerprint = [size: number, mtimeMs: number, hash: string] | null;

/** `scratch`: EDGE bytes the caller reuses from file to file (a buffer per file is garbage that piles up on millions). */
async function fingerprintOne(file: string, scratch: Buffer): Promise<InputFingerprint> {
  let fh: fs.FileHandle | undefined;
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) return null;
    fh = await fs.open(file, 'r');
    const hash = createHash('sha256').update(`${stat.size}\n`);
    const { bytesRead } = await fh.read(scratch, 0, Math.min(stat.size, EDGE), 0);
    hash.update(scratch.subarray(0, bytesRead));
    if (stat.size > EDGE) {
      const tailStart = Math.max(EDGE, stat.size - EDGE);
      const got = await fh.read(scratch, 0, stat.size - tailStart, tailStart);
      hash.update(scratch.subarray(0, got.bytesRead));
    }
    return [stat.size, stat.mtimeMs, hash.digest('hex').slice(0, 16)];
  } catch {
    return null; // unreadable now; the run reports it as a failed image
  } finally {
    await fh?.close();
  }
}

/** The fingerprint of bytes held in memory, by the same rule (mtime 0: bytes have none). */
function fingerprintBytes(data: Uint8Array): InputFingerprint {
  const hash = createHash('sha256').update(`${data.length}\n`);
  hash.update(data.subarray(0, Math.min(data.length, EDGE)));
  if (data.length > EDGE) hash.update(data.subarray(Math.max(EDGE, data.length - EDGE)));
  return [data.length, 0, hash.digest('hex').slice(0, 16)];
}

/** Fingerprints of `inputs` (paths, or `{ data }` of bytes), in order, a few files read at a time. */
export async function fingerprintInputs(inputs: readonly (string | { file?: string; data?: Uint8Array })[]): Promise<InputFingerprint[]> {
  const out = new Array<InputFingerprint>(inputs.length);
  let next = 0;
  const worker = async () => {
    const scratch = Buffer.allocUnsafe(EDGE);
    while (next < inputs.length) {
      const i = next++;
      const input = inputs[i]!;
      if (typeof input === 'string') out[i] = await fingerprintOne(input, scratch);
      else out[i] = input.data ? fingerprintBytes(input.data) : await fingerprintOne(input.file!, scratch);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, inputs.length) }, worker));
  return out;
}

/** How an input changed between two fingerprints (undefined when it is the same file content). */
export function inputChange(before: InputFingerprint, now: InputFingerprint): string | undefined {
  if (before === null || now === null) {
    if (before === now) return undefined;
    return before === null ? 'readable now, unreadable before' : 'unreadable now';
  }
  const [size0, mtime0, hash0] = before;
  const [size1, mtime1, hash1] = now;
  if (size0 !== size1) return `size ${size0} → ${size1} bytes`;
  if (hash0 !== hash1) return 'content changed';
  // The fast hash saw every byte of a small file; a larger one changed in the middle shows only by its mtime.
  if (mtime0 !== mtime1 && size1 > 2 * EDGE) return 'modified since (mtime changed)';
  return undefined;
}

/**
 * The inputs' fingerprints of a checkpointed run, one JSON line per input in a file of their own
 * (`<checkpoint>.inputs` once the checkpoint has taken it), with the sha256 of its bytes: the header
 * of a run of a million images holds one hash instead of a 40 MB array. `names` gives the inputs'
 * names again, in order, for a refusal that names the changed ones.
 */
export interface InputContents {
  file: string;
  hash: string;
  names(): AsyncIterable<string>;
}

/** Writes the fingerprints of `inputs` (read `chunk` at a time from `slice`) to `file`. */
export async function writeInputContents(
  file: string, count: number, slice: (start: number, end: number) => Promise<readonly (string | { file?: string; data?: Uint8Array })[]>,
  names: () => AsyncIterable<string>,
): Promise<InputContents> {
  const hash = createHash('sha256');
  const fh = await fs.open(file, 'w');
  try {
    const chunk = 1024;
    let position = 0;
    for (let start = 0; start < count; start += chunk) {
      const prints = await fingerprintInputs(await slice(start, Math.min(count, start + chunk)));
      const text = Buffer.from(prints.map((p) => `${JSON.stringify(p)}\n`).join(''), 'utf8');
      hash.update(text);
      await fh.write(text, 0, text.length, position);
      position += text.length;
    }
  } catch (err) {
    await fh.close();
    await fs.rm(file, { force: true });
    throw err;
  }
  await fh.close();
  return { file, hash: hash.digest('hex'), names };
}

/** The fingerprints stored in a contents file, in order (null for a line that is not one). */
export async function* readInputContents(file: string): AsyncGenerator<InputFingerprint | undefined, void, undefined> {
  const fh = await fs.open(file, 'r');
  try {
    for await (const line of fh.readLines()) {
      try {
        yield JSON.parse(line) as InputFingerprint;
      } catch {
        yield undefined;
      }
    }
  } finally {
    await fh.close();
  }
}
