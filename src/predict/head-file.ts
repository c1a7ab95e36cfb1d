/**
 * The head file (`fit-head -o head.json`): one JSON document holding the kind, the CLIP and MiniLM
 * models the head was fitted with, how it was fitted, and its weights as base64 of little-endian
 * float32 (exact, and a third the size of decimal text). Sealed with the sha256 of its own content
 * (util/sealed-json.ts), so an edited or damaged file is refused rather than silently used.
 */
import { promises as fs } from 'node:fs';
import { writeFileAtomic } from '../util/atomic-write.js';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { sealJson, sealProblem } from '../util/sealed-json.js';
import type { FittedFor } from './linear-map.js';
import { HEAD_KINDS, PromptHead, type HeadKind, type HeadTraining, type HeadWeights } from './head.js';

/** A head as the engine options give it: the name it joins the ensemble under (`head:NAME`) and its file. */
export interface HeadMemberSpec {
  name: string;
  file: string;
}

const FORMAT = 'img2prompt-head';
const VERSION = 1;

/** What a run expects of a head: the models it runs and the CLIP embedding width. */
export interface HeadExpectation {
  clipModel?: string;
  minilmModel?: string;
  clipDim?: number;
  textDim?: number;
}

function encode(a: Float32Array): string {
  const le = new Float32Array(a); // a copy: the bytes of a view may not start at 0
  return Buffer.from(le.buffer).toString('base64');
}

function decode(text: unknown, count: number, what: string, file: string): Float32Array {
  if (typeof text !== 'string') throw new Img2PromptError(file, `head weights ${what} are missing (expected base64 text)`, { code: 'FILE_INVALID' });
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length !== count * 4) {
    throw new Img2PromptError(file, `head weights ${what} hold ${Math.floor(bytes.length / 4)} values, the file's dimensions need ${count}; refit it`, { code: 'FILE_INVALID' });
  }
  const out = new Float32Array(count);
  new Uint8Array(out.buffer).set(bytes);
  for (let i = 0; i < count; i++) {
    if (!Number.isFinite(out[i])) throw new Img2PromptError(file, `head weights ${what} hold a non-finite value at ${i}; refit it`, { code: 'FILE_INVALID' });
  }
  return out;
}

/** Writes `head` to `file` (atomically: a reader never sees half a head). */
export async function saveHead(file: string, head: PromptHead): Promise<void> {
  const w = head.weights;
  const weights = w.kind === 'ridge'
    ? { map: encode(w.map) }
    : { hidden: w.mlp.hidden, w1: encode(w.mlp.w1), b1: encode(w.mlp.b1), w2: encode(w.mlp.w2), b2: encode(w.mlp.b2) };
  const record = sealJson({
    format: FORMAT,
    version: VERSION,
    kind: head.kind,
    fittedFor: head.fittedFor,
    clipDim: head.clipDim,
    textDim: head.textDim,
    training: head.training,
    date: new Date().toISOString(),
    weights,
  });
  await writeFileAtomic(file, `${JSON.stringify(record)}\n`);
}

const positiveInt = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0;

/**
 * Reads a head file. With `expect`, a head fitted for another CLIP or MiniLM model, or for another
 * embedding width, is refused: its weights belong to another embedding space.
 * @throws {Img2PromptError} naming the file and what is wrong with it.
 */
export async function loadHead(file: string, expect: HeadExpectation = {}): Promise<PromptHead> {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    const code = err instanceof SyntaxError ? 'FILE_INVALID' : 'FILE_UNREADABLE';
    throw new Img2PromptError(file, `cannot read head: ${errorMessage(err)}`, { code, cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || parsed.format !== FORMAT) {
    throw new Img2PromptError(file, `not a head file (format ${JSON.stringify(parsed?.format)}, expected "${FORMAT}"): make one with \`img2prompt fit-head\``, { code: 'FILE_INVALID' });
  }
  if (parsed.version !== VERSION) throw new Img2PromptError(file, `head file version ${JSON.stringify(parsed.version)} is not one this version reads (${VERSION}); refit it`, { code: 'FILE_INVALID' });
  const damaged = sealProblem(parsed);
  if (damaged) throw new Img2PromptError(file, `head file: ${damaged}; refit it`, { code: 'FILE_INVALID' });
  const { kind, clipDim, textDim, fittedFor, training } = parsed as { kind: HeadKind; clipDim: number; textDim: number; fittedFor: FittedFor; training: HeadTraining };
  if (!(HEAD_KINDS as readonly unknown[]).includes(kind)) throw new Img2PromptError(file, `unknown head kind ${JSON.stringify(kind)} (known: ${HEAD_KINDS.join(', ')})`, { code: 'FILE_INVALID' });
  if (!positiveInt(clipDim) || !positiveInt(textDim)) throw new Img2PromptError(file, 'head file has bad dimensions', { code: 'FILE_INVALID' });
  if (typeof fittedFor?.clipModel !== 'string' || typeof fittedFor?.minilmModel !== 'string') {
    throw new Img2PromptError(file, 'head file does not say which CLIP and MiniLM models it was fitted with', { code: 'FILE_INVALID' });
  }
  for (const key of ['clipModel', 'minilmModel'] as const) {
    const want = expect[key];
    if (want !== undefined && fittedFor[key] !== want) {
      throw new Img2PromptError(file, `head was fitted for ${key} '${fittedFor[key]}', this run uses '${want}'; fit it again with this model (img2prompt fit-head --model …)`, { code: 'MODEL_MISMATCH' });
    }
  }
  for (const [what, have, want] of [['CLIP', clipDim, expect.clipDim], ['prompt', textDim, expect.textDim]] as const) {
    if (want !== undefined && have !== want) {
      throw new Img2PromptError(file, `head takes ${have}-d ${what} vectors, this run has ${want}-d ones`, { code: 'MODEL_MISMATCH' });
    }
  }
  const raw = parsed.weights as Record<string, unknown> | undefined;
  if (typeof raw !== 'object' || raw === null) throw new Img2PromptError(file, 'head file has no weights', { code: 'FILE_INVALID' });
  let weights: HeadWeights;
  if (kind === 'ridge') {
    weights = { kind, map: decode(raw.map, (clipDim + 1) * textDim, 'map', file) };
  } else {
    const hidden = raw.hidden;
    if (!positiveInt(hidden)) throw new Img2PromptError(file, 'MLP head has no valid hidden size', { code: 'FILE_INVALID' });
    weights = {
      kind,
      mlp: {
        inputDim: clipDim, hidden, outputDim: textDim,
        w1: decode(raw.w1, clipDim * hidden, 'w1', file), b1: decode(raw.b1, hidden, 'b1', file),
        w2: decode(raw.w2, hidden * textDim, 'w2', file), b2: decode(raw.b2, textDim, 'b2', file),
      },
    };
  }
  return new PromptHead(weights, clipDim, textDim, training ?? { images: 0, folds: 0, seed: 0, heldOutCosine: 0 }, fittedFor);
}
