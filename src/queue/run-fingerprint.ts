/**
 * What a worker opened for a run, compared across workers. The model identities checked before opening
 * (model-identity.ts) cover the weights; this covers everything else that changes a result once the
 * engine is open: the prompt bank and label lists as read on this machine, the map's weights, the
 * ONNX members, the tower precision and the execution provider (fp16 on a GPU and fp32 on a CPU give
 * other bits). The first worker pins it (HSETNX); a later worker that differs refuses the run, naming
 * what differs, rather than mixing rows of two different computations in one submission.
 */
import { Img2PromptError } from '../util/errors.js';
import { DEFAULT_GAP_IMAGES, type PredictEngine } from '../predict/predict.js';
import type { RedisClient } from './redis-connection.js';
import { runKeys } from './run-keys.js';
import type { RunSpec } from './run-spec.js';

export function engineFingerprint(engine: PredictEngine, spec: RunSpec): Record<string, unknown> {
  return {
    models: engine.modelIds,
    options: engine.fingerprintOptions(spec.run.batchSize, spec.run.gapImages ?? DEFAULT_GAP_IMAGES, spec.run.exif),
    precision: engine.clip.precision ?? 'export',
    provider: engine.clip.provider,
  };
}

/** Pins `fingerprint` as the run's when no worker did yet; throws (MODEL_MISMATCH) when the pinned one differs. */
export async function pinFingerprint(redis: RedisClient, run: string, fingerprint: Record<string, unknown>, worker: string): Promise<void> {
  const key = runKeys(run).fingerprint;
  const ours = JSON.stringify(fingerprint);
  await redis.hsetnx(key, 'value', ours);
  await redis.hsetnx(key, 'by', worker);
  const [pinned, by] = await redis.hmget(key, 'value', 'by');
  if (pinned === null || pinned === ours) return;
  const theirs = JSON.parse(pinned) as Record<string, unknown>;
  const differ = Object.keys({ ...theirs, ...fingerprint }).filter((k) => JSON.stringify(theirs[k]) !== JSON.stringify(fingerprint[k]));
  const detail = differ.map((k) => `${k}: ${JSON.stringify(theirs[k])} there, ${JSON.stringify(fingerprint[k])} here`).join('; ');
  throw new Img2PromptError(undefined,
    `refusing run "${run}": this worker would compute it differently from ${by ?? 'the first worker'} (${detail}); give every worker the same models, files and kind of device`,
    { code: 'MODEL_MISMATCH' });
}
