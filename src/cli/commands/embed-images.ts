import type { Command } from 'commander';
import { withClaimedOutputs } from '../../util/output-claim.js';
import { NpyStreamWriter } from '../../util/npy-stream.js';
import { CsvStream } from '../../submission/csv-stream.js';
import type { ImageFailure } from '../../image/batch-loader.js';
import { ClipModel } from '../../clip/model.js';
import { DEFAULT_MAX_PIXELS } from '../../image/decode.js';
import { commandImageList, type ImageInputCliOptions } from '../input-images.js';
import { addClipModelOption, addImageBatchOption, addImageOptions, addImageSourceOptions, ALLOW_SVG_OPTION, imageBatchSize, parsePositiveInt, urlFetchOptionsFrom, type ImageCliOptions, type ImageSourceCliOptions } from '../options.js';
import { downloadUrlImages } from '../url-inputs.js';

import { addErrorsFileOption, errorsFileFor, reportUnreadImages } from '../unread-images.js';
import type { CliContext } from '../context.js';

/** `embeds.npy` → `embeds.ids.txt`. */
export function idsPathFor(npyPath: string): string {
  return npyPath.endsWith('.npy') ? npyPath.slice(0, -4) + '.ids.txt' : npyPath + '.ids.txt';
}

interface EmbedImagesCliOptions extends ImageCliOptions, ImageInputCliOptions, ImageSourceCliOptions {
  model: string;
  output: string;
  batchSize: string;
  maxPixels?: string;
  errors?: string;
}

export function register(program: Command, cli: CliContext): void {
  const command = program
    .command('embed-images')
    .description('CLIP image embeddings of a folder or list of images → NumPy .npy (float32 [N, D], L2-normalised) + <out>.ids.txt')
    .argument('[inputs...]', 'image files, folders (their image files, sorted by name) and/or http(s) URLs');
  addClipModelOption(addImageOptions(addImageSourceOptions(command))).requiredOption('-o, --output <file>', 'output .npy file; image ids go to <output without .npy>.ids.txt');
  addErrorsFileOption(addImageBatchOption(command, 'images per inference call'))
    .option('--max-pixels <n>', `images with more pixels (width x height) are reported as failed, not decoded (default ${DEFAULT_MAX_PIXELS})`)
    .option(...ALLOW_SVG_OPTION)
    .action(async (inputs: string[], opts: EmbedImagesCliOptions) => {
      const batchSize = imageBatchSize(opts);
      const maxPixels = parsePositiveInt('--max-pixels', opts.maxPixels);
      const images = await commandImageList(inputs, opts, { shardBlock: batchSize });
      const { list, skipped } = images;
      const fetchOptions = urlFetchOptionsFrom(opts);
      const errorsFile = errorsFileFor(opts);
      await withClaimedOutputs([opts.output, idsPathFor(opts.output), errorsFile], { createFolders: true }, async () => {
        const downloads = await downloadUrlImages(cli, list, fetchOptions);
        const model = await ClipModel.open(opts.model, { towers: ['vision'], imageProcessor: opts.imageProcessor }).catch(async (err: unknown) => {
          await downloads.close();
          throw err;
        });
        if (model.random) cli.err(`warning: ${model.name} has RANDOM weights: these embeddings are for testing only\n`);
        const bar = cli.progress('embed-images', list.length, 'images');
        const t0 = performance.now();
        // Rows go to the .npy (its header patched with the count at the end) and ids to their list batch
        // by batch: memory holds one batch whatever the number of images.
        let npy: NpyStreamWriter | undefined;
        let idList: CsvStream | undefined;
        const failures: ImageFailure[] = [];
        let inferenceSeconds = 0;
        try {
          npy = await NpyStreamWriter.create(opts.output, model.dim, list.length);
          idList = await CsvStream.create(idsPathFor(opts.output), undefined, list.idOrder());
          for await (const batch of model.encodeBatches(downloads.list, { batchSize, maxPixels, allowSvg: opts.allowSvg, exif: opts.exif })) {
            // The loader names an image by the file it read: a URL's failure is named by the URL (the list's label).
            for (const { index, reason } of batch.failures) failures.push({ file: (await list.sources(index, index + 1))[0]!, reason });
            if (batch.ids.length > 0) {
              inferenceSeconds += batch.inferenceSeconds;
              await npy.append(batch.embeds);
              for (const id of batch.ids) await idList.add(id, id);
            }
            bar.update(batch.start + batch.count);
          }
        } catch (err) {
          await npy?.abort();
          await idList?.abort();
          throw err;
        } finally {
          bar.stop();
          model.close();
          await downloads.close();
        }
        const secs = (performance.now() - t0) / 1000;
        const rows = npy.rows;
        try {
          await npy.finish();
        } catch (err) {
          await idList.abort();
          throw err;
        }
        await idList.commit();
        cli.err(
          `${rows} images → ${opts.output} [${rows}, ${model.dim}] in ${secs.toFixed(2)} s ` +
            `(${(rows / secs).toFixed(1)} images/s; inference ${inferenceSeconds.toFixed(2)} s)\n`,
        );
        await reportUnreadImages(cli, { errorsFile, failures: failures.map(downloads.reportAs), skipped, total: list.length, consequence: 'they have no row' });
      }).finally(() => images.close());
    });
}
