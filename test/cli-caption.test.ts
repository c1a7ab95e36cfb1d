import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Captioner } from '../src/caption/captioner.js';
import { captionArchitectureConfig } from '../src/caption/architectures.js';
import { writeRandomCaptionCheckpoint } from '../src/caption/random-checkpoint.js';
import { csvField } from '../src/submission/prompts-csv.js';
import { runCliInProcess } from './helpers/cli.js';
import { restoreHome } from './helpers/tiny-clip-home.js';
import { asset, KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';

/**
 * `img2prompt caption` and the captioner's install paths (models random / import) on random tiny
 * BLIP and GIT models in a throwaway model cache, and the streaming Node API they sit on.
 */

const BERT = asset('tokenizers', 'minilm');

describe('img2prompt caption', () => {
  const home = tempDir('img2prompt-caption-home-');
  const images = path.join(home, 'images');
  let saved: string | undefined;

  beforeAll(async () => {
    fs.mkdirSync(images, { recursive: true });
    for (const f of fs.readdirSync(path.join(KAGGLE_SAMPLE, 'images')).slice(0, 3)) fs.copyFileSync(path.join(KAGGLE_SAMPLE, 'images', f), path.join(images, f));
    fs.writeFileSync(path.join(images, 'broken.png'), fs.readFileSync(path.join(KAGGLE_SAMPLE, 'images', '20057f34d.png')).subarray(0, 2000));
    const r = await runCliInProcess(['models', 'random', '--arch', 'blip-tiny', '--seed', '3', '--name', 'blip-t', '--tokenizer', BERT], home);
    expect(r.stderr + r.stdout).toContain('installed random blip-tiny as blip-t');
    expect(r.code).toBe(0);
    saved = process.env.IMG2PROMPT_HOME;
    process.env.IMG2PROMPT_HOME = home;
  }, 600_000);

  afterAll(async () => {
    restoreHome(saved);
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('writes imgId,caption for every readable image, lists the unreadable one and exits 1', async () => {
    const out = path.join(home, 'captions.csv');
    const r = await runCliInProcess(['caption', images, '-o', out, '--model', 'blip-t', '--num-beams', '3', '--max-length', '16', '--prefix', 'a picture of', '--no-repeat-ngram-size', '3'], home);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`img2prompt: 1 of 4 images could not be read; they have no row (listed in ${out}.errors.txt):\n  ${path.join(images, 'broken.png')}: cannot decode image`);
    const errors = fs.readFileSync(`${out}.errors.txt`, 'utf8').trimEnd().split('\n');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(new RegExp(`^${path.join(images, 'broken.png')}\tcannot decode image`));
    expect(r.stderr).toContain('RANDOM weights');
    const lines = fs.readFileSync(out, 'utf8').trimEnd().split('\n');
    expect(lines[0]).toBe('imgId,caption');
    // The same captions as the library gives for the same options.
    const captioner = await Captioner.open('blip-t', { sessionOptions: { providers: ['cpu'] } });
    const files = fs.readdirSync(images).filter((f) => f !== 'broken.png').sort().map((f) => path.join(images, f));
    const expected: string[] = [];
    for await (const c of captioner.run(files, { numBeams: 3, maxLength: 16, prefix: 'a picture of', noRepeatNgramSize: 3 })) expected.push(`${c.id},${csvField(c.caption!)}`);
    captioner.close();
    expect(lines.slice(1)).toEqual(expected);
    expect(expected).toHaveLength(3);
  }, 300_000);

  it('names the option that is out of range, before opening the model', async () => {
    const out = path.join(home, 'never.csv');
    for (const [args, message] of [
      [['--num-beams', '0'], '--num-beams must be a positive integer, got "0"'],
      [['--min-length', '40'], '--min-length must be an integer from 0 to 32, got 40'],
      [['--max-length', '1000'], '--max-length must be an integer from 2 to 512, got 1000'],
      [['--repetition-penalty', '-1'], '--repetition-penalty must be a positive number, got -1'],
      [['--model', 'no-such-model'], 'model "no-such-model" is not installed'],
    ] as const) {
      const r = await runCliInProcess(['caption', images, '-o', out, '--model', 'blip-t', ...args], home);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr, args.join(' ')).toContain(message);
    }
    expect(fs.existsSync(out)).toBe(false);
  }, 120_000);

  it('refuses a maximum length that leaves no room after the prefix', async () => {
    const r = await runCliInProcess(['caption', images, '-o', path.join(home, 'never.csv'), '--model', 'blip-t', '--max-length', '4', '--min-length', '0', '--prefix', 'a picture of'], home);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('max length 4 leaves no room for a caption after the 4 tokens of the start token and the prefix');
  }, 120_000);

  it('streams one result per input in input order from Node, failures in place', async () => {
    const captioner = await Captioner.open('blip-t', { sessionOptions: { providers: ['cpu'] } });
    const files = [path.join(images, 'broken.png'), ...fs.readdirSync(images).filter((f) => f !== 'broken.png').sort().map((f) => path.join(images, f))];
    const seen: string[] = [];
    for await (const r of captioner.run(files, { numBeams: 1, maxLength: 8, batchSize: 2 })) seen.push(r.failure !== undefined ? `${r.id}:failed` : r.id);
    captioner.close();
    expect(seen).toEqual(files.map((f) => (f.endsWith('broken.png') ? 'broken:failed' : path.basename(f, '.png'))));
  }, 120_000);
});

describe('models import of a captioner folder', () => {
  const home = tempDir('img2prompt-caption-import-');
  const src = path.join(home, 'git-src');

  beforeAll(async () => {
    await writeRandomCaptionCheckpoint(src, captionArchitectureConfig('git-tiny'), 5, BERT);
  }, 300_000);

  afterAll(() => fs.rmSync(home, { recursive: true, force: true }));

  it('installs a Hugging Face GIT folder, keeps its random mark, and captions with it', async () => {
    const r = await runCliInProcess(['models', 'import', src, '--name', 'git-t'], home);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const list = await runCliInProcess(['models', 'list'], home);
    expect(list.stdout).toMatch(/git-t\s+installed\s+import\s.*RANDOM/);
    const out = path.join(home, 'git.csv');
    const cap = await runCliInProcess(['caption', path.join(KAGGLE_SAMPLE, 'images', '20057f34d.png'), '-o', out, '--model', 'git-t', '--num-beams', '2', '--max-length', '10'], home);
    expect(cap.code).toBe(0);
    expect(fs.readFileSync(out, 'utf8')).toMatch(/^imgId,caption\n20057f34d,.+\n$/);
  }, 300_000);

  it('refuses a folder without weights, with corrupt weights, or with another vocabulary, naming the file', async () => {
    const broken = path.join(home, 'broken');
    const copy = () => {
      fs.rmSync(broken, { recursive: true, force: true });
      fs.cpSync(src, broken, { recursive: true });
    };
    copy();
    fs.rmSync(path.join(broken, 'model.safetensors'));
    let r = await runCliInProcess(['models', 'import', broken, '--name', 'bad'], home);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${path.join(broken, 'model.safetensors')}: missing`);

    copy();
    const weights = path.join(broken, 'model.safetensors');
    fs.truncateSync(weights, fs.statSync(weights).size - 100);
    r = await runCliInProcess(['models', 'import', broken, '--name', 'bad'], home);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${weights}: truncated`);

    copy();
    // A config whose vocabulary is smaller than the tokenizer's: the weights' shapes disagree first.
    const config = JSON.parse(fs.readFileSync(path.join(broken, 'config.json'), 'utf8'));
    config.vocab_size = 1000;
    fs.writeFileSync(path.join(broken, 'config.json'), JSON.stringify(config));
    r = await runCliInProcess(['models', 'import', broken, '--name', 'bad'], home);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('git.embeddings.word_embeddings.weight" has shape [30522,64], config.json needs [1000,64]');

    copy();
    // A tokenizer from another model (BLIP's, with [DEC] and [ENC] beyond GIT's 30522 ids).
    const blip = path.join(home, 'blip-src');
    fs.mkdirSync(blip, { recursive: true });
    return writeRandomCaptionCheckpoint(blip, captionArchitectureConfig('blip-tiny'), 1, BERT).then(async () => {
      fs.copyFileSync(path.join(blip, 'tokenizer.json'), path.join(broken, 'tokenizer.json'));
      r = await runCliInProcess(['models', 'import', broken, '--name', 'bad'], home);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${path.join(broken, 'tokenizer.json')}: the tokenizer has 30524 tokens but the model's vocabulary (config.json vocab_size, the LM head) has 30522`);
      expect(fs.existsSync(path.join(home, 'models', 'bad'))).toBe(false);
    });
  }, 300_000);
});

describe('names that models pull owns', () => {
  const home = tempDir('img2prompt-caption-reserved-');
  afterAll(() => fs.rmSync(home, { recursive: true, force: true }));

  it('a random captioner cannot take blip-large; an import takes it only with the pinned weights', async () => {
    let r = await runCliInProcess(['models', 'random', '--arch', 'blip-tiny', '--name', 'blip-large', '--tokenizer', BERT], home);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('"blip-large" is the name of a model `img2prompt models pull` installs');
    const src = path.join(home, 'src');
    await writeRandomCaptionCheckpoint(src, captionArchitectureConfig('blip-tiny'), 2, BERT);
    r = await runCliInProcess(['models', 'import', src, '--name', 'blip-large'], home);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('(model.safetensors: sha256 differs)');
    expect(fs.existsSync(path.join(home, 'models', 'blip-large'))).toBe(false);
  }, 300_000);
});
