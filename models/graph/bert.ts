import { readFileSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { Img2PromptError, errorMessage } from '../../src/util/errors.js';
import { writeFileAtomic } from '../../src/util/atomic-write.js';
import { readSafetensorsSync, tensorToFloat32, type SafetensorsFile } from '../../src/models/safetensors.js';
import { defaultManifestsDir, loadManifest, type ManifestFile } from '../../src/models/manifest.js';
import { sameStamp, type FileStamp } from '../../src/models/file-stamp.js';
import { checkBuiltFiles, rebuildNotice, recordBuiltFiles, stampedHash, type BuiltFile, type CheckDepth } from '../../src/models/built-files.js';
import { notice } from '../../src/util/notices.js';
import { PRECISIONS, type Precision } from '../../src/runtime/precision.js';
import {
  GraphBuilder,
  gelu,
  l2Normalize,
  layerNorm,
  linear,
  maskedMeanPool,
  paddingMaskBias,
  selfAttention,
  dimOf,
} from './onnx-builder.js';

/**
 * The sentence-transformers all-MiniLM-L6-v2 model (BertModel → mean pooling → L2 normalise) as an
 * ONNX graph built from its config.json and model.safetensors. Inputs: input_ids and attention_mask,
 * int64 [batch, sequence]. Outputs: sentence_embedding [batch, hidden] (unit length) and
 * token_embeddings [batch, sequence, hidden].
 *
 * In fp16 the encoder runs in half precision and its last hidden state is cast to float32 for the
 * token_embeddings output, the mean pooling and the normalisation (see onnx-builder.ts for what else
 * stays float32).
 */

/** Bump when the graph changes, so cached model.onnx files are rebuilt. */
export const BERT_GRAPH_VERSION = 1;

export const MINILM_ONNX_FILE = 'model.onnx';
export const MINILM_ONNX_SIDECAR = 'model.onnx.json';

/** model.onnx for fp32 (the name it always had), model.fp16.onnx for fp16; each with its own sidecar. */
export function miniLMOnnxFile(precision: Precision): string {
  return precision === 'fp32' ? MINILM_ONNX_FILE : `model.${precision}.onnx`;
}

export interface BertConfig {
  hiddenSize: number;
  heads: number;
  layers: number;
  intermediateSize: number;
  layerNormEps: number;
  maxPositions: number;
  vocabSize: number;
  typeVocabSize: number;
}

export function readBertConfig(file: string): BertConfig {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(file, 'utf-8')) as Record<string, unknown>;
  } catch (err) {
    throw new Img2PromptError(file, `cannot read BERT config: ${errorMessage(err)}`, { cause: err });
  }
  const int = (key: string): number => {
    const v = raw[key];
    if (!Number.isInteger(v) || (v as number) <= 0) throw new Img2PromptError(file, `"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  // The graph implements exactly one variant; refuse others rather than compute something else.
  if (raw.hidden_act !== undefined && raw.hidden_act !== 'gelu') {
    throw new Img2PromptError(file, `unsupported hidden_act ${JSON.stringify(raw.hidden_act)} (only "gelu")`);
  }
  if (raw.position_embedding_type !== undefined && raw.position_embedding_type !== 'absolute') {
    throw new Img2PromptError(file, `unsupported position_embedding_type ${JSON.stringify(raw.position_embedding_type)}`);
  }
  const eps = raw.layer_norm_eps ?? 1e-12;
  if (typeof eps !== 'number' || !(eps > 0)) throw new Img2PromptError(file, `"layer_norm_eps" must be a positive number`);
  const cfg: BertConfig = {
    hiddenSize: int('hidden_size'),
    heads: int('num_attention_heads'),
    layers: int('num_hidden_layers'),
    intermediateSize: int('intermediate_size'),
    layerNormEps: eps,
    maxPositions: int('max_position_embeddings'),
    vocabSize: int('vocab_size'),
    typeVocabSize: int('type_vocab_size'),
  };
  if (cfg.hiddenSize % cfg.heads !== 0) {
    throw new Img2PromptError(file, `hidden_size ${cfg.hiddenSize} is not divisible by num_attention_heads ${cfg.heads}`);
  }
  return cfg;
}

/** Float32 weights by PyTorch name, with shape checks; tolerates a "bert." prefix on every name. */
class BertWeights {
  private readonly prefix: string;

  constructor(private readonly st: SafetensorsFile) {
    this.prefix = !st.tensors.has('embeddings.word_embeddings.weight') && st.tensors.has('bert.embeddings.word_embeddings.weight') ? 'bert.' : '';
  }

  get(name: string, shape: readonly number[]): Float32Array {
    const t = this.st.tensors.get(this.prefix + name);
    if (!t) throw new Img2PromptError(this.st.path, `missing tensor "${this.prefix + name}"`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new Img2PromptError(this.st.path, `tensor "${t.name}" has shape [${t.shape.join(',')}], expected [${shape.join(',')}]`);
    }
    return tensorToFloat32(t);
  }
}

/** Build the graph from an already-loaded config and weights. */
export function buildBertSentenceGraph(cfg: BertConfig, st: SafetensorsFile, precision: Precision = 'fp32'): Uint8Array {
  const w = new BertWeights(st);
  const H = cfg.hiddenSize;
  const b = new GraphBuilder('minilm_sentence_embedding', {
    producerName: 'img2prompt',
    producerVersion: `bert-graph-${BERT_GRAPH_VERSION}`,
    docString: 'BertModel + masked mean pooling + L2 normalisation (sentence-transformers)',
    precision,
  });
  const ids = b.input('input_ids', 'int64', ['batch', 'sequence']);
  const mask = b.input('attention_mask', 'int64', ['batch', 'sequence']);

  let h = b.scoped('embeddings', () => {
    const wordTable = b.weight('word_embeddings', w.get('embeddings.word_embeddings.weight', [cfg.vocabSize, H]), [cfg.vocabSize, H]);
    const word = b.op('Gather', [wordTable, ids], { axis: 0 });
    // Callers never pass token_type_ids (single sentences), so every token gets the type-0 row.
    const typeRows = w.get('embeddings.token_type_embeddings.weight', [cfg.typeVocabSize, H]);
    const type0 = b.weight('token_type0', typeRows.slice(0, H), [H]);
    const withType = b.op('Add', [word, type0]);
    // Positions are 0..S-1, i.e. the first S rows of the table.
    const posTable = b.weight('position_embeddings', w.get('embeddings.position_embeddings.weight', [cfg.maxPositions, H]), [cfg.maxPositions, H]);
    const seqLen = dimOf(b, ids, 1, 'seq_len');
    const pos = b.op('Slice', [posTable, b.constInt64([0]), seqLen, b.constInt64([0])], {}, 'positions');
    const sum = b.op('Add', [withType, pos]);
    return layerNorm(b, sum, {
      weight: w.get('embeddings.LayerNorm.weight', [H]),
      bias: w.get('embeddings.LayerNorm.bias', [H]),
      epsilon: cfg.layerNormEps,
      name: 'LayerNorm',
    });
  });

  const maskBias = paddingMaskBias(b, mask);

  for (let l = 0; l < cfg.layers; l++) {
    const p = `encoder.layer.${l}.`;
    const lin = (name: string, out: number, inF: number) => ({
      weight: w.get(`${p}${name}.weight`, [out, inF]),
      bias: w.get(`${p}${name}.bias`, [out]),
    });
    h = b.scoped(`layer${l}`, () => {
      const attn = selfAttention(b, h, {
        hidden: H,
        heads: cfg.heads,
        query: lin('attention.self.query', H, H),
        key: lin('attention.self.key', H, H),
        value: lin('attention.self.value', H, H),
        out: lin('attention.output.dense', H, H),
        bias: maskBias,
        scaleAt: 'scores',
        name: 'attention',
      });
      // Post-LN residuals, as in the original BERT.
      const h1 = layerNorm(b, b.op('Add', [attn, h]), {
        weight: w.get(`${p}attention.output.LayerNorm.weight`, [H]),
        bias: w.get(`${p}attention.output.LayerNorm.bias`, [H]),
        epsilon: cfg.layerNormEps,
        name: 'attention_LayerNorm',
      });
      const up = linear(b, h1, { ...lin('intermediate.dense', cfg.intermediateSize, H), inFeatures: H, outFeatures: cfg.intermediateSize, name: 'intermediate' });
      const act = gelu(b, up);
      const down = linear(b, act, { ...lin('output.dense', H, cfg.intermediateSize), inFeatures: cfg.intermediateSize, outFeatures: H, name: 'output' });
      return layerNorm(b, b.op('Add', [down, h1]), {
        weight: w.get(`${p}output.LayerNorm.weight`, [H]),
        bias: w.get(`${p}output.LayerNorm.bias`, [H]),
        epsilon: cfg.layerNormEps,
        name: 'output_LayerNorm',
      });
    });
  }

  const hidden = b.toFloat32(h, 'last_hidden_float32');
  b.output(hidden, 'token_embeddings', 'float32', ['batch', 'sequence', H]);
  const pooled = maskedMeanPool(b, hidden, mask, 1e-9);
  const sentence = l2Normalize(b, pooled, 1e-12);
  b.output(sentence, 'sentence_embedding', 'float32', ['batch', H]);
  return b.toBytes();
}

/** Build the all-MiniLM-L6-v2 sentence-embedding graph from `<modelDir>/config.json` and `model.safetensors`. */
export function buildMiniLMGraph(modelDir: string, precision: Precision = 'fp32'): Uint8Array {
  const cfg = readBertConfig(path.join(modelDir, 'config.json'));
  const st = readSafetensorsSync(path.join(modelDir, 'model.safetensors'));
  return buildBertSentenceGraph(cfg, st, precision);
}

interface Sidecar {
  graphVersion: number;
  /** `stamp`: the weights file as it was when its hash was last checked against the manifest. */
  weights: { size: number; sha256: string; stamp: FileStamp };
  config: { sha256: string };
  /** model.onnx as written (see src/models/built-files.ts). */
  built: BuiltFile[];
}

async function readSidecar(file: string): Promise<Partial<Sidecar> | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf-8')) as Partial<Sidecar>;
  } catch {
    return undefined; // missing or unreadable: rebuild
  }
}

/** The manifest whose pinned model.safetensors entry the weights must match. */
const MANIFEST_NAME = 'minilm';
const REPAIR = `run \`img2prompt models pull ${MANIFEST_NAME}\` to repair`;

async function expectedWeights(): Promise<ManifestFile> {
  const manifest = await loadManifest(MANIFEST_NAME);
  const entry = manifest.files.find((f) => f.path === 'model.safetensors');
  if (!entry) throw new Img2PromptError(defaultManifestsDir(), `manifest "${MANIFEST_NAME}" lists no model.safetensors`);
  return entry;
}

/**
 * Checks the weights against the manifest's size and sha256 and returns their hash and stamp. The 90 MB
 * hash is skipped when the file's stamp equals the one recorded the last time it was hashed and matched.
 */
async function verifyWeights(file: string, expected: ManifestFile, recorded: Partial<Sidecar['weights']> | undefined): Promise<Sidecar['weights']> {
  let size: number;
  try {
    size = (await fs.stat(file)).size;
  } catch (err) {
    throw new Img2PromptError(file, `cannot read MiniLM weights: ${errorMessage(err)}`, { cause: err });
  }
  if (expected.size !== null && size !== expected.size) {
    const what = size < expected.size ? 'truncated' : 'wrong size';
    throw new Img2PromptError(file, `${what}: ${size} bytes, expected ${expected.size}; ${REPAIR}`);
  }
  // Only a hash that matched the manifest when it was recorded may stand in for reading the file.
  const trusted = expected.sha256 === null || recorded?.sha256 === expected.sha256 ? { ...recorded?.stamp, sha256: recorded?.sha256 } : undefined;
  const { sha256, ...stamp } = await stampedHash(file, trusted);
  if (expected.sha256 !== null && sha256 !== expected.sha256) {
    throw new Img2PromptError(file, `sha256 mismatch (corrupt weights): expected ${expected.sha256}, got ${sha256}; ${REPAIR}`);
  }
  return { size: stamp.size, sha256, stamp };
}

export interface EnsureMiniLMOnnxOptions {
  /** 'stamp' (default, when opening): trust model.onnx while its stamp is unchanged; 'hash' (models verify): always re-hash it. */
  check?: CheckDepth;
  /** Told when a damaged model.onnx is rebuilt; default: a library notice (src/util/notices.ts). */
  onRebuild?(message: string): void;
}

/**
 * Path of `<modelDir>/model.onnx`, building it first when it is missing, stale or damaged. The weights
 * must match the minilm manifest (size and sha256); when they do not, the error names the file and no
 * model.onnx is left beside them. The sidecar model.onnx.json records what the graph was built from
 * (weights and config hashes, graph version) and the graph's own sha256 and stamp: any difference in
 * the inputs rebuilds it quietly; a graph changed after its build is rebuilt with a notice. Both files
 * are written atomically.
 */
export async function ensureMiniLMOnnx(modelDir: string, precision: Precision = 'fp32', options: EnsureMiniLMOnnxOptions = {}): Promise<string> {
  const onnxPath = path.join(modelDir, miniLMOnnxFile(precision));
  const sidecarPath = `${onnxPath}.json`;
  const weightsPath = path.join(modelDir, 'model.safetensors');
  const configPath = path.join(modelDir, 'config.json');
  const have = await readSidecar(sidecarPath);
  let weights: Sidecar['weights'];
  try {
    weights = await verifyWeights(weightsPath, await expectedWeights(), have?.weights);
  } catch (err) {
    // A graph built from weights that no longer verify must not outlive them, in either precision.
    for (const p of ['fp32', 'fp16'] as const) {
      const file = path.join(modelDir, miniLMOnnxFile(p));
      await fs.rm(file, { force: true });
      await fs.rm(`${file}.json`, { force: true });
    }
    throw err;
  }
  const config = { sha256: (await stampedHash(configPath)).sha256 };
  const sameInputs =
    have !== undefined &&
    have.graphVersion === BERT_GRAPH_VERSION &&
    have.weights?.sha256 === weights.sha256 &&
    have.weights?.size === weights.size &&
    have.config?.sha256 === config.sha256;
  if (sameInputs) {
    const check = await checkBuiltFiles(modelDir, have.built, options.check ?? 'stamp');
    if (!check.problem) {
      // Same graph; only a stamp moved (file copied or touched): record it so the next open skips the hash.
      if (check.restamped || !sameStamp(have.weights?.stamp, weights.stamp)) {
        await writeFileAtomic(sidecarPath, JSON.stringify({ graphVersion: BERT_GRAPH_VERSION, weights, config, built: check.records }, null, 2) + '\n');
      }
      return onnxPath;
    }
    if (check.problem.damaged) (options.onRebuild ?? notice)(rebuildNotice(check.problem, path.basename(weightsPath)));
  }
  const bytes = buildMiniLMGraph(modelDir, precision);
  await writeFileAtomic(onnxPath, bytes);
  const sidecar: Sidecar = { graphVersion: BERT_GRAPH_VERSION, weights, config, built: await recordBuiltFiles(modelDir, [miniLMOnnxFile(precision)]) };
  await writeFileAtomic(sidecarPath, JSON.stringify(sidecar, null, 2) + '\n');
  return onnxPath;
}

/**
 * For `models verify`: re-hashes the MiniLM graph of each precision built in `modelDir` (rebuilding a
 * damaged one). Returns the built files, relative to `modelDir`.
 */
export async function verifyMiniLMOnnx(modelDir: string, onRebuild: (message: string) => void): Promise<string[]> {
  const built: string[] = [];
  for (const precision of PRECISIONS) {
    const sidecar = path.join(modelDir, `${miniLMOnnxFile(precision)}.json`);
    if (!(await readSidecar(sidecar))) continue;
    await ensureMiniLMOnnx(modelDir, precision, { check: 'hash', onRebuild });
    built.push(...((await readSidecar(sidecar))?.built ?? []).map((f) => f.path));
  }
  return built;
}
