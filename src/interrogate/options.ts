/**
 * The interrogate API's options, checked in one place through the one options reader
 * (util/options.ts): the engine's (what to open) and a run's (how to interrogate a list). As for
 * predict, `interrogate()` hands each half to its checker and refuses engine keys next to an engine.
 */
import { EXIF_MODES } from '../image/decode.js';
import { CLIP_IMAGE_PROCESSORS } from '../image/image-processor.js';
import { readOptions, type OptionsReader } from '../util/options.js';
import { INTERROGATE_MODES } from './types.js';
import type { InterrogateEngineOptions, InterrogateRunOptions } from './run-types.js';

export const INTERROGATE_ENGINE_KEYS = [
  'model', 'imageProcessor', 'labelsDir', 'labels', 'dtype', 'onBank', 'onChunk', 'onBankProgress', 'onNotice', 'signal', 'captionModel',
] as const satisfies readonly (keyof InterrogateEngineOptions)[];

const isAbortSignal = (v: unknown): v is AbortSignal => v instanceof AbortSignal;

export function readInterrogateEngineOptions(o: OptionsReader): InterrogateEngineOptions {
  return {
    model: o.string('model', { nonEmpty: true }),
    imageProcessor: o.oneOf('imageProcessor', CLIP_IMAGE_PROCESSORS),
    labelsDir: o.string('labelsDir', { nonEmpty: true }),
    labels: o.stringList('labels'),
    dtype: o.oneOf('dtype', ['fp32', 'fp16']),
    onBank: o.func('onBank'),
    onChunk: o.func('onChunk'),
    onBankProgress: o.func('onBankProgress'),
    onNotice: o.func('onNotice'),
    signal: o.check('signal', isAbortSignal, 'an AbortSignal'),
    captionModel: o.string('captionModel', { nonEmpty: true }),
  };
}

export function readInterrogateRunOptions(o: OptionsReader): InterrogateRunOptions {
  return {
    mode: o.oneOf('mode', INTERROGATE_MODES),
    batchSize: o.int('batchSize', { min: 1 }),
    maxFlavors: o.int('maxFlavors', { min: 1 }),
    shortlist: o.int('shortlist', { min: 1 }),
    minFlavors: o.int('minFlavors', { min: 0 }),
    score: o.bool('score'),
    chainCache: o.bool('chainCache'),
    allowSvg: o.bool('allowSvg'),
    exif: o.oneOf('exif', EXIF_MODES),
    caption: o.object('caption'),
    onProgress: o.func('onProgress'),
  };
}

export function checkInterrogateEngineOptions(options: unknown, call: string): InterrogateEngineOptions {
  const o = readOptions(options, call);
  const out = readInterrogateEngineOptions(o);
  o.done();
  return out;
}

export function checkInterrogateRunOptions(options: unknown, call: string): InterrogateRunOptions {
  const o = readOptions(options, call);
  const out = readInterrogateRunOptions(o);
  o.done();
  return out;
}
