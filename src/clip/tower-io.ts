import { Img2PromptError } from '../util/errors.js';

/**
 * The interface a CLIP tower graph must have, ours or a ready export's (the Hugging Face / optimum
 * split): the vision tower maps `pixel_values` to `image_embeds`, the text tower `input_ids` (and
 * optionally `attention_mask`) to `text_embeds`. Other outputs (last_hidden_state, pooler_output, ...)
 * are ignored; a graph without the embeds output is refused rather than guessed at, since its first
 * output is usually the unpooled hidden state.
 */
export const TOWER_NAMES = {
  vision: { inputs: ['pixel_values'], optional: [] as string[], output: 'image_embeds' },
  text: { inputs: ['input_ids'], optional: ['attention_mask'], output: 'text_embeds' },
} as const;

export type TowerKind = keyof typeof TOWER_NAMES;

export interface TowerIo {
  tower: TowerKind;
  /** Output holding the (pooled, projected) embeddings. */
  output: string;
  /** Text tower only: whether the graph takes an attention_mask input. */
  attentionMask: boolean;
}

export interface IoNames {
  inputs: readonly string[];
  outputs: readonly string[];
}

const list = (names: readonly string[]) => (names.length ? names.join(', ') : 'none');

/**
 * Which tower the ONNX graph in `file` is, from its input and output names. Throws an
 * Img2PromptError naming the file and the names it has when it is no usable tower, or not `expected`.
 */
export function classifyTower(file: string, io: IoNames, expected?: TowerKind): TowerIo {
  const has = `(inputs: ${list(io.inputs)}; outputs: ${list(io.outputs)})`;
  const isVision = io.inputs.includes('pixel_values');
  const isText = io.inputs.includes('input_ids');
  if (isVision && isText) {
    throw new Img2PromptError(file, `a combined CLIP graph, not one tower ${has}: use the split export (vision_model.onnx + text_model.onnx)`, { code: 'FILE_INVALID' });
  }
  if (!isVision && !isText) {
    throw new Img2PromptError(file, `not a CLIP tower: no pixel_values or input_ids input ${has}`, { code: 'FILE_INVALID' });
  }
  const tower: TowerKind = isVision ? 'vision' : 'text';
  if (expected && tower !== expected) throw new Img2PromptError(file, `is a CLIP ${tower} tower, expected the ${expected} tower ${has}`, { code: 'MODEL_MISMATCH' });
  const want = TOWER_NAMES[tower];
  const allowed = new Set<string>([...want.inputs, ...want.optional]);
  const unknown = io.inputs.filter((n) => !allowed.has(n));
  if (unknown.length > 0) {
    throw new Img2PromptError(file, `CLIP ${tower} tower with inputs we cannot feed: ${unknown.join(', ')} ${has}`, { code: 'FILE_INVALID' });
  }
  if (!io.outputs.includes(want.output)) {
    throw new Img2PromptError(file, `CLIP ${tower} tower has no ${want.output} output ${has}`, { code: 'FILE_INVALID' });
  }
  return { tower, output: want.output, attentionMask: tower === 'text' && io.inputs.includes('attention_mask') };
}
