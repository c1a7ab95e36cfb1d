/**
 * Where a distributed run lives in Redis. Every run has its own BullMQ queue (so its counts, its failed
 * list and its stalled-job check are its own) and a few plain keys beside it: the run's description,
 * its ids in input order, and its results. All names derive from the run's name, so `push`, the
 * workers, `status` and `collect` on different machines find the same run from `--run NAME` alone.
 */
import { Img2PromptError } from '../util/errors.js';

/** The prefix of every key img2prompt writes (BullMQ's own keys use `bull:` + the queue name). */
const PREFIX = 'img2prompt';

/** The set of run names pushed so far, for a worker started without --run. */
export const RUNS_KEY = `${PREFIX}:runs`;

export interface RunKeys {
  /** The BullMQ queue of the run's chunks. */
  queue: string;
  /** JSON RunSpec (run-spec.ts). */
  spec: string;
  /** List of the run's image ids, in input order (collect writes rows in this order). */
  ids: string;
  /** Hash image id → encoded result (result-codec.ts): a chunk run twice writes the same fields again. */
  results: string;
  /** Hash image id → why it could not be read (its result holds the fallback vector), for status. */
  failures: string;
  /** Hash: what the first worker opened (run-fingerprint.ts); later workers must match it. */
  fingerprint: string;
  /** Hash of timings: the first chunk's start, for images/s and the ETA. */
  clock: string;
}

/** A run name: letters, digits, `.`, `_` and `-` (it becomes part of Redis keys and a queue name). */
export function checkRunName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(name)) {
    throw new Img2PromptError(undefined, `--run must be 1-100 letters, digits, ".", "_" or "-" (starting with a letter or digit), got ${JSON.stringify(name)}`);
  }
  return name;
}

export function runKeys(name: string): RunKeys {
  const base = `${PREFIX}:run:${checkRunName(name)}`;
  return {
    queue: `img2prompt-${name}`,
    spec: `${base}:spec`,
    ids: `${base}:ids`,
    results: `${base}:results`,
    failures: `${base}:failures`,
    fingerprint: `${base}:fingerprint`,
    clock: `${base}:clock`,
  };
}

/** Every plain key of a run (its BullMQ keys are the queue's, removed with it). */
export function runDataKeys(name: string): string[] {
  const k = runKeys(name);
  return [k.spec, k.ids, k.results, k.failures, k.fingerprint, k.clock];
}
