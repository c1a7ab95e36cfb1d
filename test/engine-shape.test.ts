// The one engine shape (PredictEngine and InterrogateEngine): open → run(inputs) streaming one result
// per input in order → close / asyncDispose, with encoded image bytes as inputs next to paths, a closed
// state, and an AbortSignal on open. A random tiny CLIP, a small bank and label lists, the Kaggle images.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InterrogateEngine, Img2PromptError, PredictEngine, interrogate, predict, type InterrogatedImage, type PredictedImage } from '../src/index.js';
import { tempDir } from './helpers/paths.js';
import { copyKaggleImages, restoreHome, useTinyClipHome, writeSmallBankAndLabels } from './helpers/tiny-clip-home.js';

const home = tempDir('img2prompt-engine-home-');
const work = tempDir('img2prompt-engine-work-');
const images = path.join(work, 'images');
let saved: string | undefined;
let bankFile: string;
let labelsDir: string;
let files: string[];

beforeAll(async () => {
  saved = await useTinyClipHome(home, 5);
  copyKaggleImages(images);
  ({ bankFile, labelsDir } = writeSmallBankAndLabels(work));
  files = fs.readdirSync(images).sort().map((f) => path.join(images, f));
});

afterAll(() => {
  restoreHome(saved);
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

async function collect<T>(gen: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const r of gen) out.push(r);
  return out;
}

const bits = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');

describe('PredictEngine', () => {
  it('takes { id, data } bytes next to paths and gives each the bits its file gives, in input order', async () => {
    const engine = await PredictEngine.open({ model: 'tiny', promptsBank: [bankFile], labelsDir });
    try {
      // One image per batch: the vision tower's bits depend on what shares its batch.
      const byPath = await collect(engine.run(files, { batchSize: 1 }));
      // Bytes under new ids, a garbage upload among them, and one file path: one result each, in order.
      const mixed = [
        { id: 'upload-0', data: fs.readFileSync(files[0]!) },
        { id: 'junk', data: new Uint8Array([1, 2, 3, 4]) },
        files[1]!,
        ...files.slice(2).map((f, i) => ({ id: `upload-${i + 2}`, data: new Uint8Array(fs.readFileSync(f)) })),
      ];
      const results: PredictedImage[] = await collect(engine.run(mixed, { batchSize: 1 }));
      expect(results.map((r) => r.id)).toEqual(['upload-0', 'junk', path.basename(files[1]!, '.png'), ...files.slice(2).map((_, i) => `upload-${i + 2}`)]);
      expect(results.map((r) => r.index)).toEqual(mixed.map((_, i) => i));
      expect(results[0]!.file).toBe('<upload-0>');
      expect(results[2]!.file).toBe(files[1]);
      const junk = results[1]!;
      expect(junk.fallback).toBe(true);
      expect(junk.failure).toMatch(/image|format|unsupported/i);
      const expected = [byPath[0]!, byPath[1]!, ...byPath.slice(2)];
      const readable = results.filter((r) => r.failure === undefined);
      expect(readable.map((r) => bits(r.vector))).toEqual(expected.map((r) => bits(r.vector)));
      expect(readable.map((r) => r.prompt)).toEqual(expected.map((r) => r.prompt));
    } finally {
      engine.close();
    }
  });

  it('refuses ids that are not unique across paths and bytes, and inputs that are neither, before any result', async () => {
    const engine = await PredictEngine.open({ model: 'tiny', promptsBank: [bankFile], members: ['knn'] });
    try {
      const id = path.basename(files[0]!, '.png');
      // Refused by run() itself, before a generator exists: nothing is read or written.
      expect(() => engine.run([files[0]!, { id, data: fs.readFileSync(files[1]!) }])).toThrow(
        new Img2PromptError(undefined, `image ids must be unique (an id is the file name without its extension): ${JSON.stringify(files[0])} and bytes <${id}> share the id ${JSON.stringify(id)}`),
      );
      expect(() => engine.run([{ id: 'a', data: 'not bytes' } as never])).toThrow(
        new TypeError('PredictEngine.run(): Expected an image path or { id: string, data: Uint8Array } for input 0 but received an object with keys id, data'),
      );
      expect(() => engine.run('a.png' as never)).toThrow(/^PredictEngine\.run\(\): Expected an array of image paths or \{ id, data \} items but received "a\.png" of type string$/);
      expect(() => engine.run(files, { batchsize: 2 } as never)).toThrow(new TypeError('PredictEngine.run(): unknown option "batchsize" (did you mean "batchSize"?)'));
      // predict() names itself, and refuses engine options next to an opened engine.
      await expect(collect(predict(files, { engine, model: 'tiny' }))).rejects.toThrow(
        new TypeError('predict(): option "model" cannot be given with an opened engine (pass it to PredictEngine.open())'),
      );
      await expect(collect(predict(files, { engine, k: 0 }))).rejects.toThrow(
        new TypeError('predict(): option "k" cannot be given with an opened engine (pass it to PredictEngine.open())'),
      );
      await expect(collect(predict(files, { engine, batchSize: 0 }))).rejects.toThrow(new RangeError('predict(): Expected an integer >= 1 for batchSize but received 0'));
      await expect(PredictEngine.open({ model: 'tiny', temperature: -1 })).rejects.toThrow(
        new RangeError('PredictEngine.open(): Expected a finite number >= 0 for temperature but received -1'),
      );
    } finally {
      engine.close();
    }
  });

  it('is closed by close() or asyncDispose, refuses to run afterwards, and closes twice without harm', async () => {
    const engine = await PredictEngine.open({ model: 'tiny', promptsBank: [bankFile], members: ['knn'] });
    expect(engine.closed).toBe(false);
    const [first] = await collect(engine.run(files.slice(0, 1)));
    expect(first!.failure).toBeUndefined();
    await engine[Symbol.asyncDispose]();
    expect(engine.closed).toBe(true);
    engine.close();
    expect(() => engine.run(files)).toThrow('cannot run: this PredictEngine is closed (open a new one with PredictEngine.open())');

    // Closed while a run is between batches: the run stops with the same error instead of reaching ORT.
    const other = await PredictEngine.open({ model: 'tiny', promptsBank: [bankFile], members: ['knn'] });
    const run = other.run(files, { batchSize: 2 });
    expect((await run.next()).done).toBe(false);
    other.close();
    await expect(collect(run)).rejects.toThrow(/PredictEngine is closed/);
  });

  it('open() honours an AbortSignal: aborted before, or while the prompt bank is being built', async () => {
    const aborted = AbortSignal.abort();
    await expect(PredictEngine.open({ model: 'tiny', promptsBank: [bankFile], signal: aborted })).rejects.toThrow(/aborted/i);

    // A bank no run has built yet: abort at its first progress report.
    const fresh = path.join(work, 'fresh-bank.txt');
    fs.writeFileSync(fresh, Array.from({ length: 300 }, (_, i) => `a fresh prompt number ${i}`).join('\n') + '\n');
    const controller = new AbortController();
    const reasons: unknown[] = [];
    const why = new Error('stop now');
    await PredictEngine.open({
      model: 'tiny', promptsBank: [fresh], members: ['knn'], signal: controller.signal,
      onBankProgress: () => controller.abort(why),
    }).catch((err: unknown) => reasons.push(err));
    expect(reasons).toEqual([why]);
  });
});

describe('InterrogateEngine', () => {
  it('takes bytes next to paths, and streams: each batch is handed out before the next is encoded', async () => {
    const engine = await InterrogateEngine.open({ model: 'tiny', labelsDir });
    try {
      const byPath = await collect(engine.run(files, { mode: 'fast', batchSize: 2 }));
      const events: string[] = [];
      const inputs = files.map((f, i) => (i % 2 === 0 ? { id: `b${i}`, data: fs.readFileSync(f) } : f));
      const results: InterrogatedImage[] = [];
      for await (const r of engine.run(inputs, { mode: 'fast', batchSize: 2, onProgress: (d, _t, phase) => events.push(`${phase} ${d}`) })) {
        results.push(r);
      }
      expect(results.map((r) => r.id)).toEqual(files.map((f, i) => (i % 2 === 0 ? `b${i}` : path.basename(f, '.png'))));
      expect(results.map((r) => r.prompt)).toEqual(byPath.map((r) => r.prompt));
      expect(results.map((r) => r.similarity)).toEqual(byPath.map((r) => r.similarity));
      // Encode 2, hand out 2, encode 2 more, …: never more than one batch ahead.
      expect(events).toEqual([
        'encoding images 2', 'interrogating 1', 'interrogating 2',
        'encoding images 4', 'interrogating 3', 'interrogating 4',
        'encoding images 6', 'interrogating 5', 'interrogating 6',
        'encoding images 7', 'interrogating 7',
      ]);
    } finally {
      await engine[Symbol.asyncDispose]();
    }
    expect(engine.closed).toBe(true);
    expect(() => engine.run(files)).toThrow('cannot run: this InterrogateEngine is closed (open a new one with InterrogateEngine.open())');
  });

  it('interrogate() leaves an engine passed to it open, takes bytes, and refuses engine options next to it', async () => {
    const engine = await InterrogateEngine.open({ model: 'tiny', labelsDir });
    try {
      const [r] = await collect(interrogate([{ id: 'x', data: fs.readFileSync(files[0]!) }], { engine, mode: 'classic' }));
      expect(r).toMatchObject({ id: 'x', file: '<x>', index: 0, mode: 'classic' });
      expect(r!.prompt).toBeTruthy();
      expect(engine.closed).toBe(false);
      await expect(collect(interrogate(files, { engine, labelsDir }))).rejects.toThrow(
        new TypeError('interrogate(): option "labelsDir" cannot be given with an opened engine (pass it to InterrogateEngine.open())'),
      );
      const [p] = await collect(predict([{ id: 'y', data: fs.readFileSync(files[0]!) }], { model: 'tiny', promptsBank: [bankFile], members: ['knn'] }));
      expect(p).toMatchObject({ id: 'y', file: '<y>', fallback: false });
    } finally {
      engine.close();
    }
  });

  it('open() rejects an aborted signal before opening anything', async () => {
    await expect(InterrogateEngine.open({ model: 'tiny', labelsDir, signal: AbortSignal.abort() })).rejects.toThrow(/aborted/i);
  });
});
