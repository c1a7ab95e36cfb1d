import { Img2PromptError } from '../util/errors.js';
import type { IoNames } from '../clip/tower-io.js';

/**
 * The interface of a ready captioner export, as BLIP's is commonly published (a vision encoder and a
 * text decoder, the decoder optionally "merged" with its cached branch):
 *   image graph:   pixel_values → last_hidden_state [images, tokens, width]
 *   decoder graph: input_ids, encoder_hidden_states [, attention_mask] [, encoder_attention_mask]
 *                  [, past_key_values.{i}.key / .value …] [, use_cache_branch]
 *                  → logits [rows, seq, vocab] [, present.{i}.key / .value …]
 * Graphs are told apart by these names, never by file name. Unlike the graphs built here (which hand
 * each layer's cross-attention keys and values out of the image graph once), such a decoder projects
 * the image tokens again at every step: it works, only slower.
 */

export interface CaptionImageIo {
  role: 'image';
  /** Output holding the image tokens. */
  output: string;
}

export interface CaptionDecoderIo {
  role: 'decoder';
  /** Decoder layers whose keys and values it takes and gives back (0: no cache; each step feeds the whole sequence). */
  cachedLayers: number;
  attentionMask: boolean;
  encoderAttentionMask: boolean;
  /** A merged decoder: `use_cache_branch` picks the branch that reads the past. */
  useCacheBranch: boolean;
}

export type CaptionExportIo = CaptionImageIo | CaptionDecoderIo;

const list = (names: readonly string[]) => (names.length ? names.join(', ') : 'none');
const PAST = /^past_key_values\.(\d+)\.(key|value)$/;
const PRESENT = /^present\.(\d+)\.(key|value)$/;

/** Layers 0..n-1 with both a key and a value among `names` matching `pattern`; -1 when the set has holes. */
function layerCount(names: readonly string[], pattern: RegExp): number {
  const seen = new Map<number, Set<string>>();
  for (const n of names) {
    const m = pattern.exec(n);
    if (!m) continue;
    const layer = Number(m[1]);
    if (!seen.has(layer)) seen.set(layer, new Set());
    seen.get(layer)!.add(m[2]!);
  }
  for (let l = 0; l < seen.size; l++) if (seen.get(l)?.size !== 2) return -1;
  return seen.size;
}

/**
 * What the graph in `file` is in a captioner export, from its input and output names. Throws an
 * Img2PromptError naming the file and the names it has when it is neither part, or a decoder whose
 * cache inputs and outputs do not pair up.
 */
export function classifyCaptionGraph(file: string, io: IoNames): CaptionExportIo {
  const has = `(inputs: ${list(io.inputs)}; outputs: ${list(io.outputs)})`;
  if (io.inputs.includes('pixel_values') && !io.inputs.includes('input_ids')) {
    const output = io.outputs.includes('last_hidden_state') ? 'last_hidden_state' : undefined;
    if (!output) throw new Img2PromptError(file, `an image graph without a last_hidden_state output ${has}`, { code: 'FILE_INVALID' });
    return { role: 'image', output };
  }
  if (io.inputs.includes('input_ids') && io.inputs.includes('encoder_hidden_states')) {
    if (!io.outputs.includes('logits')) throw new Img2PromptError(file, `a text decoder without a logits output ${has}`, { code: 'FILE_INVALID' });
    const known = new Set(['input_ids', 'encoder_hidden_states', 'attention_mask', 'encoder_attention_mask', 'use_cache_branch']);
    const unknown = io.inputs.filter((n) => !known.has(n) && !PAST.test(n));
    if (unknown.length) throw new Img2PromptError(file, `a text decoder with inputs this engine does not know how to feed: ${unknown.join(', ')} ${has}`, { code: 'FILE_INVALID' });
    const past = layerCount(io.inputs, PAST);
    const present = layerCount(io.outputs, PRESENT);
    if (past < 0 || present < 0 || (past > 0 && present !== past)) {
      throw new Img2PromptError(file, `a text decoder whose past_key_values inputs and present outputs do not pair up layer by layer ${has}`, { code: 'FILE_INVALID' });
    }
    return {
      role: 'decoder',
      cachedLayers: past,
      attentionMask: io.inputs.includes('attention_mask'),
      encoderAttentionMask: io.inputs.includes('encoder_attention_mask'),
      useCacheBranch: io.inputs.includes('use_cache_branch'),
    };
  }
  throw new Img2PromptError(file, `not part of a captioner export: neither an image graph (pixel_values) nor a text decoder (input_ids + encoder_hidden_states) ${has}`, { code: 'FILE_INVALID' });
}
