/**
 * The predict engine: the CLIP model, MiniLM, the prompt bank, the map, the label banks and the
 * ensemble weights, opened once (building or fitting what is not cached: minutes on a first run) for
 * any number of runs. What a run does with them is in run.ts; this file wires the parts together.
 */
import { sha256Bytes, sha256File } from '../models/sha256.js';
import { ClipModel, DEFAULT_CLIP_MODEL } from '../clip/model.js';
import type { ExifMode } from '../image/decode.js';
import type { ImageInput } from '../image/image-input.js';
import { Interrogator } from '../interrogate/interrogator.js';
import { labelsHash } from '../interrogate/label-banks.js';
import { DEFAULT_BANK_DTYPE, type BankDtype, type InterrogateMode } from '../interrogate/types.js';
import { openBankRanker } from '../rank/bank-ranker.js';
import { Engine } from '../engine/engine.js';
import { Img2PromptError } from '../util/errors.js';
import { MiniLMTextSide } from './minilm-text-side.js';
import { loadPromptBank } from './prompt-bank-cache.js';
import { DEFAULT_BANK_K, DEFAULT_BANK_TEMPERATURE, type PromptBank } from './prompt-bank.js';
import type { LinearMap } from './linear-map.js';
import { defaultMapPath, obtainMap } from './map-store.js';
import { equalWeights, loadEnsembleWeights, type EnsembleWeights, type ModelIds } from './ensemble.js';
import { captionerMember, chooseMembers, headMemberName, interrogatorMember, knnMember, mapMember, onnxMemberName, type EnsembleMemberName, type HeadMemberName, type Member } from './members.js';
import { OnnxMember } from './onnx-member.js';
import type { PromptHead } from './head.js';
import { loadHead } from './head-file.js';
import { Captioner, type CaptionOptions } from '../caption/captioner.js';
import { resolveGenerationOptions } from '../caption/generate.js';
import { UnitMean } from './modality-gap.js';
import { runPredict } from './run.js';
import { checkPredictEngineOptions, checkPredictRunOptions } from './options.js';
import { toImageList, type ImageList } from '../image/image-list.js';
import type { PredictEngineOptions, PredictRunOptions, PredictedImage } from './types.js';

/** The engine's parts, as open() assembles them. */
export interface PredictEngineParts {
  clip: ClipModel;
  minilm: MiniLMTextSide;
  bank: PromptBank;
  bankName: string;
  /** Members computed, in order. */
  members: readonly EnsembleMemberName[];
  weights: EnsembleWeights;
  map: LinearMap | undefined;
  interrogator: Interrogator | undefined;
  captioner: Captioner | undefined;
  /** The ONNX members computed, in members order. */
  onnxMembers: readonly OnnxMember[];
  /** The fitted heads computed (heads), by member name, with their file's sha256. */
  heads: readonly LoadedHead[];
  settings: { k: number; temperature: number; mode: InterrogateMode; dtype: BankDtype; caption: CaptionOptions };
  notice: (message: string) => void;
}

/** A fitted head the engine loaded: its member name, the head and the sha256 of its file (for the checkpoint fingerprint). */
export interface LoadedHead {
  name: HeadMemberName;
  file: string;
  head: PromptHead;
  sha256: string;
}

/** The opened models, banks, map and weights of a predict run; reusable for several runs (fit-weights). */
export class PredictEngine extends Engine {
  protected readonly engineName = 'PredictEngine';
  readonly clip: ClipModel;
  readonly minilm: MiniLMTextSide;
  readonly bank: PromptBank;
  readonly bankName: string;
  /** Members computed, in order (the ONNX ones as `onnx:NAME`). */
  readonly members: readonly EnsembleMemberName[];
  readonly weights: EnsembleWeights;
  readonly map: LinearMap | undefined;
  readonly interrogator: Interrogator | undefined;
  /** The captioner, with a captionModel. */
  readonly captioner: Captioner | undefined;
  /** The ONNX members computed (onnxMembers), opened and checked against their descriptions. */
  readonly onnxMembers: readonly OnnxMember[];
  /** The fitted heads computed (heads), checked against this run's CLIP and MiniLM models. */
  readonly heads: readonly LoadedHead[];
  /** @internal */
  readonly settings: PredictEngineParts['settings'];
  /** @internal */
  readonly notice: (message: string) => void;

  /**
   * Seconds spent per stage of the runs so far. 'waiting for CLIP batches' includes the vision tower
   * time (listed apart); the rest of it is decoding and preprocessing the pipeline could not hide.
   */
  readonly stageSeconds: Record<string, number> = {};

  /**
   * Images of the runs so far that went through the vision tower, and sampled images whose embeddings
   * were read back from a resumed run's gap sample instead (images finished in a checkpoint are neither).
   */
  readonly counts = { imagesEncoded: 0, embeddingsReused: 0 };

  private constructor(parts: PredictEngineParts) {
    super();
    this.clip = parts.clip;
    this.minilm = parts.minilm;
    this.bank = parts.bank;
    this.bankName = parts.bankName;
    this.members = parts.members;
    this.weights = parts.weights;
    this.map = parts.map;
    this.interrogator = parts.interrogator;
    this.captioner = parts.captioner;
    this.onnxMembers = parts.onnxMembers;
    this.heads = parts.heads;
    this.settings = parts.settings;
    this.notice = parts.notice;
  }

  /**
   * Opens the CLIP model and MiniLM, the prompt bank, the map and the label banks once (building or
   * fitting what is not cached yet, which takes minutes on a first run), for any number of runs.
   *
   * @example
   * ```ts
   * import { readFile } from 'node:fs/promises';
   * import { PredictEngine } from 'img2prompt';
   *
   * await using engine = await PredictEngine.open({ model: 'clip-vit-b-32', members: ['knn', 'map'] });
   * for await (const r of engine.run(['a.png', { id: 'upload-1', data: await readFile('b.jpg') }])) {
   *   console.log(r.id, r.prompt, r.failure ?? '');
   * }
   * ```
   * @throws {Img2PromptError} naming the file and the fix when a model is not installed (`img2prompt
   *   models pull …`) or a weights, map or prompt-bank file is unreadable or made for other models;
   *   the signal's reason when `options.signal` aborts the open.
   */
  static async open(options: PredictEngineOptions = {}): Promise<PredictEngine> {
    return PredictEngine.openChecked(checkPredictEngineOptions(options, 'PredictEngine.open()'));
  }

  /** @internal open() on options already checked (predict() checks them under its own name). */
  static async openChecked(options: PredictEngineOptions): Promise<PredictEngine> {
    const { signal } = options;
    signal?.throwIfAborted();
    const notice = options.onNotice ?? (() => {});
    const dtype = options.dtype ?? DEFAULT_BANK_DTYPE;
    const k = options.k ?? DEFAULT_BANK_K;
    const temperature = options.temperature ?? DEFAULT_BANK_TEMPERATURE;
    const mode = options.mode ?? 'fast';

    const clip = await ClipModel.open(options.model ?? DEFAULT_CLIP_MODEL, { imageProcessor: options.imageProcessor });
    let minilm: MiniLMTextSide | undefined;
    let bank: PromptBank | undefined;
    let interrogator: Interrogator | undefined;
    let captioner: Captioner | undefined;
    const onnxMembers: OnnxMember[] = [];
    const heads: LoadedHead[] = [];
    try {
      if (clip.random) notice(`warning: CLIP model ${clip.name} has RANDOM weights: its predictions mean nothing (for tests and benchmarks only)`);
      minilm = await MiniLMTextSide.open();
      const ids: ModelIds = { clipModel: clip.modelId, minilmModel: minilm.identity };

      let weights: EnsembleWeights | undefined;
      let weightsName = 'the weights';
      if (typeof options.weights === 'string') {
        const loaded = await loadEnsembleWeights(options.weights, { expect: ids, allowModelMismatch: options.allowModelMismatch });
        loaded.warnings.forEach((w) => notice(`warning: ${w}`));
        weights = loaded.weights;
        weightsName = options.weights;
      } else if (options.weights) {
        weights = options.weights;
      }
      const onnxSpecs = options.onnxMembers ?? [];
      const headSpecs = options.heads ?? [];
      const members = chooseMembers(
        options.members, weights, weightsName, notice, options.captionModel !== undefined,
        [...onnxSpecs.map((m) => onnxMemberName(m.name)), ...headSpecs.map((h) => headMemberName(h.name))],
      );
      // Heads are read and checked first of all (milliseconds): one fitted for another CLIP fails at once.
      for (const spec of headSpecs) {
        const name = headMemberName(spec.name);
        if (!members.includes(name)) continue;
        const head = await loadHead(spec.file, { clipModel: clip.modelId, minilmModel: ids.minilmModel, clipDim: clip.dim, textDim: minilm.dim });
        heads.push({ name, file: spec.file, head, sha256: await sha256File(spec.file) });
      }
      // Opened (and checked) before the banks and the map, which can take minutes: a model that does
      // not fit its description fails at once. They run where CLIP's vision tower runs.
      for (const spec of onnxSpecs) {
        if (!members.includes(onnxMemberName(spec.name))) continue;
        signal?.throwIfAborted();
        onnxMembers.push(await OnnxMember.open(spec, clip.provider === 'cuda' ? ['cuda', 'cpu'] : ['cpu']));
      }
      if (options.caption !== undefined && options.captionModel === undefined) {
        throw new TypeError('PredictEngine.open(): option "caption" cannot be given without a captionModel');
      }
      // The caption feeds the captioner member and heads the interrogator member's prompts.
      if (options.captionModel !== undefined && (members.includes('captioner') || members.includes('interrogator'))) {
        captioner = await Captioner.open({ model: options.captionModel, signal });
        if (captioner.random) notice(`warning: captioner ${captioner.modelId} has RANDOM weights: its captions mean nothing (for tests and benchmarks only)`);
      }
      weights ??= equalWeights(members);

      const loadedBank = await loadPromptBank(clip, minilm, {
        files: options.promptsBank,
        clipDtype: dtype,
        signal,
        onProgress: options.onBankProgress,
        onBank: (b, side) => notice(`prompt bank ${b.name} (${side}): ${b.labels.length} prompts, ${b.built ? `built (${b.reason ?? 'new'})` : 'cached'}`),
      });
      bank = loadedBank.bank;
      const def = loadedBank.def;

      // On CUDA the bank's CLIP rows go to the GPU once; on a CPU the native kernel keeps them.
      if (clip.provider === 'cuda') bank.useRanker(await openBankRanker(bank.clipMatrix(), ['cuda', 'cpu']));

      let map: LinearMap | undefined;
      if (members.includes('map')) {
        signal?.throwIfAborted();
        ({ map } = await obtainMap(bank, ids, {
          file: options.map,
          defaultFile: defaultMapPath(clip.modelId, def.name),
          lambda: options.lambda,
          onNotice: notice,
        }));
      }
      if (members.includes('interrogator')) {
        signal?.throwIfAborted();
        interrogator = await Interrogator.open(clip, {
          labelsDir: options.labelsDir,
          extraLabels: options.labels,
          dtype,
          signal,
          rankProviders: [clip.provider],
          onProgress: options.onBankProgress,
          onBank: (b) => {
            if (b.built) notice(`label bank ${b.name}: ${b.labels.length} labels, built (${b.reason ?? 'new'})`);
          },
        });
      }
      signal?.throwIfAborted();
      return new PredictEngine({
        clip, minilm, bank, bankName: def.name, members, weights, map, interrogator, captioner, onnxMembers, heads,
        settings: { k, temperature, mode, dtype, caption: options.caption ?? {} }, notice,
      });
    } catch (err) {
      for (const m of onnxMembers) m.close();
      captioner?.close();
      interrogator?.close();
      bank?.close();
      clip.close();
      minilm?.close();
      throw err;
    }
  }

  get modelIds(): ModelIds {
    return { clipModel: this.clip.modelId, minilmModel: this.minilm.identity };
  }

  /**
   * Predicts `inputs` — file paths and `{ id, data }` items of encoded image bytes, or an ImageList
   * (read a batch at a time: millions of inputs from a list file) — streaming one result per input in
   * input order. An input that cannot be read comes out with its `failure` and the
   * fallback vector, and the run goes on. Ids must be unique (a file's id is its name without the
   * extension).
   *
   * @throws {Img2PromptError} before the first result when two inputs share an id or a checkpoint
   *   refuses the run; when the engine is closed.
   */
  run(inputs: Iterable<ImageInput> | ImageList, options: PredictRunOptions = {}): AsyncGenerator<PredictedImage, void, undefined> {
    return this.runChecked(inputs, checkPredictRunOptions(options, 'PredictEngine.run()'), 'PredictEngine.run()');
  }

  /** @internal run() on options already checked; `call` names the caller in messages. */
  runChecked(inputs: Iterable<ImageInput> | ImageList, options: PredictRunOptions, call: string): AsyncGenerator<PredictedImage, void, undefined> {
    this.checkOpen();
    return runPredict(this, toImageList(inputs, call), options);
  }

  private textCentreOfBank: UnitMean | undefined;

  /** @internal The CLIP centre of the bank's prompts (the text side of the modality gap), computed once. */
  textCentre(): UnitMean {
    if (!this.textCentreOfBank) {
      this.textCentreOfBank = new UnitMean(this.clip.dim);
      this.textCentreOfBank.add(this.bank.clip, this.bank.label);
    }
    return this.textCentreOfBank;
  }

  /** @internal Throws when the engine was closed (a run checks between batches). */
  ensureOpen(): void {
    this.checkOpen();
  }

  /** @internal Adds the time since `since` (performance.now()) to `stage`. */
  addTime(stage: string, since: number): void {
    this.addSeconds(stage, (performance.now() - since) / 1000);
  }

  /** @internal Adds `seconds` to `stage`. */
  addSeconds(stage: string, seconds: number): void {
    this.stageSeconds[stage] = (this.stageSeconds[stage] ?? 0) + seconds;
  }

  /** @internal Everything that changes the members' vectors, for the checkpoint fingerprint. */
  fingerprintOptions(batchSize: number, gapImages: number, exif: ExifMode): Record<string, unknown> {
    const options: Record<string, unknown> = {
      members: [...this.members],
      batchSize,
      imageProcessor: this.clip.imageProcessor,
      exif,
      bank: this.bankName,
      dtype: this.settings.dtype,
      k: this.settings.k,
      temperature: this.settings.temperature,
    };
    if (this.map) {
      options.gapImages = gapImages;
      const w = this.map.weights;
      options.map = { dataHash: this.map.info.dataHash, lambda: this.map.info.lambda, weights: sha256Bytes(new Uint8Array(w.buffer, w.byteOffset, w.byteLength)) };
    }
    if (this.captioner) {
      options.captioner = { model: this.captioner.modelId, generation: resolveGenerationOptions(this.settings.caption), prefix: this.settings.caption.prefix ?? '' };
    }
    if (this.onnxMembers.length > 0) options.onnxMembers = this.onnxMembers.map((m) => m.fingerprint());
    if (this.heads.length > 0) options.heads = this.heads.map((h) => ({ name: h.name, sha256: h.sha256 }));
    if (this.interrogator) {
      const all = this.interrogator.bankList();
      options.mode = this.settings.mode;
      options.labels = sha256Bytes(JSON.stringify(all.map((x) => [x.name, labelsHash(x.labels)])));
    }
    return options;
  }

  /** @internal The member functions for a run with modality gap `gap` (null: the map member has no gap, so it is absent). */
  memberFunctions(gap: Float32Array | null): Partial<Record<EnsembleMemberName, Member>> {
    const out: Partial<Record<EnsembleMemberName, Member>> = {};
    for (const m of this.onnxMembers) out[m.name] = m.member();
    for (const h of this.heads) out[h.name] = h.head.member();
    for (const name of this.members) {
      if (name === 'knn') out.knn = knnMember(this.bank, { k: this.settings.k, temperature: this.settings.temperature });
      else if (name === 'map' && this.map && gap) out.map = mapMember(this.map, gap);
      else if (name === 'interrogator' && this.interrogator) {
        out.interrogator = interrogatorMember(this.interrogator, this.minilm.embedder, { mode: this.settings.mode });
      } else if (name === 'captioner' && this.captioner) out.captioner = captionerMember(this.minilm.embedder);
    }
    return out;
  }

  protected release(): void {
    for (const m of this.onnxMembers) m.close();
    this.captioner?.close();
    this.interrogator?.close();
    this.bank.close();
    this.clip.close();
    this.minilm.close();
  }
}
