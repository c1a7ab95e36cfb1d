/**
 * The URL images of a command, downloaded before its engine runs: each to `<spool>/<id><ext>` (a
 * private temp folder, or the folder a resumable run names), with bounded concurrency (image/url-fetch.ts), so the engine reads them as files
 * and memory holds one network chunk per download, not the images. (The engines take their whole input
 * list up front: predict draws its modality-gap sample from it and fingerprints it for --resume; so the
 * bytes cannot be fetched lazily batch by batch without changing them.) A URL that could not be
 * fetched has no file: the engine reports it unreadable, as a missing file, and `reportAs` puts the URL
 * and the download's own reason back in the failure, so the errors file names what the user gave.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ImageFailure } from '../image/batch-loader.js';
import { DEFAULT_FETCH_CONCURRENCY, fetchToFile, inOrderAhead, isImageUrl, type UrlFetchOptions } from '../image/url-fetch.js';
import type { CliContext } from './context.js';

export interface DownloadedImages {
  /** The command's images in input order, each URL replaced by its downloaded file. */
  files: string[];
  /** URLs that could not be fetched. */
  failed: number;
  /** A failure as the user should see it: the URL instead of its file, the download's reason when it failed. */
  reportAs(failure: ImageFailure): ImageFailure;
  /** What a file of `files` was given as (its URL, or itself). */
  labelOf(file: string): string;
  /** Removes the downloads (for a kept spool: call it once the run's outputs are in place). */
  close(): Promise<void>;
}

const NONE: Omit<DownloadedImages, 'files'> = { failed: 0, reportAs: (f) => f, labelOf: (f) => f, close: async () => undefined };

/**
 * Where a resumable run (predict's checkpoint) keeps its downloads: a fixed folder, kept when the run
 * fails, whose whole files a resumed run takes as they are (not fetched again). Their mtime is set to
 * the epoch, so a file fetched again with the same bytes fingerprints alike (predict/input-fingerprint.ts).
 */
export interface KeptSpool {
  dir: string;
}

/**
 * Downloads the URLs among `inputs` (paired with their `ids`); `inputs` without a URL come back as
 * they are, and nothing is written.
 */
export async function downloadUrlImages(cli: CliContext, inputs: readonly string[], ids: readonly string[], options: UrlFetchOptions, kept?: KeptSpool): Promise<DownloadedImages> {
  const urls = inputs.map((input, i) => ({ input, i })).filter(({ input }) => isImageUrl(input));
  if (urls.length === 0) return { files: [...inputs], ...NONE };
  let spool: string;
  if (kept) {
    spool = kept.dir;
    await fs.mkdir(spool, { recursive: true });
  } else {
    spool = await fs.mkdtemp(path.join(os.tmpdir(), 'img2prompt-urls-'));
  }
  let reused = 0;
  const files = [...inputs];
  const urlOf = new Map<string, string>();
  const reasonOf = new Map<string, string>();
  const bar = cli.progress('download', urls.length, 'images');
  let done = 0;
  try {
    const work = async ({ input, i }: { input: string; i: number }) => {
      // The extension is kept: it decides, as for a file, whether an SVG may be read (--allow-svg).
      const ext = path.posix.extname(safeLastSegment(input));
      const file = path.join(spool, `${ids[i]}${ext}`);
      if (kept && (await fs.stat(file).catch(() => undefined))?.isFile()) {
        reused++;
        bar.update(++done);
        return { file, reason: undefined, input, i };
      }
      const reason = await fetchToFile(input, file, options);
      if (kept && reason === undefined) await fs.utimes(file, 0, 0);
      bar.update(++done);
      return { file, reason, input, i };
    };
    for await (const r of inOrderAhead(urls, work, options.concurrency ?? DEFAULT_FETCH_CONCURRENCY)) {
      files[r.i] = r.file;
      urlOf.set(r.file, r.input);
      if (r.reason !== undefined) reasonOf.set(r.file, r.reason);
    }
  } catch (err) {
    if (!kept) await fs.rm(spool, { recursive: true, force: true });
    throw err;
  } finally {
    bar.stop();
  }
  const fromEarlier = reused > 0 ? ` (${reused} kept from an earlier run in ${spool})` : '';
  cli.err(`downloaded ${urls.length - reasonOf.size} of ${urls.length} URL images${fromEarlier}\n`);
  return {
    files,
    failed: reasonOf.size,
    reportAs: (f) => (urlOf.has(f.file) ? { file: urlOf.get(f.file)!, reason: reasonOf.get(f.file) ?? f.reason } : f),
    labelOf: (f) => urlOf.get(f) ?? f,
    close: () => fs.rm(spool, { recursive: true, force: true }),
  };
}

function safeLastSegment(url: string): string {
  const segment = new URL(url).pathname.split('/').pop() ?? '';
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
