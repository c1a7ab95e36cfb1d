/**
 * The predict API's options, checked in one place through the one options reader (util/options.ts):
 * the engine's (what to open) and a run's (how to go through a list). `predict()` takes both in one
 * object and hands each half to its checker, so every door gives the same messages; keys of the
 * engine half next to an opened `engine` are refused, since they could not take effect.
 */
import { EXIF_MODES } from '../image/decode.js';
import { CLIP_IMAGE_PROCESSORS } from '../image/image-processor.js';
import { INTERROGATE_MODES } from '../interrogate/types.js';
import { readOptions, type OptionsReader } from '../util/options.js';
import { MEMBER_NAMES } from './members.js';
import type { PredictEngineOptions, PredictRunOptions } from './types.js';

export const PREDICT_ENGINE_KEYS = [
  'model', 'members', 'weights', 'allowModelMismatch', 'promptsBank', 'dtype', 'labelsDir', 'labels', 'map', 'lambda', 'mode',
  'imageProcessor', 'k', 'temperature', 'onNotice', 'onBankProgress', 'signal', 'captionModel', 'caption',
] as const satisfies readonly (keyof PredictEngineOptions)[];

export const PREDICT_RUN_KEYS = [
  'batchSize', 'checkpoint', 'resume', 'restart', 'gapImages', 'allowSvg', 'exif', 'onProgress',
] as const satisfies readonly (keyof PredictRunOptions)[];

const isAbortSignal = (v: unknown): v is AbortSignal => v instanceof AbortSignal;

/** Reads the engine options (the reader's other keys are left to the caller). */
export function readPredictEngineOptions(o: OptionsReader): PredictEngineOptions {
  return {
    model: o.string('model', { nonEmpty: true }),
    members: o.subsetOf('members', MEMBER_NAMES),
    weights: o.check('weights', (v): v is PredictEngineOptions['weights'] => typeof v === 'string' || (typeof v === 'object' && v !== null && !Array.isArray(v)), 'a weights file name or an EnsembleWeights object'),
    allowModelMismatch: o.bool('allowModelMismatch'),
    promptsBank: o.stringList('promptsBank'),
    dtype: o.oneOf('dtype', ['fp32', 'fp16']),
    labelsDir: o.string('labelsDir', { nonEmpty: true }),
    labels: o.stringList('labels'),
    map: o.string('map', { nonEmpty: true }),
    lambda: o.number('lambda', { min: 0 }),
    mode: o.oneOf('mode', INTERROGATE_MODES),
    imageProcessor: o.oneOf('imageProcessor', CLIP_IMAGE_PROCESSORS),
    k: o.int('k', { min: 1 }),
    temperature: o.number('temperature', { min: 0 }),
    onNotice: o.func('onNotice'),
    onBankProgress: o.func('onBankProgress'),
    signal: o.check('signal', isAbortSignal, 'an AbortSignal'),
    captionModel: o.string('captionModel', { nonEmpty: true }),
    caption: o.object('caption'),
  };
}

/** Reads the run options. */
export function readPredictRunOptions(o: OptionsReader): PredictRunOptions {
  return {
    batchSize: o.int('batchSize', { min: 1 }),
    checkpoint: o.string('checkpoint', { nonEmpty: true }),
    resume: o.bool('resume'),
    restart: o.bool('restart'),
    gapImages: o.int('gapImages', { min: 1 }),
    allowSvg: o.bool('allowSvg'),
    exif: o.oneOf('exif', EXIF_MODES),
    onProgress: o.func('onProgress'),
  };
}

/** `options` checked as the engine options of `call`, refusing any other key. */
export function checkPredictEngineOptions(options: unknown, call: string): PredictEngineOptions {
  const o = readOptions(options, call);
  const out = readPredictEngineOptions(o);
  o.done();
  return out;
}

/** `options` checked as the run options of `call`, refusing any other key. */
export function checkPredictRunOptions(options: unknown, call: string): PredictRunOptions {
  const o = readOptions(options, call);
  const out = readPredictRunOptions(o);
  o.done();
  return out;
}
