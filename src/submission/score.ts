import { promises as fs } from 'node:fs';
import { Img2PromptError, readErrorReason } from '../util/errors.js';
import { readOptions } from '../util/options.js';
import type { TextEmbedder } from '../text/embedder.js';
import { readPromptsCsv } from './prompts-csv.js';
import { EMBEDDING_DIM, SUBMISSION_HEADER, readSubmission } from './submission-csv.js';
import { embedPrompts, type EmbedPromptsOptions } from './embed-prompts.js';
import { stripBom } from './utf8.js';

export type CsvKind = 'prompts' | 'submission';

/**
 * Tell a prompts CSV (`imgId,prompt`, any column order, extra columns allowed) from a submission
 * (`imgId_eId,val`) by the header line; the readers then check the whole file.
 */
export async function detectCsvKind(file: string): Promise<CsvKind> {
  let head: Buffer;
  try {
    const handle = await fs.open(file, 'r');
    try {
      const { buffer, bytesRead } = await handle.read(Buffer.alloc(64 * 1024), 0, 64 * 1024, 0);
      head = buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw new Img2PromptError(file, `cannot read: ${readErrorReason(err)}`, { code: 'FILE_UNREADABLE', cause: err });
  }
  // Lossy decoding is fine for sniffing; the reader that follows rejects invalid UTF-8 with a line number.
  const text = stripBom(head.toString('utf8')).replace(/^(\r?\n)+/, '');
  if (text.trim() === '') throw new Img2PromptError(file, 'empty file', { code: 'FILE_INVALID' });
  const firstLine = text.split(/\r?\n/, 1)[0];
  if (firstLine === SUBMISSION_HEADER) return 'submission';
  const columns = firstLine.split(',').map((c) => c.replace(/^"(.*)"$/, '$1'));
  if (columns.includes('imgId') && columns.includes('prompt')) return 'prompts';
  throw new Img2PromptError(
    file,
    `line 1: unrecognised header ${JSON.stringify(firstLine.slice(0, 80))}: expected "imgId,prompt" (prompts CSV) or "${SUBMISSION_HEADER}" (submission)`, { code: 'FILE_INVALID' },
  );
}

/** An embedder, or a way to open one only if a prompts CSV actually needs embedding. */
export type EmbedderSource = TextEmbedder | (() => Promise<TextEmbedder>);

export interface ImageScore {
  imgId: string;
  /** Cosine similarity of predicted and true vectors; 0 when the prediction is missing. */
  cosine: number;
  missing: boolean;
}

export interface ScoreResult {
  /** Mean cosine over the truth's images (Kaggle's metric). */
  mean: number;
  /** One entry per truth image, in truth order. */
  images: ImageScore[];
  /** Truth ids with no prediction (scored 0). */
  missing: string[];
  /** Predicted ids that are not in the truth (ignored). */
  extra: string[];
  predKind: CsvKind;
  truthKind: CsvKind;
}

interface Embedded {
  ids: string[];
  vectors: Float32Array;
  dim: number;
}

/**
 * Kaggle's metric for a prediction against the truth: the mean over truth images of the cosine between
 * predicted and true embeddings. Either file may be a prompts CSV (embedded with `embedder`) or a
 * submission. An image with no prediction scores 0.
 */
export async function score(
  predFile: string,
  truthFile: string,
  embedder?: EmbedderSource,
  options: EmbedPromptsOptions = {},
): Promise<ScoreResult> {
  // Checked up front: embedPrompts sees them only once a prompts CSV needs embedding.
  const o = readOptions(options, 'score()');
  options = { batchSize: o.int('batchSize', { min: 1 }), onProgress: o.func('onProgress') };
  o.done();
  const predKind = await detectCsvKind(predFile);
  const truthKind = await detectCsvKind(truthFile);
  let opened: TextEmbedder | undefined;
  const getEmbedder = async (): Promise<TextEmbedder> => {
    if (opened) return opened;
    if (!embedder) throw new Img2PromptError(undefined, 'scoring a prompts CSV needs a text embedder');
    opened = typeof embedder === 'function' ? await embedder() : embedder;
    return opened;
  };
  // Both files are read (and so checked) before the slow embedding starts.
  const truthRows = truthKind === 'prompts' ? await readPromptsCsv(truthFile) : undefined;
  const truthSub = truthKind === 'submission' ? await readSubmission(truthFile) : undefined;
  const predRows = predKind === 'prompts' ? await readPromptsCsv(predFile) : undefined;
  const predSub = predKind === 'submission' ? await readSubmission(predFile) : undefined;

  const embed = async (rows: typeof truthRows): Promise<Embedded> => {
    const e = await getEmbedder();
    return { ids: rows!.map((r) => r.imgId), vectors: await embedPrompts(rows!, e, options), dim: e.dim };
  };
  let truth: Embedded;
  let pred: Embedded;
  try {
    truth = truthSub ? { ...truthSub, dim: EMBEDDING_DIM } : await embed(truthRows);
    pred = predSub ? { ...predSub, dim: EMBEDDING_DIM } : await embed(predRows);
  } finally {
    // An embedder this function opened is this function's to release; a caller's stays open.
    if (typeof embedder === 'function') opened?.close?.();
  }
  if (truth.dim !== pred.dim) {
    throw new Img2PromptError(
      predFile,
      `vectors have dimension ${pred.dim} but the truth (${truthFile}) has ${truth.dim}; embed prompts with all-MiniLM-L6-v2 (384-d)`, { code: 'MODEL_MISMATCH' },
    );
  }
  return { ...compare(pred, truth), predKind, truthKind };
}

function compare(pred: Embedded, truth: Embedded): Omit<ScoreResult, 'predKind' | 'truthKind'> {
  const dim = truth.dim;
  const predIndex = new Map(pred.ids.map((id, i) => [id, i]));
  const truthIds = new Set(truth.ids);
  const images: ImageScore[] = [];
  const missing: string[] = [];
  let sum = 0;
  truth.ids.forEach((imgId, t) => {
    const p = predIndex.get(imgId);
    if (p === undefined) {
      missing.push(imgId);
      images.push({ imgId, cosine: 0, missing: true });
      return;
    }
    const c = cosine(pred.vectors, p * dim, truth.vectors, t * dim, dim);
    sum += c;
    images.push({ imgId, cosine: c, missing: false });
  });
  const extra = pred.ids.filter((id) => !truthIds.has(id));
  return { mean: truth.ids.length > 0 ? sum / truth.ids.length : 0, images, missing, extra };
}

/** Cosine in double precision; a zero vector has no direction and scores 0. */
export function cosine(a: Float32Array, aOffset: number, b: Float32Array, bOffset: number, dim: number): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < dim; i++) {
    const x = a[aOffset + i];
    const y = b[bOffset + i];
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  if (na === 0 || nb === 0) return 0;
  return dot / Math.sqrt(na * nb);
}
