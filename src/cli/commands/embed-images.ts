import type { Command } from 'commander';
import { createProgress } from '../progress.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { withClaimedOutputs } from '../../util/output-claim.js';
import { writeNpy } from '../../util/npy.js';
import { ClipModel } from '../../clip/model.js';
import { parsePositiveInt } from '../../submission/cli-helpers.js';
import { DEFAULT_MAX_PIXELS } from '../../image/decode.js';
import { ALLOW_SVG_OPTION, commandImages, reportImageFailure, type ImageInputCliOptions } from '../input-images.js';
import { addImageOptions, type ImageCliOptions } from '../image-options.js';

/** `embeds.npy` → `embeds.ids.txt`. */
export function idsPathFor(npyPath: string): string {
  return npyPath.endsWith('.npy') ? npyPath.slice(0, -4) + '.ids.txt' : npyPath + '.ids.txt';
}

export function register(program: Command): void {
  addImageOptions(program
    .command('embed-images')
    .description('CLIP image embeddings of a folder or list of images → NumPy .npy (float32 [N, D], L2-normalised) + <out>.ids.txt')
    .argument('<inputs...>', 'image files and/or folders (folders: their image files, sorted by name)')
    .requiredOption('--model <name>', 'CLIP model in the cache (models pull/import/random) or a model folder')
    .requiredOption('-o, --output <file>', 'output .npy file; image ids go to <output without .npy>.ids.txt')
    .option('--batch-size <n>', 'images per inference call', '16')
    .option('--max-pixels <n>', `images with more pixels (width x height) are reported as failed, not decoded (default ${DEFAULT_MAX_PIXELS})`)
    .option(...ALLOW_SVG_OPTION))
    .action(async (inputs: string[], opts: ImageCliOptions & ImageInputCliOptions & { model: string; output: string; batchSize: string; maxPixels?: string }) => {
      const batchSize = parsePositiveInt('--batch-size', opts.batchSize) ?? 16;
      const maxPixels = parsePositiveInt('--max-pixels', opts.maxPixels);
      const { files, skipped } = await commandImages(inputs, opts);
      await withClaimedOutputs([opts.output, idsPathFor(opts.output)], { createFolders: true }, async () => {
        const model = await ClipModel.open(opts.model, { towers: ['vision'], imageProcessor: opts.imageProcessor });
        if (model.random) process.stderr.write(`warning: ${model.name} has RANDOM weights: these embeddings are for testing only\n`);
        skipped.forEach(reportImageFailure);
        const bar = createProgress('embed-images', files.length, 'images');
        const t0 = performance.now();
        const result = await model.encodeImages(files, {
          batchSize,
          maxPixels,
          allowSvg: opts.allowSvg,
          exif: opts.exif,
          onProgress: (done) => bar.update(done),
          onFailure: reportImageFailure,
        });
        bar.stop();
        model.close();
        const secs = (performance.now() - t0) / 1000;
        await writeNpy(opts.output, result.embeds, [result.ids.length, model.dim]);
        await writeFileAtomic(idsPathFor(opts.output), result.ids.join('\n') + (result.ids.length ? '\n' : ''));
        process.stderr.write(
          `${result.ids.length} images → ${opts.output} [${result.ids.length}, ${model.dim}] in ${secs.toFixed(2)} s ` +
            `(${(result.ids.length / secs).toFixed(1)} images/s; inference ${result.inferenceSeconds.toFixed(2)} s)\n`,
        );
        const unread = result.failures.length + skipped.length;
        if (unread > 0) {
          process.stderr.write(`img2prompt: ${unread} of ${files.length + skipped.length} images could not be read (listed above)\n`);
          process.exitCode = 1;
        }
      });
    });
}
