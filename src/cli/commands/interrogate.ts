import { Option, type Command } from 'commander';
import { Img2PromptError } from '../../util/errors.js';
import { withClaimedOutputs } from '../../util/output-claim.js';
import { JsonListStream } from '../../util/json-list-stream.js';
import { CsvStream } from '../../submission/csv-stream.js';
import { checkPromptRow, promptsLine, PROMPTS_HEADER } from '../../submission/prompts-csv.js';
import type { InterrogateMode } from '../../interrogate/types.js';
import { interrogate } from '../../interrogate/interrogate.js';
import type { ImageFailure } from '../../image/batch-loader.js';
import { openInterrogator } from './labels.js';
import { commandImageList, type ImageInputCliOptions } from '../input-images.js';
import { addImageBatchOption, addImageOptions, addImageSourceOptions, addLabelOptions, ALLOW_SVG_OPTION, imageBatchSize, parsePositiveInt, urlFetchOptionsFrom, type ImageCliOptions, type ImageSourceCliOptions, type LabelOptions } from '../options.js';
import { downloadUrlImages } from '../url-inputs.js';

import { addErrorsFileOption, errorsFileFor, reportUnreadImages } from '../unread-images.js';
import type { CliContext } from '../context.js';
import { addCaptionModelOption, captionModelFrom } from '../options.js';

interface InterrogateCliOptions extends LabelOptions, ImageInputCliOptions, ImageCliOptions, ImageSourceCliOptions {
  mode: InterrogateMode;
  output: string;
  details?: string;
  batchSize: string;
  errors?: string;
  maxFlavors?: string;
  shortlist?: string;
  chainCache: 'on' | 'off';
  captionModel: string;
}

export function register(program: Command, cli: CliContext): void {
  const command = addImageSourceOptions(addCaptionModelOption(addLabelOptions(addImageOptions(
    program
      .command('interrogate')
      .description('CLIP Interrogator: compose a prompt per image from the label banks → prompts CSV (imgId,prompt), ready for `img2prompt embed`')
      .argument('[inputs...]', 'image files, folders and/or http(s) URLs')
      .addOption(
        new Option('--mode <mode>', 'fast: best labels that fit 77 tokens; classic: "medium by artist, trending, movement, flavors"; best: greedy chain; negative: least similar')
          .choices(['fast', 'classic', 'best', 'negative'])
          .default('fast'),
      )
      .requiredOption('-o, --output <file>', 'prompts CSV to write (imgId,prompt)')
      .option('--details <file>', 'also write a JSON file with the chosen labels and scores per image')
      .option('--max-flavors <n>', 'labels a mode may add (classic: 3; fast/best/negative: 32)')
      .option('--shortlist <n>', 'best/negative: labels shortlisted by image similarity before chaining (default 2048)')
      .addOption(
        new Option('--chain-cache <on|off>', 'best/negative: encode the prompt shared by each chain step once (off: every candidate in full; same labels, several times slower)')
          .choices(['on', 'off'])
          .default('on'),
      )
      .option(...ALLOW_SVG_OPTION),
  ))));
  addErrorsFileOption(addImageBatchOption(command)).action(async (inputs: string[], opts: InterrogateCliOptions) => {
    // Names and ids are checked here, before the banks are opened and the images encoded.
    const batchSize = imageBatchSize(opts);
    const images = await commandImageList(inputs, opts, { shardBlock: batchSize });
    const { list, skipped } = images;
    const fetchOptions = urlFetchOptionsFrom(opts);
    const maxFlavors = parsePositiveInt('--max-flavors', opts.maxFlavors);
    const shortlist = parsePositiveInt('--shortlist', opts.shortlist);
    const errorsFile = errorsFileFor(opts);
    await withClaimedOutputs([opts.output, ...(opts.details ? [opts.details] : []), errorsFile], { createFolders: true }, async () => {
      const downloads = await downloadUrlImages(cli, list, fetchOptions);
      const engine = await openInterrogator(cli, { ...opts, captionModel: captionModelFrom(opts) }).catch(async (err: unknown) => {
        await downloads.close();
        throw err;
      });
      const bar = cli.progress(`interrogate ${opts.mode}`, list.length, 'images');
      const t0 = performance.now();
      // The prompts and the details stream to their temps image by image: memory holds one buffer of
      // rows whatever the number of images; the files appear, whole, once the last image is in.
      let prompts: CsvStream | undefined;
      let details: JsonListStream | undefined;
      const failures: ImageFailure[] = [];
      try {
        prompts = await CsvStream.create(opts.output, PROMPTS_HEADER.join(','), list.idOrder());
        if (opts.details) details = await JsonListStream.create(opts.details, { model: engine.clip.modelId, random: engine.clip.random, mode: opts.mode }, 'images');
        for await (const r of interrogate(downloads.list, {
          engine,
          mode: opts.mode,
          batchSize,
          maxFlavors,
          shortlist,
          chainCache: opts.chainCache === 'on',
          allowSvg: opts.allowSvg,
          exif: opts.exif,
          // The CSV holds only prompts: the prompt's own similarity (a text-tower pass per image in fast and
          // classic) is computed only when the details file will show it.
          score: opts.details !== undefined,
          onProgress: (n, _total, phase) => {
            if (phase === 'interrogating') bar.update(n);
          },
        })) {
          if (r.failure !== undefined) {
            failures.push(downloads.reportAs({ file: r.file, reason: r.failure }));
          } else {
            const row = { imgId: r.id, prompt: r.prompt! };
            checkPromptRow(opts.output, row, prompts.rows + 1);
            await prompts.add(r.id, promptsLine(row));
            const { id, mode, caption, prompt, similarity, labels, picked } = r;
            await details?.add({
              imgId: id, file: r.file, mode, ...(caption !== undefined ? { caption } : {}), prompt, similarity, labels, ...(picked ? { picked } : {}),
            });
          }
        }
        if (prompts.rows === 0) throw new Img2PromptError(opts.output, 'cannot write a prompts CSV with no rows');
      } catch (err) {
        await prompts?.abort();
        await details?.abort();
        throw err;
      } finally {
        bar.stop();
        engine.close();
        await downloads.close();
      }
      try {
        await prompts.commit();
      } catch (err) {
        await details?.abort();
        throw err;
      }
      await details?.commit();
      const count = prompts.rows;
      const secs = (performance.now() - t0) / 1000;
      cli.err(`${count} prompts → ${opts.output} in ${secs.toFixed(1)} s (${(count / secs).toFixed(2)} images/s)\n`);
      await reportUnreadImages(cli, { errorsFile, failures, skipped, total: list.length, consequence: 'they have no row' });
    }).finally(() => images.close());
  });
}
