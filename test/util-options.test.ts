import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOptions } from '../src/util/options.js';
import { Img2PromptError } from '../src/util/errors.js';
import { ClipModel } from '../src/clip/model.js';
import { Captioner } from '../src/caption/captioner.js';
import { loadBatches } from '../src/image/batch-loader.js';
import { decodeImage } from '../src/image/decode.js';
import { embedPrompts } from '../src/submission/embed-prompts.js';
import { score } from '../src/submission/score.js';
import { scoresAll, topk } from '../src/rank/topk.js';
import type { TextEmbedder } from '../src/text/embedder.js';
import { Session } from '../src/runtime/session.js';
import { pullModel } from '../src/models/pull.js';
import { importClip, installRandomClip } from '../src/models/install-local.js';
import { importCaptioner, installRandomCaptioner } from '../src/caption/install.js';
import { fitWeights } from '../src/predict/fit-weights.js';
import { validateSubmission } from '../src/submission/validate.js';
import { listImageFiles } from '../src/image/list-images.js';
import { readNpy } from '../src/util/npy.js';
import { cudaReadiness, installCudaProvider } from '../src/gpu/index.js';
import { Interrogator } from '../src/interrogate/interrogator.js';

/** What `run` throws, as "<class>: <message>", so one assertion pins both. */
function thrown(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    return `${(err as Error).name}: ${(err as Error).message}`;
  }
  throw new Error('expected a throw');
}

async function rejected(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
  } catch (err) {
    return `${(err as Error).name}: ${(err as Error).message}`;
  }
  throw new Error('expected a rejection');
}

describe('readOptions', () => {
  it('refuses a key nobody read, naming the call, with a near known key as a suggestion', () => {
    const read = (options: object) => {
      const o = readOptions(options, 'predict()');
      o.string('model');
      o.int('batchSize', { min: 1 });
      o.done();
    };
    expect(thrown(() => read({ modle: 'x' }))).toBe('TypeError: predict(): unknown option "modle" (did you mean "model"?)');
    expect(thrown(() => read({ batchsize: 4 }))).toBe('TypeError: predict(): unknown option "batchsize" (did you mean "batchSize"?)');
    expect(thrown(() => read({ temperature: 1 }))).toBe('TypeError: predict(): unknown option "temperature"');
    // The first unknown key in the object's order is the one named.
    expect(thrown(() => read({ model: 'm', zzz: 1, modle: 2 }))).toBe('TypeError: predict(): unknown option "zzz"');
    expect(() => read({ model: 'm', batchSize: 2 })).not.toThrow();
  });

  it('counts undefined values as absent, read or not', () => {
    const o = readOptions({ batchSize: undefined, unheardOf: undefined }, 'predict()');
    expect(o.int('batchSize', { min: 1 })).toBeUndefined();
    expect(o.has('batchSize')).toBe(false);
    expect(() => o.done()).not.toThrow();
    expect(() => readOptions(undefined, 'predict()').done()).not.toThrow();
  });

  it('refuses an options argument that is not an object', () => {
    expect(thrown(() => readOptions(null, 'predict()'))).toBe('TypeError: predict(): Expected an object for options but received null');
    expect(thrown(() => readOptions('fast', 'predict()'))).toBe('TypeError: predict(): Expected an object for options but received "fast" of type string');
    expect(thrown(() => readOptions([1], 'predict()'))).toBe('TypeError: predict(): Expected an object for options but received [1] of type array');
  });

  it('integers: a wrong type is a TypeError, a value out of range or not whole a RangeError', () => {
    const int = (value: unknown, bounds?: { min?: number; max?: number }) => readOptions({ n: value }, 'f()').int('n', bounds);
    expect(int(3, { min: 1 })).toBe(3);
    expect(thrown(() => int('3', { min: 1 }))).toBe('TypeError: f(): Expected a positive integer for n but received "3" of type string');
    expect(thrown(() => int(null, { min: 0 }))).toBe('TypeError: f(): Expected a non-negative integer for n but received null');
    expect(thrown(() => int(true))).toBe('TypeError: f(): Expected an integer for n but received true of type boolean');
    expect(thrown(() => int(0, { min: 1 }))).toBe('RangeError: f(): Expected an integer >= 1 for n but received 0');
    expect(thrown(() => int(1.5, { min: 1 }))).toBe('RangeError: f(): Expected an integer >= 1 for n but received 1.5');
    expect(thrown(() => int(NaN))).toBe('RangeError: f(): Expected an integer for n but received NaN');
    expect(thrown(() => int(2000, { min: 0, max: 1024 }))).toBe('RangeError: f(): Expected an integer between 0 and 1024 for n but received 2000');
    expect(thrown(() => int(9, { max: 8 }))).toBe('RangeError: f(): Expected an integer <= 8 for n but received 9');
    expect(thrown(() => int('x', { min: 2, max: 4 }))).toBe('TypeError: f(): Expected an integer between 2 and 4 for n but received "x" of type string');
  });

  it('numbers must be finite and within their bounds', () => {
    const num = (value: unknown, bounds?: { min?: number; max?: number; minExclusive?: boolean }) => readOptions({ t: value }, 'f()').number('t', bounds);
    expect(num(0, { min: 0 })).toBe(0);
    expect(num(0.5, { min: 0, minExclusive: true })).toBe(0.5);
    expect(thrown(() => num('1'))).toBe('TypeError: f(): Expected a number for t but received "1" of type string');
    expect(thrown(() => num(-1, { min: 0 }))).toBe('RangeError: f(): Expected a finite number >= 0 for t but received -1');
    expect(thrown(() => num(0, { min: 0, minExclusive: true }))).toBe('RangeError: f(): Expected a finite number > 0 for t but received 0');
    expect(thrown(() => num(Infinity))).toBe('RangeError: f(): Expected a finite number for t but received Infinity');
    expect(thrown(() => num(2, { min: 0, max: 1 }))).toBe('RangeError: f(): Expected a finite number between 0 and 1 for t but received 2');
  });

  it('booleans, strings, lists, choices, functions and objects', () => {
    const o = (value: unknown) => readOptions({ k: value }, 'f()');
    expect(o(false).bool('k')).toBe(false);
    expect(thrown(() => o(1).bool('k'))).toBe('TypeError: f(): Expected true or false for k but received 1 of type number');
    expect(o('a').string('k')).toBe('a');
    expect(thrown(() => o(5).string('k'))).toBe('TypeError: f(): Expected a string for k but received 5 of type number');
    expect(thrown(() => o('').string('k', { nonEmpty: true }))).toBe('RangeError: f(): Expected a non-empty string for k but received ""');
    expect(o(['a', 'b']).stringList('k')).toEqual(['a', 'b']);
    expect(thrown(() => o(['a', 1]).stringList('k'))).toBe('TypeError: f(): Expected an array of strings for k but received ["a",1] of type array');
    expect(o('hf').oneOf('k', ['open_clip', 'hf'])).toBe('hf');
    expect(thrown(() => o('timm').oneOf('k', ['open_clip', 'hf']))).toBe('RangeError: f(): Expected one of "open_clip", "hf" for k but received "timm"');
    expect(thrown(() => o(3).oneOf('k', ['open_clip', 'hf']))).toBe('TypeError: f(): Expected one of "open_clip", "hf" for k but received 3 of type number');
    expect(o('never').oneOf('k', [true, false, 'never'])).toBe('never');
    expect(o(['text']).subsetOf('k', ['vision', 'text'])).toEqual(['text']);
    expect(thrown(() => o(['text', 'text']).subsetOf('k', ['vision', 'text']))).toBe(
      'RangeError: f(): Expected an array of "vision", "text", each at most once for k but received ["text","text"]',
    );
    expect(thrown(() => o('text').subsetOf('k', ['vision', 'text']))).toBe('TypeError: f(): Expected an array of "vision", "text" for k but received "text" of type string');
    const fn = () => 1;
    expect(o(fn).func('k')).toBe(fn);
    expect(thrown(() => o('fn').func('k'))).toBe('TypeError: f(): Expected a function for k but received "fn" of type string');
    expect(o({ a: 1 }).object('k')).toEqual({ a: 1 });
    expect(thrown(() => o([]).object('k'))).toBe('TypeError: f(): Expected an object for k but received [] of type array');
    expect(thrown(() => o(new Uint8Array(3)).check('k', (v): v is Float32Array => v instanceof Float32Array, 'a Float32Array'))).toBe(
      'TypeError: f(): Expected a Float32Array for k but received Uint8Array(3) of type object',
    );
  });

  it('refuse() names an option that does not belong beside another, and absent ones pass', () => {
    const o = readOptions({ engine: {}, model: 'clip-vit-b-32', batchSize: undefined }, 'predict()');
    o.any('engine');
    expect(() => o.refuse(['batchSize'], 'with an opened engine (pass it to PredictEngine.open)')).not.toThrow();
    expect(thrown(() => o.refuse(['batchSize', 'model'], 'with an opened engine (pass it to PredictEngine.open)'))).toBe(
      'TypeError: predict(): option "model" cannot be given with an opened engine (pass it to PredictEngine.open)',
    );
  });
});

describe('public entry points refuse unknown options', () => {
  const rows = [{ imgId: 'a', prompt: 'a cat' }];
  const embedder: TextEmbedder = { dim: 2, embed: async (texts) => new Float32Array(texts.length * 2).fill(Math.SQRT1_2) };
  const matrix = { data: new Float32Array([1, 0]), dims: [1, 2] };

  it('names the call and the key, before any work', async () => {
    expect(await rejected(() => ClipModel.open('not-installed', { imageProcesor: 'hf' } as never))).toBe(
      'TypeError: ClipModel.open(): unknown option "imageProcesor" (did you mean "imageProcessor"?)',
    );
    expect(await rejected(() => ClipModel.open('not-installed', { towers: ['vision', 'audio'] as never }))).toBe(
      'RangeError: ClipModel.open(): Expected an array of "vision", "text", each at most once for towers but received ["vision","audio"]',
    );
    expect(await rejected(() => Captioner.open('not-installed', { sesionOptions: {} } as never))).toBe(
      'TypeError: Captioner.open(): unknown option "sesionOptions" (did you mean "sessionOptions"?)',
    );
    expect(await rejected(async () => {
      for await (const _ of loadBatches([], { batchSize: 1, size: 224, maxPixel: 10 } as never)) void _;
    })).toBe('TypeError: loadBatches(): unknown option "maxPixel" (did you mean "maxPixels"?)');
    expect(await rejected(async () => {
      for await (const _ of loadBatches([], { size: 224 } as never)) void _;
    })).toBe('TypeError: loadBatches(): Expected a positive integer for batchSize but received undefined');
    expect(await rejected(() => decodeImage(new Uint8Array(8), { exf: 'ignore' } as never))).toBe(
      'TypeError: decodeImage(): unknown option "exf" (did you mean "exif"?)',
    );
    expect(await rejected(() => embedPrompts(rows, embedder, { batchsize: 4 } as never))).toBe(
      'TypeError: embedPrompts(): unknown option "batchsize" (did you mean "batchSize"?)',
    );
    expect(await rejected(() => score('pred.csv', 'truth.csv', embedder, { onProgres: () => {} } as never))).toBe(
      'TypeError: score(): unknown option "onProgres" (did you mean "onProgress"?)',
    );
    expect(await rejected(() => topk(matrix, matrix, 1, { thread: 2 } as never))).toBe('TypeError: topk(): unknown option "thread" (did you mean "threads"?)');
    expect(await rejected(() => scoresAll(matrix, matrix, { blockRow: 2 } as never))).toBe(
      'TypeError: scoresAll(): unknown option "blockRow" (did you mean "blockRows"?)',
    );
  });

  it('the other option-taking exports refuse unknown keys the same way, before touching any file', async () => {
    const random = { arch: 'tiny', seed: 1, name: 'x', tokenizerDir: 'tok' };
    const cases: [() => unknown, string][] = [
      [() => Session.open('model.onnx', { threads: 2 } as never), 'Session.open(): unknown option "threads"'],
      [() => pullModel('minilm', { revison: 'main' } as never), 'pullModel(): unknown option "revison" (did you mean "revision"?)'],
      [() => installRandomClip({ ...random, layot: 'hf' } as never), 'installRandomClip(): unknown option "layot" (did you mean "layout"?)'],
      [() => installRandomCaptioner({ ...random, forse: true } as never), 'installRandomCaptioner(): unknown option "forse" (did you mean "force"?)'],
      [() => importClip('dir', 'x', { forced: true } as never), 'importClip(): unknown option "forced" (did you mean "force"?)'],
      [() => importCaptioner('dir', 'x', { forced: true } as never), 'importCaptioner(): unknown option "forced" (did you mean "force"?)'],
      [() => fitWeights({}, new Float32Array(0), 2, { fold: 3 } as never), 'fitWeights(): unknown option "fold" (did you mean "folds"?)'],
      [() => validateSubmission('s.csv', { imageId: [] } as never), 'validateSubmission(): unknown option "imageId" (did you mean "imageIds"?)'],
      [() => listImageFiles([], { allowSVG: true } as never), 'listImageFiles(): unknown option "allowSVG" (did you mean "allowSvg"?)'],
      [() => readNpy('a.npy', { dims: 2 } as never), 'readNpy(): unknown option "dims"'],
      [() => cudaReadiness({ devdir: '/dev' } as never), 'cudaReadiness(): unknown option "devdir" (did you mean "devDir"?)'],
      [() => installCudaProvider({ keepWheels: true } as never), 'installCudaProvider(): unknown option "keepWheels" (did you mean "keepWheel"?)'],
      [() => Interrogator.open({} as never, { labelDir: 'l' } as never), 'Interrogator.open(): unknown option "labelDir" (did you mean "labelsDir"?)'],
    ];
    for (const [run, message] of cases) expect(await rejected(async () => run())).toBe(`TypeError: ${message}`);
    expect(await rejected(() => installRandomClip({ arch: 'tiny', name: 'x', tokenizerDir: 'tok' } as never))).toBe(
      'TypeError: installRandomClip(): Expected an integer for seed but received undefined',
    );
    expect(await rejected(() => Session.open('model.onnx', { providers: ['gpu'] } as never))).toBe(
      'RangeError: Session.open(): Expected an array of "cuda", "cpu" for providers but received ["gpu"]',
    );
  });

  it('keeps valid options working, undefined ones included', async () => {
    expect(Array.from(await embedPrompts(rows, embedder, { batchSize: undefined, onProgress: undefined }))).toEqual([Math.SQRT1_2, Math.SQRT1_2].map((v) => Math.fround(v)));
    const best = await topk(matrix, matrix, 1, { threads: 1, label: 'bank.f32', simd: false, forceThreads: undefined });
    expect(Array.from(best.indices)).toEqual([0]);
  });
});

describe('Img2PromptError codes', () => {
  let home: string;
  let saved: string | undefined;
  beforeAll(() => {
    home = mkdtempSync(path.join(os.tmpdir(), 'img2prompt-options-'));
    saved = process.env.IMG2PROMPT_HOME;
    process.env.IMG2PROMPT_HOME = home;
  });
  afterAll(() => {
    if (saved === undefined) delete process.env.IMG2PROMPT_HOME;
    else process.env.IMG2PROMPT_HOME = saved;
    rmSync(home, { recursive: true, force: true });
  });

  it('a model that is not installed is MODEL_MISSING, with the remedy kept in the message', async () => {
    for (const open of [() => ClipModel.open('no-such-model'), () => Captioner.open('no-such-model')]) {
      const err = await open().then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(Img2PromptError);
      expect((err as Img2PromptError).code).toBe('MODEL_MISSING');
      expect((err as Img2PromptError).message).toMatch(/model "no-such-model" is not installed: run `img2prompt models pull no-such-model`/);
    }
  });

  it('an unreadable image is IMAGE_UNREADABLE', async () => {
    const err = await decodeImage(path.join(home, 'missing.png')).then(() => undefined, (e: unknown) => e);
    expect((err as Img2PromptError).code).toBe('IMAGE_UNREADABLE');
  });

  it('defaults to BAD_INPUT and keeps the `<file>: <reason>` message and the cause', () => {
    const cause = new Error('ENOSPC');
    expect(new Img2PromptError('a.csv', 'line 2: empty prompt').code).toBe('BAD_INPUT');
    const err = new Img2PromptError('out.csv', 'cannot write: no space left on device', { code: 'OUTPUT_FAILED', cause });
    expect([err.code, err.message, err.file, err.reason, err.cause]).toEqual([
      'OUTPUT_FAILED', 'out.csv: cannot write: no space left on device', 'out.csv', 'cannot write: no space left on device', cause,
    ]);
  });
});
