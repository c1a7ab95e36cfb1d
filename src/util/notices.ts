/**
 * What the library tells its user without stopping: a damaged cached file rebuilt, CUDA asked for but
 * not usable, ... Library code never writes to stderr itself. The CLI listens and prints each notice on
 * stderr; a program using the library can listen too. With nobody listening a notice becomes a
 * process warning (`process.emitWarning`), so it is never silently dropped.
 */

export type NoticeListener = (message: string) => void;

const listeners = new Set<NoticeListener>();

/** Calls `listener` with every notice from now on; returns the function that stops it. */
export function onNotice(listener: NoticeListener): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

export function notice(message: string): void {
  if (listeners.size === 0) {
    process.emitWarning(message, 'Img2PromptWarning');
    return;
  }
  for (const listener of listeners) listener(message);
}
