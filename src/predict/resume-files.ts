import { promises as fs } from 'node:fs';
import { Img2PromptError } from '../util/errors.js';
import { contentsFileFor } from './checkpoint.js';
import { gapFileFor } from './gap-file.js';
import { sampleStoreFor } from './gap-sample-store.js';

/** Files a checkpointed run keeps beside its checkpoint; like it, none is needed once the output is written. */
export function resumeFilesFor(checkpoint: string): string[] {
  return [checkpoint, contentsFileFor(checkpoint), `${contentsFileFor(checkpoint)}.new`, gapFileFor(checkpoint), sampleStoreFor(checkpoint)];
}

/** What a run does with the resume files an earlier, interrupted run left: continue from them, or discard them. */
export interface EarlierRunChoice {
  resume?: boolean;
  restart?: boolean;
}

/**
 * Settles the resume files of an earlier run before a new one starts. Resuming keeps them; restarting
 * removes them; doing neither is refused while any exists, because starting over would silently throw
 * away the work the interrupted run saved (minutes to hours of CLIP encoding on a large test set).
 */
export async function settleEarlierRun(checkpoint: string, choice: EarlierRunChoice): Promise<void> {
  if (choice.resume && choice.restart) throw new Img2PromptError(undefined, 'resume and restart exclude each other: choose one');
  if (choice.resume) return;
  const existing: string[] = [];
  for (const file of resumeFilesFor(checkpoint)) {
    if (await fs.lstat(file).then(() => true, () => false)) existing.push(file);
  }
  if (existing.length === 0) return;
  if (choice.restart) {
    for (const file of existing) await fs.rm(file, { force: true });
    return;
  }
  throw new Img2PromptError(existing[0], 'an earlier run of this output was interrupted and its progress is saved here; add --resume to continue it, or --restart to discard it and start over', { code: 'RESUME_CONFLICT' });
}
