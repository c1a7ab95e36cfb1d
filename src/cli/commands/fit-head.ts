import { Option, type Command } from 'commander';
import { Img2PromptError } from '../../util/errors.js';
import { withClaimedOutputs } from '../../util/output-claim.js';
import { ClipModel } from '../../clip/model.js';
import { embedPrompts } from '../../submission/embed-prompts.js';
import { MiniLMTextSide } from '../../predict/minilm-text-side.js';
import { HEAD_KINDS, PromptHead, type HeadKind } from '../../predict/head.js';
import { saveHead } from '../../predict/head-file.js';
import { labelledImages } from '../labelled-images.js';
import { addClipModelOption, addImageBatchOption, addImageOptions, ALLOW_SVG_OPTION, imageBatchSize, parseNonNegativeInt, parsePositiveInt, type ImageCliOptions } from '../options.js';
import type { CliContext } from '../context.js';

interface FitHeadCliOptions extends ImageCliOptions {
  images: string;
  truth: string;
  kind: HeadKind;
  model: string;
  folds: string;
  seed?: string;
  hidden?: string;
  epochs?: string;
  batchSize: string;
  allowSvg?: boolean;
  output: string;
}

/** One line per λ tried (ridge) or the early-stopping outcome (MLP). */
function describeFit(head: PromptHead): string {
  const t = head.training;
  if (head.kind === 'ridge') {
    const lines = t.lambdaScores!.map((s) => `  λ ${String(s.lambda).padEnd(6)} ${s.cosine.toFixed(4)}${s.lambda === t.lambda ? '  ← chosen' : ''}`);
    return `ridge, ${t.folds}-fold cross-validated mean cosine per λ:\n${lines.join('\n')}\n`;
  }
  return `mlp, hidden ${(head.weights as { mlp: { hidden: number } }).mlp.hidden}: held-out mean cosine ${t.heldOutCosine.toFixed(4)} at epoch ${t.bestEpoch} of ${t.epochs}\n`;
}

export function register(program: Command, cli: CliContext): void {
  const command = program
    .command('fit-head')
    .description('Fit a head CLIP image embedding → MiniLM prompt vector on images with known prompts → head JSON for predict --member NAME=head.json')
    .requiredOption('--images <dir>', 'folder of images whose prompts are known')
    .requiredOption('--truth <csv>', 'their true prompts (imgId,prompt)')
    .addOption(new Option('--kind <kind>', 'ridge: closed form, λ by k-fold cross-validation; mlp: one hidden layer on the cosine loss, stopped early on a held-out fold').choices([...HEAD_KINDS]).default('ridge'))
    .option('--folds <n>', 'folds for λ selection (ridge); the MLP holds out one fold of this many', '5')
    .option('--seed <n>', 'seed of the folds and the MLP initialisation (default 0)')
    .option('--hidden <n>', 'MLP hidden units (default 512)')
    .option('--epochs <n>', 'MLP: most epochs (default 200; stops earlier when the held-out fold stops improving)')
    .requiredOption('-o, --output <file>', 'head JSON to write');
  addImageBatchOption(addClipModelOption(addImageOptions(command)))
    .option(...ALLOW_SVG_OPTION)
    .action(async (opts: FitHeadCliOptions) => {
      const folds = parsePositiveInt('--folds', opts.folds) ?? 5;
      if (folds < 2) throw new Img2PromptError(undefined, `--folds must be at least 2, got ${folds}`);
      const seed = opts.seed === undefined ? 0 : parseNonNegativeInt('--seed', opts.seed);
      const hidden = parsePositiveInt('--hidden', opts.hidden);
      const maxEpochs = parsePositiveInt('--epochs', opts.epochs);
      const { files, truthOf } = await labelledImages(cli, opts.images, opts.truth, opts, folds, `${folds}-fold cross-validation (or lower --folds)`, 'left out of the fit');

      await withClaimedOutputs([opts.output], { createFolders: true }, async () => {
        const clip = await ClipModel.open(opts.model, { towers: ['vision'], imageProcessor: opts.imageProcessor });
        let minilm: MiniLMTextSide | undefined;
        try {
          if (clip.random) cli.err(`warning: CLIP model ${clip.name} has RANDOM weights: a head fitted on its embeddings means nothing (for tests only)\n`);
          minilm = await MiniLMTextSide.open();
          const bar = cli.progress('fit-head', files.length, 'images');
          let encoded;
          try {
            encoded = await clip.encodeImages(files, { batchSize: imageBatchSize(opts), allowSvg: opts.allowSvg, exif: opts.exif, onProgress: (done) => bar.update(done) });
          } finally {
            bar.stop();
          }
          for (const f of encoded.failures) cli.err(`img2prompt: ${f.file}: ${f.reason} (left out of the fit)\n`);
          if (encoded.ids.length < folds) {
            throw new Img2PromptError(opts.truth, `${encoded.ids.length} readable images with a known prompt are too few for ${folds}-fold cross-validation: need at least ${folds}`);
          }
          const truth = await embedPrompts(encoded.ids.map((id) => ({ imgId: id, prompt: truthOf.get(id)! })), minilm.embedder);
          const fittedFor = { clipModel: clip.modelId, minilmModel: minilm.identity };
          const head = PromptHead.fit(encoded.embeds, clip.dim, truth, minilm.dim, fittedFor, {
            kind: opts.kind, folds, seed, label: opts.truth, mlp: { ...(hidden ? { hidden } : {}), ...(maxEpochs ? { maxEpochs } : {}) },
          });
          cli.out(describeFit(head));
          await saveHead(opts.output, head);
          cli.err(`${opts.kind} head on ${encoded.ids.length} images (clip ${fittedFor.clipModel}, ${fittedFor.minilmModel}) → ${opts.output}; use it with predict --member NAME=${opts.output}\n`);
        } finally {
          minilm?.close();
          clip.close();
        }
      });
    });
}
