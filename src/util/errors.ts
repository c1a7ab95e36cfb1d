/**
 * What went wrong, in a form a caller can branch on (the message is for people and may be reworded):
 *
 * - 'BAD_INPUT'        the data handed in is wrong: ids, shapes, values, rows of an input file. The
 *                      default when a throw site names no code.
 * - 'FILE_UNREADABLE'  a file or directory is missing, not a regular file, or cannot be read.
 * - 'FILE_INVALID'     a file was read but is corrupt, truncated or not the format it should be.
 * - 'IMAGE_UNREADABLE' an image cannot be read or decoded (missing, not an image, truncated, too many
 *                      pixels).
 * - 'MODEL_MISSING'    a model is not installed, or its directory lacks a file it needs.
 * - 'MODEL_MISMATCH'   weights, a map, a bank or a checkpoint made for another model (or another
 *                      dimension, tokenizer, architecture) than the one in use.
 * - 'OUTPUT_FAILED'    an output cannot be written (no space, no permission, claimed by another run).
 * - 'RESUME_CONFLICT'  a resume or checkpoint is refused: it belongs to another run, other inputs or
 *                      other settings.
 * - 'DOWNLOAD_FAILED'  a download failed or its bytes do not match the published checksum.
 * - 'RUNTIME_FAILED'   the inference runtime (ONNX Runtime, CUDA libraries) failed or is unavailable.
 */
export type Img2PromptErrorCode =
  | 'BAD_INPUT'
  | 'FILE_UNREADABLE'
  | 'FILE_INVALID'
  | 'IMAGE_UNREADABLE'
  | 'MODEL_MISSING'
  | 'MODEL_MISMATCH'
  | 'OUTPUT_FAILED'
  | 'RESUME_CONFLICT'
  | 'DOWNLOAD_FAILED'
  | 'RUNTIME_FAILED';

export interface Img2PromptErrorOptions {
  /** Default 'BAD_INPUT'. */
  code?: Img2PromptErrorCode;
  cause?: unknown;
}

/**
 * Errors the engine raises on bad input, files and models. The message always reads `<file>: <reason>`
 * so a user scoring a million images can tell which file to look at from one line of output; `code`
 * says which kind of problem it is (see Img2PromptErrorCode).
 */
export class Img2PromptError extends Error {
  readonly file: string | undefined;
  readonly reason: string;
  readonly code: Img2PromptErrorCode;

  constructor(file: string | undefined, reason: string, options: Img2PromptErrorOptions = {}) {
    super(file ? `${file}: ${reason}` : reason, 'cause' in options ? { cause: options.cause } : undefined);
    this.name = 'Img2PromptError';
    this.file = file;
    this.reason = reason;
    this.code = options.code ?? 'BAD_INPUT';
  }
}

/** Message of any thrown value, without a stack. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The operating system's words for a failed file operation ("no space left on device", "permission
 * denied"), without Node's `ENOSPC: ..., write '/path'` wrapping: the caller names the file itself, and
 * a user reading one line should see the cause, not the syscall.
 */
export function osReason(err: unknown): string {
  const message = errorMessage(err);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code !== 'string' || !message.startsWith(`${code}: `)) return message;
  const text = message.slice(code.length + 2);
  const comma = text.indexOf(', ');
  return comma > 0 ? text.slice(0, comma) : text;
}

/** Short reason for a failed read of a file (`no such file`, `is a directory`, ...), the file being named by the caller. */
export function readErrorReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EISDIR') return 'is a directory, expected a file';
  if (code === 'EACCES') return 'permission denied';
  return osReason(err);
}
