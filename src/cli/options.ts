/**
 * The CLI's shared options: each flag that more than one command takes is defined here once (its name,
 * help text, default and parser), so `--model`, `--batch-size`, `--labels`, `--exif` ... mean the same
 * thing, with the same default, in every command that has them.
 */
import { Option, type Command } from 'commander';
import { Img2PromptError } from '../util/errors.js';
import { DEFAULT_CLIP_MODEL } from '../clip/model.js';
import { DEFAULT_IMAGE_BATCH } from '../image/batch-loader.js';
import { EXIF_MODES, type ExifMode } from '../image/decode.js';
import { CLIP_IMAGE_PROCESSORS, type ClipImageProcessor } from '../image/image-processor.js';
import { defaultLabelsDir } from '../interrogate/label-banks.js';
import { DEFAULT_BANK_DTYPE, type BankDtype, type InterrogateMode } from '../interrogate/types.js';
import { onnxMemberNameProblem, parseMemberList } from '../predict/members.js';
import type { OnnxMemberSpec } from '../predict/onnx-member.js';
import { DEFAULT_GAP_IMAGES, type PredictEngineOptions } from '../predict/predict.js';
import { PRECISIONS } from '../runtime/precision.js';
import { setPrecisionVariable } from '../config.js';
import type { CliContext } from './context.js';
import { DEFAULT_FETCH_CONCURRENCY, DEFAULT_FETCH_TIMEOUT_MS, DEFAULT_MAX_DOWNLOAD_BYTES, type UrlFetchOptions } from '../image/url-fetch.js';

// ---- values ----

/** `--name` value as a positive integer, or a one-line error naming the option. */
export function parsePositiveInt(option: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[0-9]+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new Img2PromptError(undefined, `${option} must be a positive integer, got "${text}"`);
  }
  return Number(text);
}

/** `--name` value as an integer >= 0, or a one-line error naming the option. */
export function parseNonNegativeInt(option: string, text: string): number {
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new Img2PromptError(undefined, `${option} must be a non-negative integer, got "${text}"`);
  return Number(text);
}

/** A non-negative finite number option, or a one-line error naming it. */
export function parseNonNegative(option: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0) throw new Img2PromptError(undefined, `${option} must be a number >= 0, got "${text}"`);
  return value;
}

/** Any finite number, or a one-line error naming the option. */
export function parseFiniteNumber(option: string, text: string): number {
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v)) throw new Img2PromptError(undefined, `${option} must be a number, got "${text}"`);
  return v;
}

/** Commander collector for an option given once per value (`--x a --x b`): unlike `<v...>` it cannot swallow the positional arguments after it. */
export function collectRepeated(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

// ---- options of the commands that read images ----

/** `--allow-svg`, for `.option(...ALLOW_SVG_OPTION)` on every command that reads images. */
export const ALLOW_SVG_OPTION = [
  '--allow-svg',
  'also read SVG files (vector images: rendered, may load files they reference) [default: raster images only]',
] as const;

/** Where the images come from besides the command line, which share of them to take, and how URLs are fetched. */
export interface ImageSourceCliOptions {
  from?: string;
  shard?: string;
  maxDownloadMb?: string;
  downloadTimeout?: string;
  downloadConcurrency?: string;
}

/** Adds --from, --shard and the URL download options to a command that reads images (see input-images.ts). */
export function addImageSourceOptions(cmd: Command): Command {
  return cmd
    .option('--from <file>', 'also read the inputs listed in this file, one path or http(s) URL a line (-: standard input; blank lines and # comments skipped)')
    .option('--shard <I/N>', 'only the images of shard I of N (whole batches of the listing, by a hash of their first image id: the same split on every machine that lists the same inputs); put the parts together with `img2prompt merge`')
    .option('--max-download-mb <n>', `URL images larger than this many MiB are refused (default ${DEFAULT_MAX_DOWNLOAD_BYTES / 1024 / 1024})`)
    .option('--download-timeout <s>', `seconds one try of a URL download may take (default ${DEFAULT_FETCH_TIMEOUT_MS / 1000})`)
    .option('--download-concurrency <n>', `URL downloads at once (default ${DEFAULT_FETCH_CONCURRENCY})`);
}

/** The URL fetch options of addImageSourceOptions's flags. */
export function urlFetchOptionsFrom(opts: ImageSourceCliOptions): UrlFetchOptions {
  const mb = parseNonNegative('--max-download-mb', opts.maxDownloadMb);
  const seconds = parseNonNegative('--download-timeout', opts.downloadTimeout);
  return {
    maxBytes: mb === undefined ? undefined : Math.floor(mb * 1024 * 1024),
    timeoutMs: seconds === undefined ? undefined : seconds * 1000,
    concurrency: parsePositiveInt('--download-concurrency', opts.downloadConcurrency),
  };
}

/** How the commands that read images decode and preprocess them. */
export interface ImageCliOptions {
  exif: ExifMode;
  imageProcessor?: ClipImageProcessor;
}

/** Adds --exif and --image-processor to a command that reads images. */
export function addImageOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('--exif <mode>', 'apply: turn photos upright by their EXIF orientation; ignore: keep the stored pixels, as open_clip, transformers and the CLIP Interrogator do')
        .choices([...EXIF_MODES])
        .default('apply'),
    )
    .addOption(
      new Option('--image-processor <name>', "preprocess images as open_clip or transformers (hf) does [default: the checkpoint's own, by its layout]")
        .choices([...CLIP_IMAGE_PROCESSORS]),
    );
}

/** `--batch-size`, images per vision-tower call, defaulting to DEFAULT_IMAGE_BATCH; read it with imageBatchSize. */
export function addImageBatchOption(cmd: Command, description = 'images per vision-tower call'): Command {
  return cmd.option('--batch-size <n>', description, String(DEFAULT_IMAGE_BATCH));
}

/** The value of addImageBatchOption's flag. */
export function imageBatchSize(opts: { batchSize?: string }): number {
  return parsePositiveInt('--batch-size', opts.batchSize) ?? DEFAULT_IMAGE_BATCH;
}

/** `--model`, the CLIP model, with the same default in every command that opens one. */
export function addClipModelOption(cmd: Command): Command {
  return cmd.option('--model <name>', 'CLIP model in the cache (models pull/import/random) or a model folder', DEFAULT_CLIP_MODEL);
}

// ---- label banks (labels build, interrogate) ----

export interface LabelOptions {
  model: string;
  labelsDir: string;
  labels?: string[];
  dtype: BankDtype;
}

/** `--dtype` of the cached CLIP-side banks. */
function bankDtypeOption(description: string): Option {
  return new Option('--dtype <dtype>', description).choices(['fp32', 'fp16']).default(DEFAULT_BANK_DTYPE);
}

/** Options shared by `labels build` and `interrogate`. */
export function addLabelOptions(cmd: Command): Command {
  return addClipModelOption(cmd)
    .option('--labels-dir <dir>', 'folder with the built-in lists (artists, flavors, mediums, movements, sites, negative)', defaultLabelsDir())
    // One path per --labels, repeatable: a variadic option would swallow the image paths after it.
    .option('--labels <path>', 'extra label list: a file (one label per line) or a folder of .txt files, each one bank; repeat for more', collectRepeated)
    .addOption(bankDtypeOption('storage of the cached bank matrices (fp16 halves disk and memory)'));
}

// ---- the prompt bank (predict, fit-weights, fit-map) ----

/** `--prompts-bank`, repeatable. */
export function addPromptsBankOption(cmd: Command): Command {
  return cmd.option('--prompts-bank <file>', 'prompt corpus file, one prompt per line; repeat for more [default: every .txt in ../shared/assets/eval/prompts]', collectRepeated);
}

/** `--dtype` of the cached CLIP-side prompt bank (fit-map; predict's engine options have their own wording). */
export function addPromptBankDtypeOption(cmd: Command): Command {
  return cmd.addOption(bankDtypeOption('storage of the cached CLIP-side bank'));
}

// ---- the predict engine (predict, fit-weights) ----

/** Options shared by `predict` and `fit-weights` (everything that opens the engine). */
export interface EngineCliOptions extends ImageCliOptions {
  allowSvg?: boolean;
  model: string;
  members?: string;
  member?: string[];
  weights?: string;
  allowModelMismatch?: boolean;
  promptsBank?: string[];
  dtype: BankDtype;
  labelsDir: string;
  labels?: string[];
  map?: string;
  lambda?: string;
  mode: InterrogateMode;
  k?: string;
  temperature?: string;
  batchSize: string;
  gapImages?: string;
  captionModel: string;
}

// ---- --caption-model (interrogate, predict, fit-weights) ----

/** --caption-model: the captioner whose caption heads every prompt (and feeds predict's captioner member). */
export function addCaptionModelOption(cmd: Command): Command {
  return cmd.option(
    '--caption-model <name|none>',
    'captioner (models pull blip-large, or a folder) whose caption heads every interrogator prompt and feeds the captioner member; none: no caption',
    'none',
  );
}

/** The captionModel option of the engines: undefined for none. */
export function captionModelFrom(opts: { captionModel?: string }): string | undefined {
  return opts.captionModel === undefined || opts.captionModel === 'none' ? undefined : opts.captionModel;
}

export function addEngineOptions(cmd: Command): Command {
  addClipModelOption(addImageOptions(cmd))
    .option('--members <list>', 'comma-separated members: knn, map, interrogator, captioner (needs --caption-model), onnx:NAME (needs --member NAME=FILE), head:NAME (needs --member NAME=FILE.json from fit-head) [default: the weighted ones, else knn,map,interrogator (+captioner with a caption model, + every --member)]')
    .option('--member <name=file>', 'ONNX model image → 384-d prompt vector joining the ensemble as member onnx:NAME; its preprocessing in FILE.json beside it or in its metadata (see the README); a FILE.json from fit-head joins as member head:NAME; repeat for more', collectRepeated);
  addCaptionModelOption(cmd);
  addPromptsBankOption(cmd)
    .option('--map <file>', 'linear map from fit-map [default: <home>/maps/<model>/<bank>.json, fitted and saved when missing]')
    .option('--lambda <x>', 'ridge strength when the map is fitted on the fly [default: chosen on held-out prompts]')
    .addOption(new Option('--mode <mode>', 'interrogator mode').choices(['fast', 'classic', 'best', 'negative']).default('fast'))
    .option('--k <n>', 'kNN: neighbours averaged per image (default 16)')
    .option('--temperature <t>', 'kNN: softmax temperature over neighbour similarities (default 0.02)')
    .option('--labels-dir <dir>', 'interrogator: folder with the built-in label lists', defaultLabelsDir())
    .option('--labels <path>', 'interrogator: extra label list (a file, or a folder of .txt files); repeat for more', collectRepeated)
    .addOption(bankDtypeOption('storage of the cached CLIP-side banks'));
  return addImageBatchOption(cmd, 'images per CLIP batch (and per checkpoint append)')
    .option('--gap-images <n>', `images sampled for the modality gap of the map member (default ${DEFAULT_GAP_IMAGES})`)
    .option(...ALLOW_SVG_OPTION);
}

/**
 * `--member NAME=FILE.onnx` values → the engines' onnxMembers, refusing a malformed one or a bad or
 * repeated name. A FILE ending in .json is a fitted head (fit-head); splitMemberSpecs tells them apart.
 */
export function parseOnnxMemberOptions(values: readonly string[] | undefined): OnnxMemberSpec[] | undefined {
  if (values === undefined) return undefined;
  const seen = new Set<string>();
  return values.map((text) => {
    const at = text.indexOf('=');
    const name = text.slice(0, Math.max(at, 0)).trim();
    const file = text.slice(at + 1);
    if (at < 0 || file === '') throw new Img2PromptError(undefined, `--member must be NAME=FILE.onnx, got "${text}"`);
    const problem = onnxMemberNameProblem(name);
    if (problem) throw new Img2PromptError(undefined, `--member ${text}: the name "${name}" ${problem}`);
    if (seen.has(name)) throw new Img2PromptError(undefined, `--member: the name "${name}" is given twice`);
    seen.add(name);
    return { name, file };
  });
}

/** `--member` specs split by file: `.json` → fitted heads (member head:NAME), the rest → ONNX models (onnx:NAME). */
export function splitMemberSpecs(specs: readonly OnnxMemberSpec[] | undefined): { onnxMembers?: OnnxMemberSpec[]; heads?: OnnxMemberSpec[] } {
  if (specs === undefined) return {};
  const isHead = (s: OnnxMemberSpec) => s.file.toLowerCase().endsWith('.json');
  const heads = specs.filter(isHead);
  const onnx = specs.filter((s) => !isHead(s));
  return { ...(onnx.length > 0 ? { onnxMembers: onnx } : {}), ...(heads.length > 0 ? { heads } : {}) };
}

/** Engine options from the CLI; notices and bank-build progress go to the run's stderr. */
export function engineOptionsFrom(opts: EngineCliOptions, cli: CliContext, extra: Partial<PredictEngineOptions> = {}): PredictEngineOptions {
  return {
    model: opts.model,
    members: opts.members === undefined ? undefined : parseMemberList(opts.members),
    ...splitMemberSpecs(parseOnnxMemberOptions(opts.member)),
    weights: opts.weights,
    allowModelMismatch: opts.allowModelMismatch,
    promptsBank: opts.promptsBank,
    dtype: opts.dtype,
    labelsDir: opts.labelsDir,
    labels: opts.labels,
    map: opts.map,
    lambda: parseNonNegative('--lambda', opts.lambda),
    mode: opts.mode,
    k: parsePositiveInt('--k', opts.k),
    temperature: parseNonNegative('--temperature', opts.temperature),
    imageProcessor: opts.imageProcessor,
    captionModel: captionModelFrom(opts),
    onNotice: (message) => cli.err(`${message}\n`),
    onBankProgress: cli.bankProgress().onProgress,
    ...extra,
  };
}

// ---- --precision (every command that runs a tower) ----

/** Commands that run a CLIP, MiniLM or captioner tower (for `labels`, its `build`). */
const TOWER_COMMANDS = ['embed', 'embed-images', 'labels build', 'interrogate', 'caption', 'predict', 'fit-map', 'fit-weights', 'fit-head', 'eval', 'score', 'demo', 'worker'];

/**
 * Gives every tower-running command `--precision fp32|fp16` and hands the choice to the model
 * openers through IMG2PROMPT_PRECISION (set before the action runs), so no command has to thread it
 * through its own options, and child processes they start inherit it.
 */
export function addPrecisionOption(program: Command): void {
  for (const path of TOWER_COMMANDS) {
    let cmd: Command | undefined = program;
    for (const name of path.split(' ')) cmd = cmd?.commands.find((c) => c.name() === name);
    cmd?.addOption(
      new Option('--precision <type>', 'tower precision for graphs built from a checkpoint (default: fp16 when sessions try CUDA first, fp32 on the CPU; or $IMG2PROMPT_PRECISION)').choices(PRECISIONS),
    );
  }
  program.hook('preAction', (_program, action) => {
    const precision = action.opts().precision as string | undefined;
    if (precision !== undefined) setPrecisionVariable(precision);
  });
}
