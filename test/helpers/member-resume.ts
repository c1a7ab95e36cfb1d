import { expect } from 'vitest';
import type { PredictEngine } from '../../src/predict/engine.js';

/**
 * Runs `inputs` with a checkpoint through an engine opened on `first` (each result checked by
 * `check`), then resumes it with an engine opened on `other` and expects the resume refused with
 * `refusal`: a checkpoint must never mix vectors of two different member models.
 */
export async function expectResumeRefusedWithOtherMember(
  open: (file: string) => Promise<PredictEngine>,
  files: { first: string; other: string },
  run: { inputs: string[]; checkpoint: string; check: (members: Partial<Record<string, Float32Array>>) => void },
  refusal: RegExp,
): Promise<void> {
  const engine = await open(files.first);
  try {
    for await (const r of engine.run(run.inputs, { checkpoint: run.checkpoint })) run.check(r.members);
  } finally {
    engine.close();
  }
  const again = await open(files.other);
  try {
    const resume = async () => {
      for await (const r of again.run(run.inputs, { checkpoint: run.checkpoint, resume: true })) void r;
    };
    await expect(resume()).rejects.toThrow(refusal);
  } finally {
    again.close();
  }
}
