// img2prompt serve with a caption model: interrogate answers carry the caption that heads the prompt,
// predict answers the caption and the captioner member's prompt, as the engines give them in-process.
// A random tiny CLIP and a random tiny BLIP: their words mean nothing; this checks the plumbing.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InterrogateEngine, PredictEngine, installRandomCaptioner, type InterrogatedImage, type PredictedImage } from '../src/index.js';
import { asset, tempDir } from './helpers/paths.js';
import { copyKaggleImages, restoreHome, useTinyClipHome, writeSmallBankAndLabels } from './helpers/tiny-clip-home.js';
import { postImage, startServer, type StartedServer } from './helpers/serve.js';

const home = tempDir('img2prompt-serve-caption-home-');
const work = tempDir('img2prompt-serve-caption-work-');
let saved: string | undefined;
let labelsDir: string;
let bankFile: string;
let image: Uint8Array;
let served: StartedServer;

beforeAll(async () => {
  saved = await useTinyClipHome(home, 3);
  await installRandomCaptioner({ arch: 'blip-tiny', seed: 4, name: 'blip-t', tokenizerDir: asset('tokenizers', 'minilm') });
  copyKaggleImages(path.join(work, 'images'));
  ({ labelsDir, bankFile } = writeSmallBankAndLabels(work));
  const first = fs.readdirSync(path.join(work, 'images')).sort()[0]!;
  image = new Uint8Array(fs.readFileSync(path.join(work, 'images', first)));
  served = await startServer({ model: 'tiny', captionModel: 'blip-t', labelsDir, promptsBank: [bankFile] });
}, 600_000);

afterAll(async () => {
  await served?.server.close();
  restoreHome(saved);
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

describe('serve with --caption-model', () => {
  it('interrogate: the caption heads the prompt, as InterrogateEngine gives it', async () => {
    const engine = await InterrogateEngine.open({ model: 'tiny', labelsDir, captionModel: 'blip-t' });
    const expected: InterrogatedImage[] = [];
    try {
      for await (const r of engine.run([{ id: 'x', data: image }])) expected.push(r);
    } finally {
      engine.close();
    }
    const e = expected[0]!;
    expect(e.caption?.trim()).toBeTruthy();
    const body = (await (await postImage(`${served.url}/v1/interrogate`, image)).json()) as { results: { caption: string; prompt: string; similarity: number }[] };
    expect(body.results[0]).toMatchObject({ caption: e.caption, prompt: e.prompt, similarity: e.similarity });
    expect(body.results[0]!.prompt.startsWith(e.caption!)).toBe(true);
  });

  it('predict: the caption and the captioner member\'s prompt, as PredictEngine gives them', async () => {
    const engine = await PredictEngine.open({ model: 'tiny', labelsDir, promptsBank: [bankFile], captionModel: 'blip-t', members: ['knn', 'interrogator', 'captioner'] });
    const expected: PredictedImage[] = [];
    try {
      for await (const r of engine.run([{ id: 'x', data: image }])) expected.push(r);
    } finally {
      engine.close();
    }
    const e = expected[0]!;
    const body = (await (await postImage(`${served.url}/v1/predict?vector=1`, image)).json()) as { members: string[]; results: Record<string, unknown>[] };
    expect(body.members).toEqual(['knn', 'interrogator', 'captioner']);
    expect(body.results[0]).toMatchObject({
      caption: e.caption, prompt: e.prompt, nearestPrompt: e.nearestPrompt,
      memberPrompts: { interrogator: e.prompt, captioner: e.caption, knn: e.nearestPrompt!.text },
      members: Object.keys(e.members), vector: Array.from(e.vector),
    });
    expect(Object.keys(e.members)).toContain('captioner');
  });
});
