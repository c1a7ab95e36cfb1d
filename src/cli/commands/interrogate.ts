import path from 'node:path';
import { promises as fs } from 'node:fs';
import { Option, type Command } from 'commander';
import { Img2PromptError } from '../../util/errors.js';
import { createProgress } from '../../util/progress.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { listImageFiles } from '../../clip/model.js';
import { writePromptsCsv } from '../../submission/prompts-csv.js';
import { parsePositiveInt } from '../../submission/cli-helpers.js';
import type { InterrogateMode, InterrogationResult } from '../../interrogate/types.js';
import { addLabelOptions, openInterrogator, type LabelOptions } from './labels.js';

interface InterrogateCliOptions extends LabelOptions {
  mode: InterrogateMode;
  output: string;
  details?: string;
  batchSize: string;
  maxFlavors?: string;
  shortlist?: string;
}

export function register(program: Command): void {
  addLabelOptions(
    program
      .command('interrogate')
      .description('CLIP Interrogator: compose a prompt per image from the label banks → prompts CSV (imgId,prompt), ready for `img2prompt embed`')
      .argument('<inputs...>', 'image files and/or folders')
      .addOption(
        new Option('--mode <mode>', 'fast: best labels that fit 77 tokens; classic: "medium by artist, trending, movement, flavors"; best: greedy chain; negative: least similar')
          .choices(['fast', 'classic', 'best', 'negative'])
          .default('fast'),
      )
      .requiredOption('-o, --output <file>', 'prompts CSV to write (imgId,prompt)')
      .option('--details <file>', 'also write a JSON file with the chosen labels and scores per image')
      .option('--batch-size <n>', 'images per vision-tower call', '16')
      .option('--max-flavors <n>', 'labels a mode may add (classic: 3; fast/best/negative: 32)')
      .option('--shortlist <n>', 'best/negative: labels shortlisted by image similarity before chaining (default 2048)'),
  ).action(async (inputs: string[], opts: InterrogateCliOptions) => {
    const files = await listImageFiles(inputs);
    if (files.length === 0) throw new Img2PromptError(inputs.join(' '), 'no image files found');
    const { model, interrogator } = await openInterrogator(opts);
    const maxFlavors = parsePositiveInt('--max-flavors', opts.maxFlavors);
    const shortlist = parsePositiveInt('--shortlist', opts.shortlist);
    const bar = createProgress(`interrogate ${opts.mode}`, files.length, 'images');
    const t0 = performance.now();
    const images = await model.encodeImages(files, {
      batchSize: parsePositiveInt('--batch-size', opts.batchSize) ?? 16,
      onFailure: (f) => process.stderr.write(`img2prompt: ${f.file}: ${f.reason}\n`),
    });
    const results: InterrogationResult[] = [];
    // The CSV holds only prompts: the prompt's own similarity (a text-tower pass per image in fast and
    // classic) is computed only when the details file will show it.
    const modeOptions = { mode: opts.mode, score: opts.details !== undefined, ...(maxFlavors ? { maxFlavors } : {}), ...(shortlist ? { shortlist } : {}) };
    // Chains (best, negative) run one image at a time anyway, so those go singly and the bar moves;
    // fast and classic rank a batch of images per pass over each bank.
    const step = opts.mode === 'fast' || opts.mode === 'classic' ? 16 : 1;
    for (let i = 0; i < images.ids.length; i += step) {
      const n = Math.min(step, images.ids.length - i);
      const rows = images.embeds.subarray(i * model.dim, (i + n) * model.dim);
      results.push(...(await interrogator.interrogate(rows, n, modeOptions)));
      bar.update(i + n + images.failures.length);
    }
    bar.stop();
    interrogator.close();
    model.close();
    await fs.mkdir(path.dirname(path.resolve(opts.output)), { recursive: true });
    await writePromptsCsv(opts.output, images.ids.map((imgId, i) => ({ imgId, prompt: results[i]!.prompt })));
    if (opts.details) {
      const details = images.ids.map((imgId, i) => ({ imgId, file: images.files[i], ...results[i] }));
      await writeFileAtomic(opts.details, JSON.stringify({ model: model.modelId, random: model.random, mode: opts.mode, images: details }, null, 2) + '\n');
    }
    const secs = (performance.now() - t0) / 1000;
    process.stderr.write(`${images.ids.length} prompts → ${opts.output} in ${secs.toFixed(1)} s (${(images.ids.length / secs).toFixed(2)} images/s)\n`);
    if (images.failures.length > 0) {
      process.stderr.write(`img2prompt: ${images.failures.length} of ${files.length} images could not be read (listed above)\n`);
      process.exitCode = 1;
    }
  });
}
