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
import { isEnsembleMemberName, MEMBER_NAMES, onnxMemberNameProblem, type EnsembleMemberName } from './members.js';
import type { OnnxMemberSpec } from './onnx-member.js';
import type { PredictEngineOptions, PredictRunOptions } from './types.js';

export const PREDICT_ENGINE_KEYS = [
  'model', 'members', 'onnxMembers', 'heads', 'weights', 'allowModelMismatch', 'promptsBank', 'dtype', 'labelsDir', 'labels', 'map', 'lambda', 'mode',
  'imageProcessor', 'k', 'temperature', 'onNotice', 'onBankProgress', 'signal', 'captionModel', 'caption',
] as const satisfies readonly (keyof PredictEngineOptions)[];

export const PREDICT_RUN_KEYS = [
  'batchSize', 'checkpoint', 'resume', 'restart', 'gapImages', 'modalityGap', 'onModalityGap', 'allowSvg', 'exif', 'onProgress',
] as const satisfies readonly (keyof PredictRunOptions)[];

const isAbortSignal = (v: unknown): v is AbortSignal => v instanceof AbortSignal;

/** `members`: built-in names and `onnx:NAME`, each at most once. */
function readMembers(o: OptionsReader): EnsembleMemberName[] | undefined {
  const expected = `an array of ${MEMBER_NAMES.map((n) => `"${n}"`).join(', ')} or "onnx:NAME", each at most once`;
  const v = o.check('members', (x): x is unknown[] => Array.isArray(x), expected);
  if (v === undefined) return undefined;
  if (!v.every((n) => typeof n === 'string')) throw o.typeError('members', expected, v);
  if (!v.every((n) => isEnsembleMemberName(n as string)) || new Set(v).size !== v.length) throw o.rangeError('members', expected, v);
  return v as EnsembleMemberName[];
}

/** `onnxMembers` or `heads`: `{ name, file }` objects with safe names, no two alike and none a built-in member's. */
function readOnnxMembers(o: OptionsReader, key: 'onnxMembers' | 'heads' = 'onnxMembers'): OnnxMemberSpec[] | undefined {
  const expected = 'an array of { name, file } objects (strings)';
  const v = o.check(key, (x): x is unknown[] => Array.isArray(x), expected);
  if (v === undefined) return undefined;
  const seen = new Set<string>();
  return v.map((item, i) => {
    const m = item as Record<string, unknown>;
    const keys = typeof m === 'object' && m !== null && !Array.isArray(m) ? Object.keys(m) : undefined;
    if (!keys || typeof m.name !== 'string' || typeof m.file !== 'string' || keys.some((k) => k !== 'name' && k !== 'file')) {
      throw o.typeError(key, expected, v);
    }
    if (m.file === '') throw o.rangeError(`${key}[${i}].file`, 'a non-empty file name', m.file);
    const problem = onnxMemberNameProblem(m.name);
    if (problem) throw o.rangeError(`${key}[${i}].name`, `a member name (this one ${problem})`, m.name);
    if (seen.has(m.name)) throw o.rangeError(`${key}[${i}].name`, `a name no other ${key === 'heads' ? 'head' : 'ONNX member'} has`, m.name);
    seen.add(m.name);
    return { name: m.name, file: m.file };
  });
}

/** Reads the engine options (the reader's other keys are left to the caller). */
export function readPredictEngineOptions(o: OptionsReader): PredictEngineOptions {
  return {
    model: o.string('model', { nonEmpty: true }),
    members: readMembers(o),
    onnxMembers: readOnnxMembers(o),
    heads: readOnnxMembers(o, 'heads'),
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
    modalityGap: o.object<Float32Array>('modalityGap'),
    onModalityGap: o.func('onModalityGap'),
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
