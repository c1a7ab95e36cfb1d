/**
 * The models behind the server, opened once at start: the interrogate engine always (interrogate and
 * image embeddings, CLIP text embeddings), the predict engine unless predict is off, and MiniLM (the
 * metric's text model: text embeddings and similarity), borrowed from the predict engine when there
 * is one. Also the batcher lanes that hand a batch of uploads to an engine.
 */
import { InterrogateEngine } from '../interrogate/engine.js';
import type { InterrogateRunOptions, InterrogatedImage } from '../interrogate/run-types.js';
import { PredictEngine } from '../predict/engine.js';
import { MiniLMTextSide } from '../predict/minilm-text-side.js';
import type { MemberName } from '../predict/members.js';
import type { PredictedImage } from '../predict/types.js';
import type { Lane } from './batcher.js';
import type { ResolvedServerOptions } from './options.js';

export interface ServerEngines {
  interrogate: InterrogateEngine;
  predict: PredictEngine | undefined;
  minilm: MiniLMTextSide;
  close(): void;
}

/** The members a served predict engine computes unless told otherwise. */
export function servedMembers(options: Pick<ResolvedServerOptions, 'members' | 'captionModel'>): MemberName[] {
  return [...(options.members ?? ['knn', 'interrogator', ...(options.captionModel ? ['captioner' as const] : [])])];
}

export async function openEngines(options: ResolvedServerOptions, signal: AbortSignal): Promise<ServerEngines> {
  const notice = options.onNotice;
  const interrogate = await InterrogateEngine.open({
    model: options.model, captionModel: options.captionModel, labelsDir: options.labelsDir, signal, onNotice: notice,
    onBank: (b) => notice(`label bank ${b.name}: ${b.labels.length} labels, ${b.built ? `built (${b.reason ?? 'new'})` : 'cached'}`),
  });
  let predict: PredictEngine | undefined;
  let minilm: MiniLMTextSide | undefined;
  try {
    if (options.predict) {
      predict = await PredictEngine.open({
        model: options.model, captionModel: options.captionModel, labelsDir: options.labelsDir, promptsBank: options.promptsBank,
        members: servedMembers(options), signal, onNotice: notice,
      });
    } else {
      minilm = await MiniLMTextSide.open();
    }
  } catch (err) {
    interrogate.close();
    throw err;
  }
  return {
    interrogate,
    predict,
    minilm: predict?.minilm ?? minilm!,
    close() {
      interrogate.close();
      predict?.close();
      minilm?.close();
    },
  };
}

/** Ids given to the engines: unique for the server's life, so no two uploads of one run share one. */
let nextId = 0;
function batchInputs(items: readonly Uint8Array[]): { id: string; data: Uint8Array }[] {
  return items.map((data) => ({ id: `upload-${++nextId}`, data }));
}

/** Runs a generator over `count` inputs and puts each result at its input's index. */
async function collectByIndex<R extends { index: number }>(results: AsyncIterable<R>, count: number): Promise<R[]> {
  const out = new Array<R>(count);
  for await (const r of results) out[r.index] = r;
  return out;
}

export type ServedInterrogateOptions = Pick<InterrogateRunOptions, 'mode' | 'maxFlavors' | 'score'>;

export function interrogateLane(engine: InterrogateEngine, options: ServedInterrogateOptions, maxBatch: number): Lane<Uint8Array, InterrogatedImage> {
  return {
    key: `interrogate ${JSON.stringify([options.mode, options.maxFlavors, options.score])}`,
    name: 'interrogate',
    run: (items) => collectByIndex(engine.run(batchInputs(items), { ...options, batchSize: maxBatch }), items.length),
  };
}

export function predictLane(engine: PredictEngine, maxBatch: number): Lane<Uint8Array, PredictedImage> {
  return {
    key: 'predict',
    name: 'predict',
    run: (items) => collectByIndex(engine.run(batchInputs(items), { batchSize: maxBatch }), items.length),
  };
}

/** A CLIP image embedding, or why the image could not be read. */
export type ImageEmbedding = { embedding: Float32Array; failure?: undefined } | { embedding?: undefined; failure: string };

export function embedLane(engine: InterrogateEngine, maxBatch: number): Lane<Uint8Array, ImageEmbedding> {
  return {
    key: 'embed-image',
    name: 'embed-image',
    async run(items) {
      const out = new Array<ImageEmbedding>(items.length);
      const dim = engine.clip.dim;
      for await (const batch of engine.clip.encodeBatches(batchInputs(items), { batchSize: maxBatch })) {
        for (const f of batch.failures) out[f.index] = { failure: f.reason };
        batch.loaded.forEach((position, row) => {
          out[position] = { embedding: batch.embeds.slice(row * dim, (row + 1) * dim) };
        });
      }
      return out;
    },
  };
}
