import { promises as fs } from 'node:fs';
import path from 'node:path';
import { downloadFile } from '../download.js';
import { hashFile } from '../sha256.js';
import type { HfSource, ManifestFile } from '../manifest.js';
import { hfEndpointVariable } from '../../config.js';

/** Hub base URL: IMG2PROMPT_HF_ENDPOINT, then the standard HF_ENDPOINT (mirrors), then the manifest's. */
export function hfEndpoint(source: HfSource): string {
  return (hfEndpointVariable() ?? source.endpoint).replace(/\/+$/, '');
}

/** `<endpoint>/<repo>/resolve/<revision>/` — the prefix every file URL of this pull shares. */
export function hfResolveBase(source: HfSource, revision = source.revision): string {
  return `${hfEndpoint(source)}/${source.repo}/resolve/${encodeURIComponent(revision)}/`;
}

/** `https://huggingface.co/<repo>/resolve/<revision>/<file>`, each path segment URL-encoded. */
export function hfFileUrl(source: HfSource, file: string, revision = source.revision): string {
  return hfResolveBase(source, revision) + file.split('/').map(encodeURIComponent).join('/');
}

export interface HfFetchOptions {
  revision?: string;
  retries?: number;
  retryDelayMs?: number;
  idleTimeoutMs?: number;
  /** Bytes of all files together (sum of the known sizes; null when a size is unknown). */
  onBytes?: (file: string, received: number, total: number | null) => void;
}

/**
 * Download each manifest file into `dir` (`dir/<path>`, via `dir/<path>.part`), verifying size and
 * SHA-256 where the manifest knows them. Files already complete in `dir` from an earlier,
 * interrupted pull are re-hashed and kept when they still match. Returns the size and hash of each.
 */
export async function fetchFromHuggingFace(
  source: HfSource,
  files: ManifestFile[],
  dir: string,
  opts: HfFetchOptions = {},
): Promise<Map<string, { size: number; sha256: string }>> {
  const total = files.every((f) => f.size !== null) ? files.reduce((s, f) => s + (f.size as number), 0) : null;
  const doneBytes = new Map<string, number>();
  const report = (file: string) => {
    let sum = 0;
    for (const v of doneBytes.values()) sum += v;
    opts.onBytes?.(file, sum, total);
  };

  const hashes = new Map<string, { size: number; sha256: string }>();
  for (const file of files) {
    const dest = path.join(dir, ...file.path.split('/'));
    await fs.mkdir(path.dirname(dest), { recursive: true });
    const reused = await reuseCompleted(dest, file);
    if (reused) {
      hashes.set(file.path, reused);
      doneBytes.set(file.path, reused.size);
      report(file.path);
      continue;
    }
    const result = await downloadFile({
      url: hfFileUrl(source, file.path, opts.revision),
      dest,
      expectedSize: file.size,
      expectedSha256: file.sha256,
      retries: opts.retries,
      retryDelayMs: opts.retryDelayMs,
      idleTimeoutMs: opts.idleTimeoutMs,
      onProgress: (received) => {
        doneBytes.set(file.path, received);
        report(file.path);
      },
    });
    hashes.set(file.path, { size: result.size, sha256: result.sha256 });
  }
  return hashes;
}

/** A finished file from an earlier attempt, if it still matches the manifest; otherwise it is removed. */
async function reuseCompleted(dest: string, file: ManifestFile): Promise<{ size: number; sha256: string } | undefined> {
  const exists = await fs.stat(dest).then((s) => s.isFile(), () => false);
  if (!exists) return undefined;
  const actual = await hashFile(dest);
  const sizeOk = file.size === null || actual.size === file.size;
  const shaOk = file.sha256 === null || actual.sha256 === file.sha256;
  if (sizeOk && shaOk) return actual;
  await fs.rm(dest, { force: true });
  return undefined;
}
