/**
 * The predict front door: `predict(images, options)` streams one result per image, opening a
 * PredictEngine for the call (or using an opened one) and closing what it opened. The engine is in
 * engine.ts, its run loop in run.ts, the options and results in types.ts.
 */
import type { ImageList } from '../image/image-list.js';
import type { ImageInput } from '../image/image-input.js';
import { PredictEngine } from './engine.js';
import { readOptions } from '../util/options.js';
import { PREDICT_ENGINE_KEYS, readPredictEngineOptions, readPredictRunOptions } from './options.js';
import type { PredictEngineOptions, PredictRunOptions, PredictedImage } from './types.js';

export { PredictEngine } from './engine.js';
export { DEFAULT_CLIP_MODEL } from '../clip/model.js';
export { DEFAULT_BATCH_SIZE, DEFAULT_GAP_IMAGES } from './types.js';
export type { PredictEngineOptions, PredictPhase, PredictRunOptions, PredictedImage } from './types.js';

export type PredictOptions = PredictRunOptions & PredictEngineOptions & { engine?: PredictEngine };

/**
 * Predicts the prompt vector of every image in `images` (file paths), streaming one result per image
 * in input order. Opens the models (or uses `options.engine`), the prompt bank and the label banks
 * (building their caches when needed), the map (fitting it when missing) and the weights. An image
 * that cannot be read comes out with its reason and the fallback vector; the run goes on.
 *
 * @example
 * ```ts
 * import { predict, writeSubmission, type PredictedImage } from 'img2prompt';
 *
 * const results: PredictedImage[] = [];
 * for await (const r of predict(['images/a.png', 'images/b.png'], { model: 'clip-vit-b-32' })) {
 *   console.log(r.id, r.prompt, r.failure ?? '');   // one result per image, in input order
 *   results.push(r);
 * }
 * const vectors = new Float32Array(results.length * 384); // each r.vector: [384] unit, MiniLM space
 * results.forEach((r, i) => vectors.set(r.vector, i * 384));
 * await writeSubmission('submission.csv', results.map((r) => r.id), vectors);
 * ```
 * @throws {Img2PromptError} before the first result, naming the file and the fix, when a model is not
 *   installed, a weights, map or prompt-bank file is unreadable, or two images share an id.
 */
export async function* predict(images: Iterable<ImageInput> | ImageList, options: PredictOptions = {}): AsyncGenerator<PredictedImage, void, undefined> {
  const o = readOptions(options, 'predict()');
  const given = o.check('engine', (v): v is PredictEngine => v instanceof PredictEngine, 'an opened PredictEngine');
  if (given) o.refuse(PREDICT_ENGINE_KEYS, 'with an opened engine (pass it to PredictEngine.open())');
  const engineOptions = readPredictEngineOptions(o);
  const runOptions = readPredictRunOptions(o);
  o.done();
  const engine = given ?? (await PredictEngine.openChecked(engineOptions));
  try {
    yield* engine.runChecked(images, runOptions, 'predict()');
  } finally {
    if (!given) engine.close();
  }
}
