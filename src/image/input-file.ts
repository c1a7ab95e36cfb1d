/**
 * One input path, judged before anything reads it. Only regular files (directly or through symbolic
 * links) are read: opening a FIFO or a device blocks or has side effects, so those, sockets,
 * directories, dangling links and link loops are refused from their `stat` alone, each with its own
 * reason. The file is then opened non-blocking and checked again on the open descriptor, so a path
 * swapped for a FIFO between the two steps is refused too instead of hanging the read.
 */
import { constants, promises as fs, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Img2PromptError, errorMessage } from '../util/errors.js';

/** What a path is, from `stat`: a regular file to read, or the reason it is not read. */
export type InputKind = { file: true; size: number } | { file: false; reason: string };

/** Why a non-regular file is not read (undefined for a regular file). */
export function notRegularReason(stats: Stats): string | undefined {
  if (stats.isFile()) return undefined;
  if (stats.isDirectory()) return 'is a directory, not an image file';
  if (stats.isFIFO()) return 'is a named pipe (FIFO), not a regular file: not read';
  if (stats.isSocket()) return 'is a socket, not a regular file: not read';
  if (stats.isCharacterDevice()) return 'is a character device, not a regular file: not read';
  if (stats.isBlockDevice()) return 'is a block device, not a regular file: not read';
  return 'is not a regular file: not read';
}

/** The reason for a failed stat, open or read of `file`, in words (never empty). */
export async function fileErrorReason(file: string, err: unknown): Promise<string> {
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case 'ENOENT': {
      // stat follows links: a link that is there but points nowhere is dangling, not missing.
      const link = await fs.readlink(file).catch(() => undefined);
      return link === undefined ? 'no such file' : `is a dangling symbolic link (its target ${link} does not exist)`;
    }
    case 'ELOOP':
      return 'is a symbolic link loop (too many levels of symbolic links)';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOTDIR':
      return 'no such file (a folder on its path is a file)';
    case 'ENAMETOOLONG':
      return 'file name too long';
    case 'EIO':
      return 'input/output error (EIO): the disk or file system failed to read it';
    case 'ENXIO':
    case 'ENODEV':
      return 'is a device or socket that cannot be read as a file';
    default: {
      const said = errorMessage(err).trim();
      return said ? `cannot read: ${said}` : `cannot read (${e?.code ?? 'unknown error'})`;
    }
  }
}

/** Classifies `file` from `stat` (following links), without opening it. */
export async function classifyInput(file: string): Promise<InputKind> {
  let stats: Stats;
  try {
    stats = await fs.stat(file);
  } catch (err) {
    return { file: false, reason: await fileErrorReason(file, err) };
  }
  const reason = notRegularReason(stats);
  return reason === undefined ? { file: true, size: stats.size } : { file: false, reason };
}

// O_NONBLOCK: should `file` have become a FIFO since it was classified, open returns at once instead
// of waiting for a writer (the descriptor check below then refuses it). Regular files ignore the flag.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

/**
 * The whole content of the regular file `file`. Anything else, an empty file, and failures to open or
 * read it throw an Img2PromptError naming the file and the reason.
 */
export async function readInputFile(file: string): Promise<Buffer> {
  const kind = await classifyInput(file);
  if (!kind.file) throw new Img2PromptError(file, kind.reason, { code: 'IMAGE_UNREADABLE' });
  let handle: FileHandle;
  try {
    handle = await fs.open(file, OPEN_FLAGS);
  } catch (err) {
    throw new Img2PromptError(file, await fileErrorReason(file, err), { code: 'IMAGE_UNREADABLE', cause: err });
  }
  try {
    const opened = notRegularReason(await handle.stat());
    if (opened !== undefined) throw new Img2PromptError(file, opened, { code: 'IMAGE_UNREADABLE' });
    const data = await handle.readFile();
    if (data.length === 0) throw new Img2PromptError(file, 'empty file (0 bytes)', { code: 'IMAGE_UNREADABLE' });
    return data;
  } catch (err) {
    if (err instanceof Img2PromptError) throw err;
    throw new Img2PromptError(file, await fileErrorReason(file, err), { code: 'IMAGE_UNREADABLE', cause: err });
  } finally {
    await handle.close();
  }
}
