import { promises as fs } from 'node:fs';
import { Img2PromptError } from '../../util/errors.js';
import { Option, type Command } from 'commander';
import { PredictEngine } from '../../predict/predict.js';
import { PredictRunOutputs } from '../../predict/run-outputs.js';
import { resumeFilesFor, settleEarlierRun } from '../../predict/resume-files.js';
import { withClaimedOutputs } from '../../util/output-claim.js';
import { commandImageList, type CommandImageList } from '../input-images.js';
import { ImageListFile } from '../../image/image-list-file.js';
import { DEFAULT_GAP_IMAGES } from '../../predict/predict.js';
import { addEngineOptions, addImageSourceOptions, engineOptionsFrom, imageBatchSize, parsePositiveInt, urlFetchOptionsFrom, type EngineCliOptions, type ImageSourceCliOptions } from '../options.js';
import { downloadUrlImages } from '../url-inputs.js';
import { phasedProgress } from '../progress.js';
import { addErrorsFileOption, errorsFileFor, summarizeUnreadImages, writeErrorsFile } from '../unread-images.js';
import type { CliContext } from '../context.js';
import type { ImageFailure } from '../../image/batch-loader.js';
import { commandLine, setInterruptHint } from '../interrupt.js';
import { captionModelFrom } from '../options.js';

/** Progress of a predict or fit-weights run: the modality-gap sample's encoding, then the images. */
export function runProgress(cli: CliContext, label: string): ReturnType<typeof phasedProgress<'members' | 'encoding images'>> {
  return phasedProgress<'members' | 'encoding images'>((phase) => (phase === 'members' ? label : `${label}: encoding images for the modality gap`), { stream: cli.io.stderr });
}

interface PredictCliOptions extends EngineCliOptions, ImageSourceCliOptions {
  output: string;
  promptsOut?: string;
  captionsOut?: string;
  nearestOut?: string;
  resume?: boolean;
  restart?: boolean;
  errors?: string;
}

/**
 * The images a predict run hands the engine. Unsharded: its images. With --shard: the images the
 * unsharded run would sample for the modality gap (the first batches of the whole list) and then the
 * shard's own, so every shard estimates the very gap of one unsharded run and the merged parts are its
 * bytes; the extra images (at most --gap-images, rounded up to whole batches) are encoded, not written.
 */
async function shardRunList(images: CommandImageList, gapImages: number, batchSize: number): Promise<ShardRun> {
  if (!images.unsharded) return { list: images.list, own: () => true, close: async () => undefined };
  const all = images.unsharded;
  const sampled = Math.min(all.length, Math.ceil(Math.min(all.length, gapImages) / batchSize) * batchSize);
  const prefix = await all.sources(0, sampled);
  const taken = new Set(prefix.map((s) => all.idOf(s)));
  // The shard's own images among the sample (at most --gap-images ids); every image after the sample is the shard's.
  const ownInSample = new Set<string>();
  const list = await ImageListFile.create(all.idOf);
  try {
    for (const source of prefix) await list.add(source);
    for await (const source of images.list) {
      const id = all.idOf(source);
      if (taken.has(id)) ownInSample.add(id);
      else await list.add(source);
    }
    await list.seal();
  } catch (err) {
    await list.close();
    throw err;
  }
  return { list, own: (index, id) => index >= sampled || ownInSample.has(id), close: () => list.close() };
}

/** The list a predict run hands the engine, and which of its results are the command's own. */
interface ShardRun {
  list: ImageListFile;
  own(index: number, id: string): boolean;
  close(): Promise<void>;
}

/** The same command line, continuing instead of starting over. */
function withResume(args: string[]): string[] {
  return [...args.filter((a) => a !== '--restart'), ...(args.includes('--resume') ? [] : ['--resume'])];
}

export function register(program: Command, cli: CliContext): void {
  const predict = addImageSourceOptions(addEngineOptions(
    program
      .command('predict')
      .description('Predict each image\'s prompt vector (ensemble of kNN over a prompt bank, linear map, CLIP Interrogator) → Kaggle submission')
      .argument('[inputs...]', 'image files, folders (their image files, sorted by name) and/or http(s) URLs')
      .requiredOption('-o, --output <file>', 'submission CSV to write (imgId_eId,val; 384 rows per image)')
      .option('--prompts-out <file>', 'also write the readable prompt per image (imgId,prompt)')
      .option('--captions-out <file>', 'also write the caption per image (imgId,caption; needs --caption-model)')
      .option('--nearest-out <file>', 'also write the nearest bank prompt per image and its CLIP similarity (imgId,prompt,similarity)')
      .option('--weights <file>', 'ensemble weights from fit-weights [default: equal weights]')
      .option('--allow-model-mismatch', 'use weights fitted for other models (warns instead of refusing)')
      .option('--resume', 'continue an interrupted run from <output>.ckpt')
      .addOption(new Option('--restart', 'discard the saved progress of an interrupted run (<output>.ckpt) and start over').conflicts('resume')),
  ));
  addErrorsFileOption(predict).action(async (inputs: string[], opts: PredictCliOptions) => {
    // Bad or clashing ids fail now, not after the run.
    const batchSize = imageBatchSize(opts);
    const fetchOptions = urlFetchOptionsFrom(opts);
    const gapImages = parsePositiveInt('--gap-images', opts.gapImages);
    const images = await commandImageList(inputs, opts, { shardBlock: batchSize });
    // A shard's run also holds images of other shards (the gap sample, see shardRunList): its own are the listed ones.
    const run = await shardRunList(images, gapImages ?? DEFAULT_GAP_IMAGES, batchSize).catch(async (err: unknown) => {
      await images.close();
      throw err;
    });
    const { list: ownList, skipped } = images;
    try {
      await predictImages(cli, opts, { run, ownList, skipped, batchSize, gapImages, fetchOptions });
    } finally {
      await run.close();
      await images.close();
    }
  });
}

/** The run itself: outputs claimed, URL images downloaded, the engine opened and its results written. */
async function predictImages(
  cli: CliContext, opts: PredictCliOptions,
  a: { run: ShardRun; ownList: ImageListFile; skipped: ImageFailure[]; batchSize: number; gapImages: number | undefined; fetchOptions: ReturnType<typeof urlFetchOptionsFrom> },
): Promise<void> {
  const { run, ownList, skipped, batchSize, gapImages, fetchOptions } = a;
  const output = opts.output;
  const checkpoint = `${output}.ckpt`;
  const errorsFile = errorsFileFor(opts);
  if (opts.captionsOut && captionModelFrom(opts) === undefined) throw new Img2PromptError(undefined, '--captions-out needs a --caption-model');
  const targets = [output, ...[opts.promptsOut, opts.captionsOut, opts.nearestOut].filter((f): f is string => f !== undefined), errorsFile];
  // Every output is checked and locked, and an earlier run's progress settled, before any model is opened.
  await withClaimedOutputs(targets, { createFolders: true }, async () => {
    await settleEarlierRun(checkpoint, opts);
    setInterruptHint(() => `what is finished is kept in ${checkpoint}; to continue, run: ${commandLine(cli.args, withResume)}`);

    // URL images go beside the checkpoint and stay there until the submission is written, so that a
    // resumed run reads the very files (and fingerprints) it started with; a fresh run fetches anew.
    const spool = `${checkpoint}.downloads`;
    if (!opts.resume) await fs.rm(spool, { recursive: true, force: true });
    const downloads = await downloadUrlImages(cli, run.list, fetchOptions, { dir: spool });
    const t0 = performance.now();
    const engine = await PredictEngine.open(engineOptionsFrom(opts, cli));
    const openSeconds = (performance.now() - t0) / 1000;
    const failures: ImageFailure[] = [];
    let resumed = 0;
    const progress = runProgress(cli, 'predict');
    // Every image's rows go to the outputs' temps as the run hands it out (fresh or from the checkpoint),
    // checked against the ids of the inputs, not the ones the run handed back: a lost image is refused.
    let outputs: PredictRunOutputs | undefined;
    try {
      outputs = await PredictRunOutputs.create({ submission: output, prompts: opts.promptsOut, captions: opts.captionsOut, nearest: opts.nearestOut }, ownList.idOrder());
      for await (const r of engine.run(downloads.list, { batchSize, gapImages, exif: opts.exif, checkpoint, resume: opts.resume, restart: opts.restart, allowSvg: opts.allowSvg, onProgress: progress.onProgress })) {
        if (!run.own(r.index, r.id)) continue;
        if (r.resumed) resumed++;
        if (r.failure !== undefined) failures.push(downloads.reportAs({ file: r.file, reason: r.failure }));
        await outputs.add(r);
      }
    } catch (err) {
      await outputs?.abort();
      throw err;
    } finally {
      progress.stop();
      engine.close();
    }

    await outputs.finish((file) => cli.err(`img2prompt: no prompts to write to ${file} (no image could be read)\n`));
    await writeErrorsFile({ errorsFile, failures, skipped });
    // The submission is safely in place: the resume state has done its job.
    for (const f of resumeFilesFor(checkpoint)) await fs.rm(f, { force: true });
    await downloads.close();

    const secs = (performance.now() - t0) / 1000;
    const fromCheckpoint = resumed > 0 ? `, ${resumed} from the checkpoint` : '';
    const { imagesEncoded, embeddingsReused } = engine.counts;
    const reused = embeddingsReused > 0 ? ` and reused ${embeddingsReused} embeddings of the gap sample` : '';
    cli.err(
      `${ownList.length} images → ${output} (valid) in ${secs.toFixed(1)} s${fromCheckpoint}; CLIP encoded ${imagesEncoded} images${reused}; members: ${engine.members.join(', ')}\n`,
    );
    const stages = [`open models and banks ${openSeconds.toFixed(2)} s`, ...Object.entries(engine.stageSeconds).map(([stage, t]) => `${stage} ${t.toFixed(2)} s`)];
    if (stages.length > 0) cli.err(`time by stage: ${stages.join('; ')}\n`);
    summarizeUnreadImages(cli, { errorsFile, failures, skipped, total: ownList.length, consequence: 'they got the fallback vector' });
  });
}
