/**
 * One entry point for weight files of either format a checkpoint ships: safetensors, or PyTorch's torch.save
 * files (`.bin`, `.pt`, `.pth`). Both come back in the same in-memory shape, so the code that maps tensors onto a
 * model is the same whichever file it was given.
 */
import { readSafetensors, type SafetensorsFile } from './safetensors.js';
import { readTorchCheckpoint } from './torch-checkpoint.js';

export const SAFETENSORS_EXTENSION = '.safetensors';

/** Any file not named .safetensors is read as a torch.save file (which checks its own format). */
export function readWeightsFile(file: string): Promise<SafetensorsFile> {
  return file.endsWith(SAFETENSORS_EXTENSION) ? readSafetensors(file) : readTorchCheckpoint(file);
}
