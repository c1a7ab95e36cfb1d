import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importClip } from '../src/models/install-local.js';
import { modelDir, readInstallRecord } from '../src/models/cache.js';
import { ClipModel } from '../src/clip/model.js';
import { ensureClipOnnx } from '../src/clip/onnx-cache.js';
import { loadClipCheckpoint } from '../src/clip/weights.js';
import { Session, tensor } from '../src/runtime/session.js';
import { maxAbsDiff } from './reference/compare.js';
import { runCli } from './helpers/cli.js';
import { tempDir } from './helpers/paths.js';

/**
 * `models import` of torch.save checkpoints written by scripts/fixtures/torch_checkpoints.py, against the
 * embeddings open_clip and transformers compute from the same files (references.json).
 */
const FIXTURES = path.resolve('test/fixtures/torch-checkpoints');
const fixture = (...p: string[]) => path.join(FIXTURES, ...p);

interface Reference {
  ids: number[][];
  pad: number;
  image: number[][];
  text: number[][];
}
const REFS = JSON.parse(fs.readFileSync(fixture('references.json'), 'utf8')) as Record<string, Reference>;

/** The fixture script's pixel_values(): an integer pattern / 500, both sides exact in float32. */
function pixelValues(batch: number, size: number): Float32Array {
  return Float32Array.from({ length: batch * 3 * size * size }, (_, i) => (((i * 7919) % 2001) - 1000) / 500);
}

function paddedIds(rows: number[][], pad: number, length = 77): BigInt64Array {
  const out = new BigInt64Array(rows.length * length).fill(BigInt(pad));
  rows.forEach((r, i) => out.set(r.map(BigInt), i * length));
  return out;
}

/** float32 ONNX Runtime against float32 torch on the same weights and inputs, on unit vectors. */
const TOLERANCE = 1e-5;

const measured: string[] = [];
const home = tempDir('img2prompt-torch-import-');
let saved: string | undefined;
beforeAll(() => {
  saved = process.env.IMG2PROMPT_HOME;
  process.env.IMG2PROMPT_HOME = home;
});
afterAll(() => {
  if (saved === undefined) delete process.env.IMG2PROMPT_HOME;
  else process.env.IMG2PROMPT_HOME = saved;
  fs.rmSync(home, { recursive: true, force: true });
  if (measured.length) console.log(`torch.save import vs reference embeddings (max |diff|):\n  ${measured.join('\n  ')}`);
});

const CASES = [
  { name: 'oc-fp32', source: 'open_clip-fp32', weights: 'open_clip_pytorch_model.bin', ref: 'open_clip-fp32' },
  { name: 'oc-fp16', source: 'open_clip-fp16', weights: 'open_clip_pytorch_model.bin', ref: 'open_clip-fp16' },
  // A training checkpoint in the legacy format, named directly: config from its folder.
  { name: 'oc-legacy', source: 'open_clip-legacy/epoch_3.pt', weights: 'epoch_3.pt', ref: 'open_clip-fp16' },
  { name: 'hf-fp32', source: 'hf-fp32', weights: 'pytorch_model.bin', ref: 'hf-fp32' },
  { name: 'hf-fp16', source: 'hf-fp16', weights: 'pytorch_model.bin', ref: 'hf-fp16' },
];

describe.each(CASES)('models import $source', ({ name, source, weights, ref }) => {
  it('installs the torch.save weights and gives the reference library\'s image and text embeddings', async () => {
    const dir = await importClip(fixture(source), name);
    const record = await readInstallRecord(dir);
    expect(record.files.map((f) => f.path)).toContain(weights);
    expect(record.random).toBe(false);
    const files = await ensureClipOnnx(dir);
    expect(files.kind).toBe('built');
    const want = REFS[ref]!;

    const model = await ClipModel.open(name, { towers: ['vision'], sessionOptions: { providers: ['cpu'] } });
    try {
      const images = await model.encodePixels(pixelValues(2, model.imageSize), 2);
      const diff = maxAbsDiff(images, want.image.flat());
      measured.push(`${source} image ${diff.toExponential(2)}`);
      expect(diff).toBeLessThan(TOLERANCE);
    } finally {
      model.close();
    }
    const text = await Session.open(files.text, { providers: ['cpu'] });
    try {
      const out = await text.run({ input_ids: tensor('int64', paddedIds(want.ids, want.pad), [want.ids.length, 77]) });
      const diff = maxAbsDiff(out.text_embeds!.data as Float32Array, want.text.flat());
      measured.push(`${source} text ${diff.toExponential(2)}`);
      expect(diff).toBeLessThan(TOLERANCE);
    } finally {
      text.close();
    }
  });
});

describe('the same weights as torch.save and as safetensors', () => {
  it('load to identical weights and build identical graphs', async () => {
    const bin = await loadClipCheckpoint(fixture('hf-fp16'));
    const st = await loadClipCheckpoint(fixture('hf-fp16-safetensors'));
    expect(path.basename(bin.weightsFile)).toBe('pytorch_model.bin');
    expect(path.basename(st.weightsFile)).toBe('model.safetensors');
    expect(bin.config).toEqual(st.config);
    const flat = (w: unknown): Buffer[] =>
      ArrayBuffer.isView(w) ? [Buffer.from(w.buffer, w.byteOffset, w.byteLength)] : w && typeof w === 'object' ? Object.values(w).flatMap(flat) : [Buffer.from(String(w))];
    expect(Buffer.concat(flat(bin.weights)).equals(Buffer.concat(flat(st.weights)))).toBe(true);

    const a = await ensureClipOnnx(await importClip(fixture('hf-fp16'), 'twin-bin'));
    const b = await ensureClipOnnx(await importClip(fixture('hf-fp16-safetensors'), 'twin-st'));
    expect(fs.readFileSync(a.vision).equals(fs.readFileSync(b.vision))).toBe(true);
    expect(fs.readFileSync(a.text).equals(fs.readFileSync(b.text))).toBe(true);
  });
});

describe('a malicious pickle', () => {
  it.each([
    ['evil-system.pt', 'open_clip_pytorch_model.bin', 'posix.system'],
    ['evil-eval.pt', 'epoch_1.pt', 'builtins.eval'],
  ])('%s imported as %s is refused naming %s; nothing runs, nothing is installed', async (evil, as, callable) => {
    const src = tempDir('img2prompt-evil-');
    const marker = path.join(src, 'marker');
    fs.copyFileSync(fixture('open_clip-fp32', 'open_clip_config.json'), path.join(src, 'open_clip_config.json'));
    fs.copyFileSync(fixture(evil), path.join(src, as));
    process.env.IMG2PROMPT_PICKLE_MARKER = marker;
    try {
      await expect(importClip(src, 'evil')).rejects.toThrow(`refusing to unpickle ${callable}`);
    } finally {
      delete process.env.IMG2PROMPT_PICKLE_MARKER;
    }
    expect(fs.existsSync(marker)).toBe(false);
    expect(fs.existsSync(modelDir('evil'))).toBe(false);
    fs.rmSync(src, { recursive: true, force: true });
  });

  it('CLI: `models import` exits 1 with one line naming the file and the callable', () => {
    const src = tempDir('img2prompt-evil-cli-');
    const marker = path.join(src, 'marker');
    fs.copyFileSync(fixture('hf-fp32', 'config.json'), path.join(src, 'config.json'));
    fs.copyFileSync(fixture('evil-system.pt'), path.join(src, 'pytorch_model.bin'));
    const r = runCli(['models', 'import', src, '--name', 'evil-cli'], home, { env: { IMG2PROMPT_PICKLE_MARKER: marker } });
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('pytorch_model.bin: refusing to unpickle posix.system');
    expect(fs.existsSync(marker)).toBe(false);
    expect(fs.existsSync(path.join(home, 'models', 'evil-cli'))).toBe(false);
    fs.rmSync(src, { recursive: true, force: true });
  });
});

describe('finding the weights file', () => {
  it('refuses a folder with several candidate files and a .bin of another name, naming them', async () => {
    const src = tempDir('img2prompt-ambiguous-');
    fs.copyFileSync(fixture('open_clip-fp32', 'open_clip_config.json'), path.join(src, 'open_clip_config.json'));
    fs.copyFileSync(fixture('open_clip-legacy', 'epoch_3.pt'), path.join(src, 'epoch_3.pt'));
    fs.copyFileSync(fixture('open_clip-legacy', 'epoch_3.pt'), path.join(src, 'epoch_4.pt'));
    await expect(importClip(src, 'ambiguous')).rejects.toThrow('several weights files (epoch_3.pt, epoch_4.pt)');
    // Named directly, one of them is taken, with the folder's config.
    const dir = await importClip(path.join(src, 'epoch_4.pt'), 'chosen');
    expect(fs.readdirSync(dir)).toContain('epoch_4.pt');
    expect(fs.readdirSync(dir)).not.toContain('epoch_3.pt');
    fs.renameSync(path.join(src, 'epoch_4.pt'), path.join(src, 'weights.bin'));
    await expect(importClip(path.join(src, 'weights.bin'), 'odd')).rejects.toThrow('weights.bin: not a weights file name this engine reads');
    fs.rmSync(src, { recursive: true, force: true });
  });
});
