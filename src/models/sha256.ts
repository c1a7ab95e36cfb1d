import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** True for a lowercase 64-digit hex SHA-256, the only spelling manifests and install records use. */
export function isSha256Hex(value: unknown): value is string {
  return typeof value === 'string' && SHA256_HEX.test(value);
}

/** SHA-256 of an in-memory buffer, lowercase hex. */
export function sha256Bytes(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Size and SHA-256 of a file, streamed so a 90 MB weight file never sits in memory whole. */
export async function hashFile(file: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    const buf = chunk as Buffer;
    size += buf.length;
    hash.update(buf);
  }
  return { size, sha256: hash.digest('hex') };
}

/** SHA-256 of a file, lowercase hex. */
export async function sha256File(file: string): Promise<string> {
  return (await hashFile(file)).sha256;
}
