/**
 * Where the files of a CLIP checkpoint directory are: its config and weights, by layout, and which file holds the
 * weights when the directory was not written by this engine (a hub download, a training run's output).
 */
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { SAFETENSORS_EXTENSION } from '../models/weights-file.js';

/** File names in a checkpoint directory, by layout: `torchWeights` is the torch.save form of `weights`. */
export const CLIP_CHECKPOINT_FILES = {
  open_clip: { config: 'open_clip_config.json', weights: 'open_clip_model.safetensors', torchWeights: 'open_clip_pytorch_model.bin' },
  hf: { config: 'config.json', weights: 'model.safetensors', torchWeights: 'pytorch_model.bin', preprocessor: 'preprocessor_config.json' },
} as const;

/** Every weights file name a checkpoint directory is known by, safetensors first (faster and nothing to unpickle). */
export const CLIP_WEIGHTS_FILE_NAMES = [
  CLIP_CHECKPOINT_FILES.open_clip.weights,
  CLIP_CHECKPOINT_FILES.hf.weights,
  CLIP_CHECKPOINT_FILES.open_clip.torchWeights,
  CLIP_CHECKPOINT_FILES.hf.torchWeights,
] as const;

/**
 * Extensions a weights file of any other name may have. `.bin` is left out: beside the two names above it is as
 * often ONNX external data, an optimizer state or pickled training arguments.
 */
const OTHER_WEIGHTS_EXTENSIONS = [[SAFETENSORS_EXTENSION], ['.pt', '.pth']] as const;

/** Whether a file of this name would be taken as the weights of a checkpoint directory holding only it. */
export function isClipWeightsFileName(name: string): boolean {
  return (CLIP_WEIGHTS_FILE_NAMES as readonly string[]).includes(name) || OTHER_WEIGHTS_EXTENSIONS.flat().some((e) => name.endsWith(e));
}

/**
 * The weights file of a checkpoint directory: one of the known names, else its only .safetensors file, else its
 * only .pt/.pth file (an open_clip training checkpoint such as epoch_32.pt); undefined when there is none.
 */
export async function findClipWeightsFile(dir: string): Promise<string | undefined> {
  for (const name of CLIP_WEIGHTS_FILE_NAMES) {
    if (existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  let entries: string[];
  try {
    entries = await fs.readdir(dir);
  } catch (err) {
    throw new Img2PromptError(dir, `cannot read CLIP checkpoint directory: ${errorMessage(err)}`, { code: 'FILE_UNREADABLE', cause: err });
  }
  for (const extensions of OTHER_WEIGHTS_EXTENSIONS) {
    const candidates = entries.filter((e) => extensions.some((x) => e.endsWith(x))).sort();
    if (candidates.length === 1) return path.join(dir, candidates[0]!);
    if (candidates.length > 1) {
      throw new Img2PromptError(dir, `several weights files (${candidates.join(', ')}); expected one, or one of ${CLIP_WEIGHTS_FILE_NAMES.join(', ')}`);
    }
  }
  return undefined;
}
