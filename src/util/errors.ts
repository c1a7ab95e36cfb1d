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
