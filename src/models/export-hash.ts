import { promises as fs, existsSync } from 'node:fs';
import path from 'node:path';
import { Img2PromptError } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { sha256Bytes } from './sha256.js';
import { sameStamp } from './file-stamp.js';
import { stampedHash, type StampedHash } from './built-files.js';

/** One graph of a ready ONNX export: its role in the model (e.g. 'vision'), its file and the external-data files it reads. */
export interface ExportGraphFile {
  role: string;
  file: string;
  externalFiles: readonly string[];
}

/**
 * sha256 identifying a ready export's weights: over every graph and every external-data file they
 * read, so changing any of them changes it. Per-file hashes are remembered by file stamp in the
 * sidecar `sidecarName` in `dir`, so a multi-gigabyte export is hashed once, not at every open.
 * `onRehashed` sees each file that had to be hashed again (its stamp moved), e.g. to check it against
 * the install record.
 */
export async function exportFilesHash(
  dir: string, graphs: readonly ExportGraphFile[], sidecarName: string, onRehashed?: (file: string, sha256: string) => void,
): Promise<string> {
  const sidecar = path.join(dir, sidecarName);
  const known = (await fs.readFile(sidecar, 'utf8').then((s) => JSON.parse(s) as Record<string, StampedHash>).catch(() => ({}))) as Record<string, StampedHash>;
  const next: Record<string, StampedHash> = {};
  const lines: string[] = [];
  for (const g of graphs) {
    for (const file of [g.file, ...g.externalFiles]) {
      const rel = path.relative(dir, file);
      if (!existsSync(file)) throw new Img2PromptError(file, `external data of ${path.basename(g.file)} missing`, { code: 'MODEL_MISSING' });
      const now = await stampedHash(file, known[rel]);
      if (!sameStamp(known[rel], now)) onRehashed?.(file, now.sha256);
      next[rel] = now;
      lines.push(`${g.role} ${rel} ${now.sha256}`);
    }
  }
  if (JSON.stringify(next) !== JSON.stringify(known)) {
    // A read-only model folder just means hashing again next time.
    await writeFileAtomic(sidecar, JSON.stringify(next, null, 2) + '\n').catch(() => {});
  }
  return sha256Bytes(lines.join('\n') + '\n');
}
