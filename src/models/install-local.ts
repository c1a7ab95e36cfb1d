import { promises as fs, existsSync } from 'node:fs';
import path from 'node:path';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { readOptions } from '../util/options.js';
import { hashFile } from './sha256.js';
import { createStagingDir, installStagingDir, lockModel, modelDir, readInstallRecord, writeInstallRecord, assertModelName, type InstalledFile } from './cache.js';
import { defaultManifestsDir, listManifestNames, loadManifest } from './manifest.js';
import { packageRoot } from '../util/package-root.js';
import { writeRandomCheckpoint, RANDOM_GENERATOR_TAG } from '../clip/random-checkpoint.js';
import { architectureConfig } from '../clip/architectures.js';
import type { ClipLayout } from '../clip/weights.js';
import { ensureClipOnnx } from '../clip/onnx-cache.js';
import { findClipExport } from '../clip/onnx-export.js';
import { CLIP_WEIGHTS_FILE_NAMES, findClipWeightsFile, isClipWeightsFileName } from '../clip/checkpoint-files.js';

/** Files a CLIP model folder may carry besides its weights file; anything else in an imported folder is left out. */
const CLIP_FILES = [
  'open_clip_config.json', 'config.json', 'preprocessor_config.json',
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt', 'bpe_simple_vocab_16e6.txt.gz',
  'vision_model.onnx', 'text_model.onnx', 'onnx/vision_model.onnx', 'onnx/text_model.onnx',
];
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt', 'bpe_simple_vocab_16e6.txt.gz'];

async function recordFiles(dir: string, rel: string[]): Promise<InstalledFile[]> {
  const out: InstalledFile[] = [];
  for (const p of rel) {
    const { size, sha256 } = await hashFile(path.join(dir, p));
    out.push({ path: p, size, sha256, pinned: false });
  }
  return out;
}

async function copyInto(srcDir: string, dstDir: string, rel: string): Promise<void> {
  await fs.mkdir(path.dirname(path.join(dstDir, rel)), { recursive: true });
  await fs.copyFile(path.join(srcDir, rel), path.join(dstDir, rel));
}

/** How a local install treats the name it is given. */
export interface LocalInstallOptions {
  /** Replace a model already installed under the name (never one of a pullable model's reserved names). */
  force?: boolean;
}

/** LocalInstallOptions checked for `call` ('importClip()'), unknown keys refused. */
export function readLocalInstallOptions(options: LocalInstallOptions, call: string): LocalInstallOptions {
  const o = readOptions(options, call);
  const checked = { force: o.bool('force') };
  o.done();
  return checked;
}

/** The start of the refusal for a name `models pull` owns: the manifest it comes from. */
export function reservedName(name: string): string {
  const manifest = path.relative(packageRoot(), path.join(defaultManifestsDir(), `${name}.json`));
  return `"${name}" is the name of a model \`img2prompt models pull\` installs (${manifest}): it is reserved for those weights`;
}

/** True when `models pull` knows `name`: such a name belongs to the weights its manifest describes. */
export async function isPullable(name: string): Promise<boolean> {
  return (await listManifestNames()).includes(name);
}

/**
 * An import may take a pullable model's name only with the real weights: every file the manifest pins
 * must be there with its pinned sha256. A manifest that pins nothing cannot tell real weights from
 * others, so its name is refused outright.
 */
export async function assertRealWeights(name: string, staging: string, srcDir: string): Promise<void> {
  const pinned = (await loadManifest(name)).files.filter((f) => f.sha256 !== null);
  if (pinned.length === 0) {
    throw new Img2PromptError(undefined, `${reservedName(name)}, and its manifest pins no sha256 to recognise them by; choose another --name`);
  }
  for (const f of pinned) {
    const file = path.join(staging, ...f.path.split('/'));
    const why = !existsSync(file) ? 'missing' : (await hashFile(file)).sha256 !== f.sha256 ? 'sha256 differs' : undefined;
    if (why) throw new Img2PromptError(undefined, `${reservedName(name)}, and ${path.resolve(srcDir)} does not hold them (${f.path}: ${why}); choose another --name`);
  }
}

/** Refuses to replace an installed model unless `force`, naming what is there. */
async function assertReplaceable(name: string, force: boolean | undefined): Promise<void> {
  const dir = modelDir(name);
  if (force || !existsSync(dir)) return;
  const record = await readInstallRecord(dir, name).catch(() => undefined);
  const what = record ? `${record.source}: ${record.origin}` : 'without a valid install record';
  throw new Img2PromptError(dir, `model "${name}" is already installed (${what}); use --force to replace it`);
}

/**
 * Stage, fill, record and swap in a model folder; the previous install survives any failure. `build`
 * prepares the staged folder for use before the swap (the CLIP graphs by default).
 */
export async function installWith(
  name: string,
  options: LocalInstallOptions,
  fill: (staging: string) => Promise<{ files: string[]; source: string; origin: string; random: boolean; modelId?: string }>,
  build: (dir: string) => Promise<unknown> = ensureClipOnnx,
): Promise<string> {
  assertModelName(name);
  const unlock = await lockModel(name);
  let staging: string | undefined;
  try {
    await assertReplaceable(name, options.force);
    staging = await createStagingDir(name);
    const r = await fill(staging);
    // Build the ONNX graphs before the swap: weights that cannot be read (corrupt, or a pickle that is refused)
    // never replace an install, and the first real command does not pay for the build.
    await build(staging);
    await writeInstallRecord(staging, {
      formatVersion: 1,
      name,
      source: r.source,
      origin: r.origin,
      modelId: r.modelId,
      random: r.random,
      installedAt: new Date().toISOString(),
      files: await recordFiles(staging, r.files),
    });
    const dir = await installStagingDir(staging, name);
    staging = undefined;
    return dir;
  } finally {
    if (staging) await fs.rm(staging, { recursive: true, force: true });
    await unlock();
  }
}

/** A checkpoint our random generator wrote says so in its safetensors metadata; an import keeps the mark. */
export async function isRandomCheckpoint(dir: string, files: string[]): Promise<boolean> {
  for (const f of files.filter((x) => x.endsWith('.safetensors'))) {
    const fd = await fs.open(path.join(dir, f), 'r');
    try {
      const head = Buffer.alloc(8);
      await fd.read(head, 0, 8, 0);
      const len = Number(head.readBigUInt64LE(0));
      if (len <= 0 || len > 100_000_000) continue;
      const json = Buffer.alloc(len);
      await fd.read(json, 0, len, 8);
      const meta = (JSON.parse(json.toString('utf8')) as { __metadata__?: { generator?: string } }).__metadata__;
      if (meta?.generator?.startsWith(RANDOM_GENERATOR_TAG)) return true;
    } catch {
      // Not readable as safetensors: loading it will report that properly.
    } finally {
      await fd.close();
    }
  }
  return false;
}

export interface RandomModelOptions extends LocalInstallOptions {
  arch: string;
  seed: number;
  name: string;
  layout?: ClipLayout;
  /** Folder with the CLIP tokenizer files to install beside the random weights. */
  tokenizerDir: string;
}

/**
 * A CLIP checkpoint with random weights of a real architecture (same FLOPs and bytes as the trained
 * model), marked random in its install record: for tests and benchmarks, never for predictions.
 */
export async function installRandomClip(options: RandomModelOptions): Promise<string> {
  const o = readOptions(options, 'installRandomClip()');
  options = {
    arch: o.required('arch', o.string('arch', { nonEmpty: true }), 'a non-empty string'),
    seed: o.required('seed', o.int('seed'), 'an integer'),
    name: o.required('name', o.string('name', { nonEmpty: true }), 'a non-empty string'),
    layout: o.oneOf('layout', ['open_clip', 'hf']),
    tokenizerDir: o.required('tokenizerDir', o.string('tokenizerDir', { nonEmpty: true }), 'a non-empty string'),
    force: o.bool('force'),
  };
  o.done();
  const config = architectureConfig(options.arch);
  const layout = options.layout ?? 'open_clip';
  const tokFiles = TOKENIZER_FILES.filter((f) => existsSync(path.join(options.tokenizerDir, f)));
  if (tokFiles.length === 0) throw new Img2PromptError(options.tokenizerDir, 'no CLIP tokenizer files here (tokenizer.json or vocab.json + merges.txt)', { code: 'MODEL_MISSING' });
  assertModelName(options.name);
  if (await isPullable(options.name)) throw new Img2PromptError(undefined, `${reservedName(options.name)}; choose another --name`);
  return installWith(options.name, options, async (staging) => {
    const written = await writeRandomCheckpoint(staging, config, options.seed, layout);
    for (const f of tokFiles) await copyInto(options.tokenizerDir, staging, f);
    const files = (await fs.readdir(staging)).filter((f) => f !== 'manifest.json');
    return {
      files: files.sort(),
      source: 'random',
      origin: `random ${options.arch} weights, seed ${options.seed}, ${layout} layout (${path.basename(written.weightsFile)})`,
      random: true,
      modelId: `random/${options.arch}`,
    };
  });
}

/** Paths, relative to `dir`, of a split ONNX export's two towers and every external-data file they read. */
async function exportFiles(dir: string): Promise<string[]> {
  const exp = await findClipExport(dir);
  if (!exp) return [];
  const files: string[] = [];
  for (const t of [exp.vision, exp.text]) {
    for (const abs of [t.file, ...t.header.externalFiles]) {
      const rel = path.relative(dir, abs);
      if (rel.startsWith('..') || path.isAbsolute(rel)) {
        throw new Img2PromptError(t.file, `external data ${abs} lies outside the folder being imported`);
      }
      if (!existsSync(abs)) throw new Img2PromptError(t.file, `external data file ${rel} is missing`, { code: 'MODEL_MISSING' });
      if (!files.includes(rel)) files.push(rel);
    }
  }
  return files;
}

/** The weights file named on the command line: its name must be one a checkpoint directory is read by. */
function explicitWeightsFile(file: string): string {
  if (!isClipWeightsFileName(path.basename(file))) {
    throw new Img2PromptError(
      file,
      `not a weights file name this engine reads: ${CLIP_WEIGHTS_FILE_NAMES.join(', ')}, or any .safetensors, .pt or .pth file (a .bin under another name is as often something else)`,
    );
  }
  return file;
}

/**
 * Install a local CLIP checkpoint: a folder (open_clip or Hugging Face weights as safetensors or torch.save files,
 * or a split ONNX export), or one weights file, whose config and tokenizer files are taken from its folder.
 */
export async function importClip(source: string, name: string, options: LocalInstallOptions = {}): Promise<string> {
  options = readLocalInstallOptions(options, 'importClip()');
  const stat = await fs.stat(source).catch(() => undefined);
  if (!stat) throw new Img2PromptError(source, 'not found', { code: 'FILE_UNREADABLE' });
  const srcDir = stat.isFile() ? path.dirname(source) : source;
  const weights = stat.isFile() ? explicitWeightsFile(source) : await findClipWeightsFile(srcDir);
  const present = CLIP_FILES.filter((f) => existsSync(path.join(srcDir, f)));
  if (weights) present.push(path.basename(weights));
  // An export's towers may carry other names and external-data files: take the files it really uses.
  const exported = weights ? [] : await exportFiles(srcDir);
  for (const f of exported) if (!present.includes(f)) present.push(f);
  if (!weights && exported.length === 0) {
    throw new Img2PromptError(srcDir, `no CLIP weights found (${CLIP_WEIGHTS_FILE_NAMES.join(', ')}, one .safetensors, .pt or .pth file, or vision_model.onnx + text_model.onnx)`, { code: 'MODEL_MISSING' });
  }
  const pullable = await isPullable(name);
  return installWith(name, options, async (staging) => {
    for (const f of present) {
      try {
        await copyInto(srcDir, staging, f);
      } catch (err) {
        throw new Img2PromptError(path.join(srcDir, f), `cannot copy: ${errorMessage(err)}`, { code: 'OUTPUT_FAILED', cause: err });
      }
    }
    if (pullable) await assertRealWeights(name, staging, srcDir);
    const random = await isRandomCheckpoint(staging, present);
    return { files: present, source: 'import', origin: path.resolve(source), random };
  });
}
