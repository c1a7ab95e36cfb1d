/**
 * Errors the engine raises on bad input. The message always reads `<file>: <reason>` so a user
 * scoring a million images can tell which file to look at from one line of output.
 */
export class Img2PromptError extends Error {
  readonly file: string | undefined;
  readonly reason: string;

  constructor(file: string | undefined, reason: string, options?: { cause?: unknown }) {
    super(file ? `${file}: ${reason}` : reason, options);
    this.name = 'Img2PromptError';
    this.file = file;
    this.reason = reason;
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
