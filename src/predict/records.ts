/**
 * What a predict run keeps per image, typed: the extras a checkpoint record carries next to the
 * members' vectors, and the outcome of one CLIP batch (which inputs loaded and which failed). The
 * extras are checked once, when a checkpoint line is read (parseRecordMeta), so the code that turns a
 * record into a result reads typed fields, and a resumed image takes exactly the path a fresh one does.
 */
import type { EncodedBatch } from '../clip/model.js';

/** The extras of a checkpoint record. Key order is the order written (it is part of the record's hash). */
export interface RecordMeta {
  /** The readable prompt (the interrogator's, else the caption, else the nearest bank prompt). */
  prompt?: string;
  /** The caption, with a caption model. */
  caption?: string;
  /** The bank prompt nearest in CLIP space and its cosine similarity. */
  nearest?: string;
  nearestSimilarity?: number;
  /** Why the image could not be read. */
  failure?: string;
}

/** The extras of a record line as read back, or null when they are not RecordMeta (a line from elsewhere). */
export function parseRecordMeta(x: unknown): RecordMeta | null {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) return null;
  const out: RecordMeta = {};
  for (const [key, value] of Object.entries(x)) {
    if (key === 'prompt' || key === 'caption' || key === 'nearest' || key === 'failure') {
      if (typeof value !== 'string') return null;
      out[key] = value;
    } else if (key === 'nearestSimilarity') {
      if (typeof value !== 'number') return null;
      out.nearestSimilarity = value;
    } else {
      return null;
    }
  }
  return out;
}

/** One CLIP batch of a run, by position: which inputs have an embedding row and why the others failed. */
export interface BatchOutcome {
  /** Embedding row of each input of the batch, in input order; -1 for an input that could not be read. */
  rows: number[];
  /** Why each unreadable input could not be read (undefined where rows[i] >= 0). */
  reasons: (string | undefined)[];
  /** [loaded inputs, clipDim] unit rows. */
  embeds: Float32Array;
}

/** The outcome of an encoded batch whose first input sits at position `start` of the run. */
export function outcomeOf(batch: EncodedBatch, start: number, count: number): BatchOutcome {
  const rows = new Array<number>(count).fill(-1);
  const reasons = new Array<string | undefined>(count).fill(undefined);
  batch.loaded.forEach((position, row) => (rows[position - start] = row));
  for (const f of batch.failures) reasons[f.index - start] = f.reason;
  return { rows, reasons, embeds: batch.embeds };
}

/** How many inputs of an outcome have a row. */
export function loadedCount(outcome: BatchOutcome): number {
  let n = 0;
  for (const r of outcome.rows) if (r >= 0) n++;
  return n;
}
