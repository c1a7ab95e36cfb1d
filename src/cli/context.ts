/**
 * One run of the CLI: where it writes and how it ends. Commands write through it instead of
 * process.stdout/stderr and say "exit 1" by `fail()` instead of setting process.exitCode, so `main()`
 * can run in-process (tests, a host program) without touching the process's streams or exit code, and
 * two runs at once do not mix their output.
 */
import { bankBuildProgress, createProgress, type Progress, type ProgressStream } from './progress.js';
import type { ImageFailure } from '../image/batch-loader.js';

/** Where one run writes: the process's own streams by default. */
export interface CliIo {
  stdout: ProgressStream;
  stderr: ProgressStream;
}

export class CliContext {
  /** 0 unless a command called fail(); a thrown error decides the code in main() instead. */
  exitCode = 0;

  /**
   * @param args the command line after `img2prompt`, as given (the interrupt hint repeats it).
   */
  constructor(
    readonly io: CliIo,
    readonly args: readonly string[],
  ) {}

  /** Results: what a user pipes on (tables, JSON, paths). */
  out(text: string): void {
    this.io.stdout.write(text);
  }

  /** Everything else: progress, summaries, warnings, per-file failures. */
  err(text: string): void {
    this.io.stderr.write(text);
  }

  /** The command finishes (its outputs are written) but the run ends with exit code 1: something was left out. */
  fail(): void {
    this.exitCode = 1;
  }

  /** A progress display on this run's stderr (see progress.ts for when it draws). */
  progress(label: string, total: number, unit?: string): Progress {
    return createProgress(label, total, unit, { stream: this.io.stderr });
  }

  /** One progress display per label bank being built, on this run's stderr. */
  bankProgress(): ReturnType<typeof bankBuildProgress> {
    return bankBuildProgress({ stream: this.io.stderr });
  }

  /** `img2prompt: <file>: <reason>` on stderr: one image that could not be read. */
  reportImageFailure(failure: ImageFailure): void {
    this.err(`img2prompt: ${failure.file}: ${failure.reason}\n`);
  }
}
