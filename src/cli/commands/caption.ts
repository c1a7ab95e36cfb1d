import path from 'node:path';
import { Option, type Command } from 'commander';
import { Captioner, DEFAULT_CAPTION_MODEL } from '../../caption/captioner.js';
import { DEFAULT_GENERATION, resolveGenerationOptions } from '../../caption/generate.js';
import type { EarlyStopping } from '../../caption/beam-search.js';
import { CAPTIONS_HEADER, captionsLine } from '../../caption/captions-csv.js';
import { CsvStream } from '../../submission/csv-stream.js';
import type { ImageFailure } from '../../image/batch-loader.js';
import { withClaimedOutputs } from '../../util/output-claim.js';
import { commandImageList, type ImageInputCliOptions } from '../input-images.js';
import { addImageSourceOptions, ALLOW_SVG_OPTION, parseFiniteNumber, parseNonNegativeInt, parsePositiveInt, urlFetchOptionsFrom, type ImageSourceCliOptions } from '../options.js';
import { downloadUrlImages } from '../url-inputs.js';

import { addErrorsFileOption, errorsFileFor, reportUnreadImages } from '../unread-images.js';
import type { CliContext } from '../context.js';

interface CaptionCliOptions extends ImageInputCliOptions, ImageSourceCliOptions {
  output: string;
  model: string;
  numBeams: string;
  maxLength: string;
  minLength: string;
  /** --no-repeat-ngram-size: commander files a `--no-` option under the name without the prefix. */
  repeatNgramSize: string;
  repetitionPenalty: string;
  lengthPenalty: string;
  earlyStopping: 'true' | 'false' | 'never';
  prefix: string;
  batchSize: string;
  errors?: string;
}

export function register(program: Command, cli: CliContext): void {
  const caption = program
    .command('caption')
    .description('Caption images with a BLIP or GIT model (beam search, as transformers generate()) → CSV (imgId,caption)')
    .argument('[inputs...]', 'image files, folders and/or http(s) URLs')
    .requiredOption('-o, --output <file>', 'captions CSV to write (imgId,caption)')
    .option('--model <name|dir>', 'captioner: an installed model (models pull/import/random) or a folder', DEFAULT_CAPTION_MODEL)
    .option('--num-beams <n>', 'beams (1: greedy search)', String(DEFAULT_GENERATION.numBeams))
    .option('--max-length <n>', 'longest sequence in tokens, the start token and the prefix included', String(DEFAULT_GENERATION.maxLength))
    .option('--min-length <n>', 'the caption cannot end before this many tokens (counted the same way)', String(DEFAULT_GENERATION.minLength))
    .option('--no-repeat-ngram-size <n>', 'no n-gram of this size occurs twice (0: off)', String(DEFAULT_GENERATION.noRepeatNgramSize))
    .option('--repetition-penalty <x>', 'scores of tokens already in the caption divided by x (1: off)', String(DEFAULT_GENERATION.repetitionPenalty))
    .option('--length-penalty <x>', 'beam search: finished captions scored by log-probability / length^x', String(DEFAULT_GENERATION.lengthPenalty))
    .addOption(new Option('--early-stopping <rule>', 'beam search stopping rule (transformers\' early_stopping)').choices(['true', 'false', 'never']).default('false'))
    .option('--prefix <text>', 'text the caption continues, left out of the result (BLIP\'s original captions used "a picture of")', '')
    .option('--batch-size <n>', 'images encoded and decoded together', '8')
    .option(...ALLOW_SVG_OPTION)
    .addHelpText(
      'after',
      `
Lengths count tokens as transformers does: the decoder's start token and the prefix's tokens included.
Defaults follow the CLIP Interrogator of the reference notebook: 8 beams, at most 32 tokens, at least 5.
An image that cannot be read gets no row, is listed in the errors file (and the first few on stderr),
and makes the exit code 1.`,
    );
  addErrorsFileOption(addImageSourceOptions(caption)).action(async (inputs: string[], opts: CaptionCliOptions) => {
    const batchSize = parsePositiveInt('--batch-size', opts.batchSize) ?? 8;
    const images = await commandImageList(inputs, opts, { shardBlock: batchSize });
    const { list, skipped } = images;
    const fetchOptions = urlFetchOptionsFrom(opts);
    const generation = {
      numBeams: parsePositiveInt('--num-beams', opts.numBeams),
      maxLength: parsePositiveInt('--max-length', opts.maxLength),
      minLength: parseNonNegativeInt('--min-length', opts.minLength),
      noRepeatNgramSize: parseNonNegativeInt('--no-repeat-ngram-size', opts.repeatNgramSize),
      repetitionPenalty: parseFiniteNumber('--repetition-penalty', opts.repetitionPenalty),
      lengthPenalty: parseFiniteNumber('--length-penalty', opts.lengthPenalty),
      earlyStopping: (opts.earlyStopping === 'never' ? 'never' : opts.earlyStopping === 'true') as EarlyStopping,
      prefix: opts.prefix,
    };
    // Checked before the model is opened; errors name the flags.
    resolveGenerationOptions(generation, (option) => `--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
    const errorsFile = errorsFileFor(opts);
    await withClaimedOutputs([opts.output, errorsFile], { createFolders: true }, async () => {
      const downloads = await downloadUrlImages(cli, list, fetchOptions);
      const captioner = await Captioner.open(opts.model).catch(async (err: unknown) => {
        await downloads.close();
        throw err;
      });
      if (captioner.random) cli.err(`warning: ${path.basename(captioner.dir)} has RANDOM weights: its captions mean nothing (for tests only)\n`);
      const bar = cli.progress('caption', list.length, 'images');
      const t0 = performance.now();
      // Rows stream to the CSV's temp as captions come: memory holds one buffer whatever the number of images.
      let rows: CsvStream | undefined;
      const failures: ImageFailure[] = [];
      try {
        rows = await CsvStream.create(opts.output, CAPTIONS_HEADER.join(','), list.idOrder());
        for await (const r of captioner.run(downloads.list, { ...generation, batchSize, allowSvg: opts.allowSvg, onProgress: (n) => bar.update(n) })) {
          if (r.failure !== undefined) {
            failures.push(downloads.reportAs({ file: r.file, reason: r.failure }));
          } else {
            await rows.add(r.id, captionsLine({ imgId: r.id, caption: r.caption }));
          }
        }
      } catch (err) {
        await rows?.abort();
        throw err;
      } finally {
        bar.stop();
        captioner.close();
        await downloads.close();
      }
      await rows.commit();
      const secs = (performance.now() - t0) / 1000;
      cli.err(`${rows.rows} captions → ${opts.output} in ${secs.toFixed(1)} s (${(rows.rows / secs).toFixed(2)} images/s)\n`);
      await reportUnreadImages(cli, { errorsFile, failures, skipped, total: list.length, consequence: 'they have no row' });
    }).finally(() => images.close());
  });
}
