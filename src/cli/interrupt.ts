import { removeLiveTempsSync } from '../util/atomic-write.js';
import { releaseHeldLocksSync } from '../util/file-lock.js';

/** Exit codes of a run stopped by a signal: 128 + the signal's number, as a shell reports it. */
const SIGNAL_EXIT: Record<'SIGINT' | 'SIGTERM', number> = { SIGINT: 130, SIGTERM: 143 };

let hint: (() => string | undefined) | undefined;

/** What to tell a user who stops the current command (e.g. how to resume it); replaces any earlier hint. */
export function setInterruptHint(make: () => string | undefined): void {
  hint = make;
}

/**
 * Ctrl-C (or a plain kill) stops the CLI at once, but not before it removes the temps of the files it
 * was writing and drops its output locks, so it leaves no hidden `.tmp` file and does not block the
 * next run; it then says how to continue, if the command can, and exits 128 + the signal's number.
 * Resume files (checkpoints, partial banks) are kept: they are what a later run continues from.
 * Installed once per process, by the executable's run (main() without an `io`) only.
 */
const installed = new Map<NodeJS.Signals, () => void>();

export function installInterruptHandlers(): void {
  if (installed.size > 0) return;
  for (const signal of Object.keys(SIGNAL_EXIT) as (keyof typeof SIGNAL_EXIT)[]) {
    const handler = () => {
      removeLiveTempsSync();
      releaseHeldLocksSync();
      let text: string | undefined;
      try {
        text = hint?.();
      } catch {
        text = undefined;
      }
      // On a terminal a progress bar may own the current line.
      process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}img2prompt: interrupted${text ? `; ${text}` : ''}\n`);
      process.exit(SIGNAL_EXIT[signal]);
    };
    installed.set(signal, handler);
    process.once(signal, handler);
  }
}

/**
 * Takes SIGINT and SIGTERM back from the handlers above, for a command that stops gracefully on its
 * own (serve: stop accepting, finish in-flight requests, exit 0).
 */
export function releaseInterruptHandlers(): void {
  for (const [signal, handler] of installed) process.removeListener(signal, handler);
  installed.clear();
}

/** A shell word for `arg`: as is when it is plainly safe, else single-quoted. */
function shellWord(arg: string): string {
  return /^[A-Za-z0-9_./=:,+@%-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** The command line `args` (those after `img2prompt`) as a user would type it again, with `edit` applied to them. */
export function commandLine(args: readonly string[], edit: (args: string[]) => string[] = (a) => a): string {
  return ['img2prompt', ...edit([...args])].map(shellWord).join(' ');
}
