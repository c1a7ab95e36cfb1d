/**
 * What fit-weights and eval both learn from: every member's 384-d vector for images with a known
 * prompt, and the MiniLM vectors of those prompts, row for row. Images that cannot be read are
 * reported and left out (`consequence` says of what).
 */
import { embedPrompts } from '../submission/embed-prompts.js';
import { EMBEDDING_DIM } from '../submission/submission-csv.js';
import type { PredictEngine } from '../predict/engine.js';
import { runProgress } from './commands/predict.js';
import { imageBatchSize, parsePositiveInt, type EngineCliOptions } from './options.js';
import type { CliContext } from './context.js';

export interface LabelledPrediction {
  id: string;
  file: string;
  /** The ensemble's prompt where the engine composes one. */
  prompt: string | null;
}

export interface MemberPredictions {
  /** The images that were read, in input order. */
  kept: LabelledPrediction[];
  /** Member name → [kept.length, 384] row-major vectors. */
  predictions: Record<string, Float32Array>;
  /** [kept.length, 384] MiniLM vectors of their true prompts. */
  truth: Float32Array;
}

export async function collectMemberPredictions(
  cli: CliContext, engine: PredictEngine, files: readonly string[], truthOf: ReadonlyMap<string, string>,
  opts: EngineCliOptions, verb: string, consequence: string,
): Promise<MemberPredictions> {
  const kept: (LabelledPrediction & { members: Partial<Record<string, Float32Array>> })[] = [];
  const progress = runProgress(cli, verb);
  try {
    for await (const r of engine.run(files, {
      batchSize: imageBatchSize(opts),
      gapImages: parsePositiveInt('--gap-images', opts.gapImages),
      allowSvg: opts.allowSvg,
      exif: opts.exif,
      onProgress: progress.onProgress,
    })) {
      if (r.failure !== undefined) cli.err(`img2prompt: ${r.file}: ${r.failure} (${consequence})\n`);
      else kept.push({ id: r.id, file: r.file, prompt: r.prompt, members: r.members });
    }
  } finally {
    progress.stop();
  }
  const predictions: Record<string, Float32Array> = {};
  for (const name of engine.members) {
    const m = new Float32Array(kept.length * EMBEDDING_DIM);
    kept.forEach((img, i) => {
      const v = img.members[name];
      if (v) m.set(v, i * EMBEDDING_DIM);
    });
    predictions[name] = m;
  }
  const truth = await embedPrompts(kept.map((k) => ({ imgId: k.id, prompt: truthOf.get(k.id)! })), engine.minilm.embedder);
  return { kept: kept.map(({ id, file, prompt }) => ({ id, file, prompt })), predictions, truth };
}
