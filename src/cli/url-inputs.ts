/**
 * The URL images of a command, downloaded before its engine runs: each to `<spool>/<id><ext>` (a
 * private temp folder, or the folder a resumable run names), with bounded concurrency (image/url-fetch.ts), so the engine reads them as files
 * and memory holds one network chunk per download, not the images. (predict draws its modality-gap
 * sample from its whole list and fingerprints it for --resume, so the bytes cannot be fetched lazily
 * batch by batch without changing them.) A URL that could not be fetched has no file: the engine
 * reports it unreadable, as a missing file, and `reportAs` puts the download's own reason in the
 * failure. The engine's list names each URL image by its URL, so every message names what the user gave.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ImageFailure } from '../image/batch-loader.js';
import type { ImageListFile } from '../image/image-list-file.js';
import { mappedImageList, type ImageList } from '../image/image-list.js';
import { DEFAULT_FETCH_CONCURRENCY, fetchToFile, inOrderAhead, isImageUrl, type UrlFetchOptions } from '../image/url-fetch.js';
import type { CliContext } from './context.js';

export interface DownloadedImages {
  /** The command's images in input order, each URL read from its downloaded file (and still named by its URL). */
  list: ImageList;
  /** URLs that could not be fetched. */
  failed: number;
  /** A failure as the user should see it: the download's reason for a URL that could not be fetched. */
  reportAs(failure: ImageFailure): ImageFailure;
  /** Removes the downloads (for a kept spool: call it once the run's outputs are in place). */
  close(): Promise<void>;
}

/**
 * Where a resumable run (predict's checkpoint) keeps its downloads: a fixed folder, kept when the run
 * fails, whose whole files a resumed run takes as they are (not fetched again). Their mtime is set to
 * the epoch, so a file fetched again with the same bytes fingerprints alike (predict/input-fingerprint.ts).
 */
export interface KeptSpool {
  dir: string;
}

/** URLs taken from the list at a time: the downloads in flight come from one window. */
const WINDOW = 4096;

/**
 * Downloads the URLs among the inputs of `list`; a list without a URL comes back as it is, and nothing
 * is written.
 */
export async function downloadUrlImages(cli: CliContext, list: ImageListFile, options: UrlFetchOptions, kept?: KeptSpool): Promise<DownloadedImages> {
  let urlCount = 0;
  for await (const source of list) if (isImageUrl(source)) urlCount++;
  if (urlCount === 0) return { list, failed: 0, reportAs: (f) => f, close: async () => undefined };
  let spool: string;
  if (kept) {
    spool = kept.dir;
    await fs.mkdir(spool, { recursive: true });
  } else {
    spool = await fs.mkdtemp(path.join(os.tmpdir(), 'img2prompt-urls-'));
  }
  // The extension is kept: it decides, as for a file, whether an SVG may be read (--allow-svg).
  const fileOf = (url: string) => path.join(spool, `${list.idOf(url)}${path.posix.extname(safeLastSegment(url))}`);
  let reused = 0;
  const reasonOf = new Map<string, string>();
  const bar = cli.progress('download', urlCount, 'images');
  let done = 0;
  try {
    const work = async (url: string) => {
      const file = fileOf(url);
      if (kept && (await fs.stat(file).catch(() => undefined))?.isFile()) {
        reused++;
        bar.update(++done);
        return;
      }
      const reason = await fetchToFile(url, file, options);
      if (kept && reason === undefined) await fs.utimes(file, 0, 0);
      if (reason !== undefined) reasonOf.set(url, reason);
      bar.update(++done);
    };
    for (let start = 0; start < list.length; start += WINDOW) {
      const urls = (await list.sources(start, start + WINDOW)).filter(isImageUrl);
      for await (const _ of inOrderAhead(urls, work, options.concurrency ?? DEFAULT_FETCH_CONCURRENCY));
    }
  } catch (err) {
    if (!kept) await fs.rm(spool, { recursive: true, force: true });
    throw err;
  } finally {
    bar.stop();
  }
  const fromEarlier = reused > 0 ? ` (${reused} kept from an earlier run in ${spool})` : '';
  cli.err(`downloaded ${urlCount - reasonOf.size} of ${urlCount} URL images${fromEarlier}\n`);
  return {
    list: mappedImageList(list, (input) => (isImageUrl(input.label) ? { ...input, file: fileOf(input.label) } : input)),
    failed: reasonOf.size,
    reportAs: (f) => (reasonOf.has(f.file) ? { file: f.file, reason: reasonOf.get(f.file)! } : f),
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
