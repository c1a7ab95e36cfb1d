/**
 * Which weights a run's model names stand for. A name like `clip-vit-b-32` or `tiny` is only a cache
 * folder's name: two machines can hold different weights under it (another release, a random test
 * model). `queue push` records, for every model the run names, a digest of its installed files (from the
 * install record `models pull/import/random` wrote, so nothing is hashed again), and a worker compares
 * its own before opening anything: a worker holding other weights refuses the run, naming it.
 */
import path from 'node:path';
import { resolveModelDir } from '../clip/model.js';
import { modelDir, readInstallRecord } from '../models/cache.js';
import { sha256Bytes, sha256File } from '../models/sha256.js';
import { Img2PromptError } from '../util/errors.js';
import { captionModelFrom, parseOnnxMemberOptions } from '../cli/options.js';

/** One model of a run: its role, the name (or folder) the run gives, and a digest of its files (null: not known where recorded). */
export interface ModelIdentity {
  role: string;
  name: string;
  identity: string | null;
}

/** The model-naming options of a run (EngineCliOptions' subset). */
export interface RunModelNames {
  model: string;
  captionModel?: string;
  member?: string[];
}

/** `files:<16 hex>` over the install record's file list, or null for a folder without one. */
async function installedIdentity(dir: string): Promise<string | null> {
  const record = await readInstallRecord(dir, path.basename(dir)).catch(() => undefined);
  if (!record) return null;
  const files = [...record.files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)).map((f) => [f.path, f.sha256]);
  return `files:${sha256Bytes(JSON.stringify(files)).slice(0, 16)}`;
}

async function modelIdentity(role: string, name: string, dir: () => string): Promise<ModelIdentity> {
  return { role, name, identity: await installedIdentity(dir()) };
}

/**
 * The identities of the models `names` picks, on this machine. A model that is not installed here
 * throws (MODEL_MISSING, naming it) unless `missingAsUnknown`, when it is recorded without an identity
 * (a push from a machine without the models: the first worker's models then pin the run, see
 * run-fingerprint.ts).
 */
export async function localModelIdentities(names: RunModelNames, missingAsUnknown = false): Promise<ModelIdentity[]> {
  const guard = async (role: string, name: string, make: () => Promise<ModelIdentity>): Promise<ModelIdentity> => {
    try {
      return await make();
    } catch (err) {
      if (missingAsUnknown && err instanceof Img2PromptError && (err.code === 'MODEL_MISSING' || err.code === 'FILE_UNREADABLE')) return { role, name, identity: null };
      throw err;
    }
  };
  const out: ModelIdentity[] = [];
  out.push(await guard('CLIP model', names.model, () => modelIdentity('CLIP model', names.model, () => resolveModelDir(names.model))));
  out.push(await guard('MiniLM', 'minilm', () => modelIdentity('MiniLM', 'minilm', () => modelDir('minilm'))));
  const captioner = captionModelFrom(names);
  if (captioner !== undefined) out.push(await guard('captioner', captioner, () => modelIdentity('captioner', captioner, () => resolveModelDir(captioner))));
  for (const spec of parseOnnxMemberOptions(names.member) ?? []) {
    const role = `member onnx:${spec.name}`;
    out.push(await guard(role, spec.file, async () => {
      const sha = await sha256File(spec.file).catch((err: unknown) => {
        throw new Img2PromptError(spec.file, `cannot read the ONNX member: ${(err as Error).message}`, { code: 'MODEL_MISSING', cause: err });
      });
      return { role, name: spec.file, identity: `sha256:${sha.slice(0, 16)}` };
    }));
  }
  return out;
}

/**
 * Throws (MODEL_MISMATCH or MODEL_MISSING, naming the run and the model) unless this machine holds the
 * very models `recorded` names: a worker checks this before it opens a model or takes a chunk.
 */
export async function checkModelIdentities(run: string, names: RunModelNames, recorded: readonly ModelIdentity[]): Promise<void> {
  let local: ModelIdentity[];
  try {
    local = await localModelIdentities(names);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Img2PromptError(undefined, `refusing run "${run}": this machine cannot open its models (${why})`, { code: 'MODEL_MISSING', cause: err });
  }
  for (const want of recorded) {
    const have = local.find((m) => m.role === want.role);
    if (want.identity === null || !have) continue;
    if (have.identity !== want.identity) {
      const ours = have.identity ?? 'no install record';
      throw new Img2PromptError(undefined,
        `refusing run "${run}": its ${want.role} "${want.name}" is ${want.identity}, but this machine's "${have.name}" is ${ours} (other weights under the same name); install the run's model here, or push a new run`,
        { code: 'MODEL_MISMATCH' });
    }
  }
}

