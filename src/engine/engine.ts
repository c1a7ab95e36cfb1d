/**
 * The shape every engine shares (predict, interrogate, and the captioner and server to come): open
 * once with `await XEngine.open(options)` (slow: models, banks, maps), run any number of times with
 * `engine.run(inputs, runOptions)` — an async generator that yields one result per input, in input
 * order, with a per-item `failure` — and free the native sessions with `close()` or `await using`.
 * A closed engine refuses to run with a clear error instead of failing somewhere inside ORT.
 */
import { Img2PromptError } from '../util/errors.js';

export abstract class Engine {
  #closed = false;

  /** The class name messages use ("PredictEngine"). */
  protected abstract readonly engineName: string;

  /** Frees what the engine holds; called once, by the first close(). */
  protected abstract release(): void;

  /** True once close() was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Throws when the engine is closed (`action`: what was attempted, for the message). */
  protected checkOpen(action = 'run'): void {
    if (this.#closed) {
      throw new Img2PromptError(undefined, `cannot ${action}: this ${this.engineName} is closed (open a new one with ${this.engineName}.open())`);
    }
  }

  /** Frees the engine's models and banks. Safe to call twice; a run in progress stops at its next batch. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.release();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}

/** Throws the signal's reason when it is aborted (an AbortError DOMException unless the caller gave one). */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  signal?.throwIfAborted();
}
