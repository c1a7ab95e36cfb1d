// The options several commands share (src/cli/options.ts) mean the same thing, with the same default, in each.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_CLIP_MODEL } from '../src/clip/model.js';
import { DEFAULT_IMAGE_BATCH } from '../src/image/batch-loader.js';
import { tempDir } from './helpers/paths.js';
import { runCliInProcess } from './helpers/cli.js';

const home = tempDir('img2prompt-cli-options-');
afterAll(() => fs.rmSync(home, { recursive: true, force: true }));

/** The help line of `flag` in `img2prompt <command> --help`, continuation lines joined. */
async function helpOf(command: string[], flag: string): Promise<string> {
  const r = await runCliInProcess([...command, '--help'], home);
  expect(r.code, r.stderr).toBe(0);
  const text = r.stdout.replace(/\n {10,}/g, ' ');
  const line = text.split('\n').find((l) => l.trimStart().startsWith(`${flag} `));
  expect(line, `${command.join(' ')} has no ${flag}`).toBeDefined();
  return line!.replace(/\s+/g, ' ').trim();
}

describe('shared CLI options', () => {
  it(`--model is the CLIP model, default ${DEFAULT_CLIP_MODEL}, in every command that opens one`, async () => {
    for (const command of [['embed-images'], ['labels', 'build'], ['interrogate'], ['predict'], ['fit-map'], ['fit-weights']]) {
      expect(await helpOf(command, '--model'), command.join(' ')).toBe(
        `--model <name> CLIP model in the cache (models pull/import/random) or a model folder (default: "${DEFAULT_CLIP_MODEL}")`,
      );
    }
  });

  it(`--batch-size of the commands that batch images defaults to ${DEFAULT_IMAGE_BATCH}`, async () => {
    expect(DEFAULT_IMAGE_BATCH).toBe(16);
    for (const command of ['embed-images', 'interrogate', 'predict', 'fit-weights']) {
      expect(await helpOf([command], '--batch-size'), command).toMatch(new RegExp(`\\(default: "${DEFAULT_IMAGE_BATCH}"\\)$`));
    }
  });

  it('every command that reads images takes --errors, defaulting to <output>.errors.txt', async () => {
    for (const command of ['embed-images', 'interrogate', 'caption', 'predict']) {
      expect(await helpOf([command], '--errors'), command).toContain('[default: <output>.errors.txt]');
    }
  });

  it('a run in-process leaves the process as it found it: no exit code, no IMG2PROMPT_PRECISION', async () => {
    const before = process.env.IMG2PROMPT_PRECISION;
    const r = await runCliInProcess(['embed', '--precision', 'fp16', '--prompts', path.join(home, 'missing.csv'), '-o', path.join(home, 'out.csv')], home);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`img2prompt: ${path.join(home, 'missing.csv')}: cannot read: no such file\n`);
    expect(process.env.IMG2PROMPT_PRECISION).toBe(before);
    expect(process.exitCode).toBeUndefined();
  });
});
