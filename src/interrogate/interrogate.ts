/**
 * The interrogate front door: `interrogate(images, options)` streams one CLIP Interrogator prompt per
 * image, opening an InterrogateEngine for the call (or using an opened one) and closing what it
 * opened. `img2prompt interrogate` is this plus a CSV writer.
 */
import type { ImageList } from '../image/image-list.js';
import { DEFAULT_CLIP_MODEL } from '../clip/model.js';
import type { ImageInput } from '../image/image-input.js';
import { InterrogateEngine } from './engine.js';
import { readOptions } from '../util/options.js';
import { INTERROGATE_ENGINE_KEYS, readInterrogateEngineOptions, readInterrogateRunOptions } from './options.js';
import type { InterrogateEngineOptions, InterrogateRunOptions, InterrogatedImage } from './run-types.js';

export { InterrogateEngine } from './engine.js';
export type { InterrogateEngineOptions, InterrogatePhase, InterrogateRunOptions, InterrogatedImage } from './run-types.js';

/** The model interrogate() opens by default: predict's. */
export const DEFAULT_INTERROGATE_MODEL = DEFAULT_CLIP_MODEL;

export type InterrogateOptions = InterrogateEngineOptions & InterrogateRunOptions & {
  /** An opened engine to use (and leave open) instead of opening one per call. */
  engine?: InterrogateEngine;
};

/**
 * Interrogates every image in `images` (file paths or `{ id, data }` bytes) and streams one result per image, in input order;
 * an image that cannot be read comes out with its `failure` and a null prompt, and the run goes on.
 * Opens the model and banks (or uses `options.engine`) and closes what it opened.
 *
 * @example
 * ```ts
 * import { interrogate, InterrogateEngine } from 'img2prompt';
 *
 * for await (const r of interrogate(['images/a.png'], { model: 'clip-vit-b-32', mode: 'best' })) {
 *   console.log(r.id, r.prompt, r.similarity, r.labels.map((l) => l.label));
 * }
 * // Several calls over one opened model and its label banks:
 * await using engine = await InterrogateEngine.open({ model: 'clip-vit-b-32' });
 * for await (const r of interrogate(['images/b.png'], { engine, mode: 'fast' })) console.log(r.prompt ?? r.failure);
 * ```
 * @throws {Img2PromptError} before the first result, naming the file and the fix, when the model is not
 *   installed or a label list is unreadable; `TypeError`/`Img2PromptError` for an unknown mode or a bad count.
 */
export async function* interrogate(images: Iterable<ImageInput> | ImageList, options: InterrogateOptions = {}): AsyncGenerator<InterrogatedImage, void, undefined> {
  const o = readOptions(options, 'interrogate()');
  const given = o.check('engine', (v): v is InterrogateEngine => v instanceof InterrogateEngine, 'an opened InterrogateEngine');
  if (given) o.refuse(INTERROGATE_ENGINE_KEYS, 'with an opened engine (pass it to InterrogateEngine.open())');
  const engineOptions = readInterrogateEngineOptions(o);
  const runOptions = readInterrogateRunOptions(o);
  o.done();
  const engine = given ?? (await InterrogateEngine.openChecked(engineOptions));
  try {
    yield* engine.runChecked(images, runOptions, 'interrogate()');
  } finally {
    if (!given) engine.close();
  }
}
