import fs from 'node:fs';
import { createHash } from 'node:crypto';
import { modelDir } from '../src/models/cache.js';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiniLMEmbedder } from '../src/text/minilm.js';
import { Session } from '../src/runtime/session.js';
import { readPromptsCsv, type PromptRow } from '../src/submission/prompts-csv.js';
import { ensureMiniLMOnnx, MINILM_ONNX_FILE, MINILM_ONNX_SIDECAR } from '../models/graph/bert.js';
import { KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { maxAbsDiff } from './reference/compare.js';

/** The real model, pulled into the cache by test/global-setup.ts. */
async function resolveModelDir(): Promise<string> {
  const dir = modelDir('minilm');
  if (!fs.existsSync(path.join(dir, 'model.safetensors'))) throw new Error(`${dir}: MiniLM weights missing; the global setup should have pulled them`);
  return dir;
}

/** sample_submission.csv rows `imgId_eId,val` → imgId → 384 values. */
function readGolden(file: string): Map<string, Float64Array> {
  const golden = new Map<string, Float64Array>();
  const lines = fs.readFileSync(file, 'utf-8').trim().split(/\r?\n/);
  expect(lines[0]).toBe('imgId_eId,val');
  for (const line of lines.slice(1)) {
    const [key, val] = line.split(',');
    const cut = key!.lastIndexOf('_');
    const id = key!.slice(0, cut);
    const e = Number(key!.slice(cut + 1));
    if (!golden.has(id)) golden.set(id, new Float64Array(384));
    golden.get(id)![e] = Number(val);
  }
  return golden;
}

function cosine(a: ArrayLike<number>, aOff: number, b: ArrayLike<number>, bOff: number, dim: number): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < dim; i++) {
    dot += a[aOff + i]! * b[bOff + i]!;
    na += a[aOff + i]! ** 2;
    nb += b[bOff + i]! ** 2;
  }
  return dot / Math.sqrt(na * nb);
}

describe('MiniLMEmbedder parity with the Kaggle metric', () => {
  let dir: string;
  let embedder: MiniLMEmbedder;
  let rows: PromptRow[];
  let golden: Map<string, Float64Array>;
  let batched: Float32Array;

  beforeAll(async () => {
    dir = await resolveModelDir();
    embedder = await MiniLMEmbedder.open(dir, { providers: ['cpu'] });
    rows = await readPromptsCsv(path.join(KAGGLE_SAMPLE, 'prompts.csv'));
    golden = readGolden(path.join(KAGGLE_SAMPLE, 'sample_submission.csv'));
    batched = await embedder.embed(rows.map((r) => r.prompt));
  });
  afterAll(() => embedder?.close());

  it('reproduces the golden embeddings of the 7 sample prompts (cosine >= 0.99999 each)', () => {
    expect(embedder.dim).toBe(384);
    expect(rows.length).toBe(7);
    expect(batched.length).toBe(7 * 384);
    const cosines = rows.map((r, i) => {
      const g = golden.get(r.imgId);
      expect(g, `golden vector for ${r.imgId}`).toBeDefined();
      return cosine(batched, i * 384, g!, 0, 384);
    });
    const min = Math.min(...cosines);
    console.log(`MiniLM parity: min cosine vs golden = ${min.toFixed(12)} (1 - ${(1 - min).toExponential(2)}) over ${rows.length} prompts`);
    for (const c of cosines) expect(c).toBeGreaterThanOrEqual(0.99999);
    // Rows are unit length, as the metric's vectors are.
    for (let i = 0; i < rows.length; i++) expect(Math.hypot(...batched.subarray(i * 384, (i + 1) * 384))).toBeCloseTo(1, 5);
  });

  it('gives the same vectors whatever the batching (padding is masked out)', async () => {
    const prompts = rows.map((r) => r.prompt);
    const single = await embedder.embed(prompts, { batchSize: 1 });
    const threes = await embedder.embed(prompts, { batchSize: 3 });
    expect(maxAbsDiff(batched, single)).toBeLessThan(1e-5);
    expect(maxAbsDiff(batched, threes)).toBeLessThan(1e-5);
  });

  it('keeps input order, reports progress, and handles empty, blank and over-long texts', async () => {
    const prompts = rows.map((r) => r.prompt);
    const reversed = await embedder.embed([...prompts].reverse(), { batchSize: 2 });
    for (let i = 0; i < 7; i++) {
      expect(maxAbsDiff(reversed.subarray((6 - i) * 384, (7 - i) * 384), batched.subarray(i * 384, (i + 1) * 384))).toBeLessThan(1e-5);
    }
    const progress: number[] = [];
    const long = Array.from({ length: 400 }, () => 'donut').join(' ');
    const odd = await embedder.embed(['', '   ', long], { batchSize: 2, onProgress: (done, total) => progress.push(done, total) });
    expect(progress).toEqual([2, 3, 3, 3]);
    for (let i = 0; i < 3; i++) expect(Math.hypot(...odd.subarray(i * 384, (i + 1) * 384))).toBeCloseTo(1, 5);
    // Truncation at 256 tokens: anything past it does not change the embedding.
    const longer = Array.from({ length: 500 }, () => 'donut').join(' ');
    const [a, b] = [await embedder.embed([long]), await embedder.embed([longer])];
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-6);
    expect(await embedder.embed([])).toEqual(new Float32Array(0));
    await expect(embedder.embed(['x'], { batchSize: 0 })).rejects.toThrow(/batchSize/);
  });

  it('exposes the graph signature: int64 ids/mask in, sentence and token embeddings out', async () => {
    const session = await Session.open(path.join(dir, MINILM_ONNX_FILE), { providers: ['cpu'] });
    try {
      expect(session.inputs.map((i) => [i.name, i.type, i.dims])).toEqual([
        ['input_ids', 'int64', ['batch', 'sequence']],
        ['attention_mask', 'int64', ['batch', 'sequence']],
      ]);
      expect(session.outputs.map((o) => [o.name, o.type, o.dims])).toEqual([
        ['token_embeddings', 'float32', ['batch', 'sequence', 384]],
        ['sentence_embedding', 'float32', ['batch', 384]],
      ]);
    } finally {
      session.close();
    }
  });
});

describe('ensureMiniLMOnnx', () => {
  let work: string;
  beforeAll(async () => {
    const src = await resolveModelDir();
    work = tempDir('img2prompt-minilm-onnx-');
    // The weights are linked, not copied; config.json is a copy so the test can change it.
    fs.symlinkSync(path.join(src, 'model.safetensors'), path.join(work, 'model.safetensors'));
    fs.copyFileSync(path.join(src, 'config.json'), path.join(work, 'config.json'));
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  it('builds model.onnx once and rebuilds it only when its inputs change or it goes missing', async () => {
    const onnxPath = path.join(work, MINILM_ONNX_FILE);
    const t0 = performance.now();
    expect(await ensureMiniLMOnnx(work)).toBe(onnxPath);
    console.log(`MiniLM graph build (hash + read safetensors + build + write ${(fs.statSync(onnxPath).size / 1e6).toFixed(1)} MB): ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    const sidecar = JSON.parse(fs.readFileSync(path.join(work, MINILM_ONNX_SIDECAR), 'utf-8'));
    expect(sidecar.weights.size).toBe(fs.statSync(path.join(work, 'model.safetensors')).size);
    expect(sidecar.weights.sha256).toMatch(/^[0-9a-f]{64}$/);
    const built = fs.statSync(onnxPath).mtimeMs;

    await ensureMiniLMOnnx(work);
    expect(fs.statSync(onnxPath).mtimeMs).toBe(built); // up to date: not rewritten

    // Same meaning, different bytes: the recorded config hash no longer matches.
    fs.appendFileSync(path.join(work, 'config.json'), '\n');
    await ensureMiniLMOnnx(work);
    const rebuilt = fs.statSync(onnxPath).mtimeMs;
    expect(rebuilt).toBeGreaterThan(built);

    fs.rmSync(onnxPath);
    await ensureMiniLMOnnx(work);
    expect(fs.existsSync(onnxPath)).toBe(true);

    // A damaged model.onnx (size differs from the record) is replaced too.
    fs.truncateSync(onnxPath, 1000);
    await ensureMiniLMOnnx(work);
    expect(fs.statSync(onnxPath).size).toBe(sidecar.built[0].size);
    expect(fs.readdirSync(work).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('names the file when the weights are missing', async () => {
    const empty = tempDir();
    await expect(ensureMiniLMOnnx(empty)).rejects.toThrow(`${path.join(empty, 'model.safetensors')}: cannot read MiniLM weights`);
    fs.rmSync(empty, { recursive: true, force: true });
  });
});

describe('ensureMiniLMOnnx: weights integrity', () => {
  const MANIFEST_SHA = '53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db';
  const MANIFEST_SIZE = 90868376;
  let work: string;
  let weights: string;
  beforeAll(async () => {
    const src = await resolveModelDir();
    await ensureMiniLMOnnx(src); // the cache's model.onnx, copied below so nothing needs building
    work = tempDir('img2prompt-minilm-integrity-');
    weights = path.join(work, 'model.safetensors');
    for (const f of ['model.safetensors', 'config.json', MINILM_ONNX_FILE, MINILM_ONNX_SIDECAR]) fs.copyFileSync(path.join(src, f), path.join(work, f));
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  const leftovers = () => fs.readdirSync(work).filter((f) => f === MINILM_ONNX_FILE || f === MINILM_ONNX_SIDECAR || f.endsWith('.tmp'));
  const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

  it('accepts intact weights and records their stamp, so later opens need not re-hash 90 MB', async () => {
    const onnxMtime = fs.statSync(path.join(work, MINILM_ONNX_FILE)).mtimeMs;
    await ensureMiniLMOnnx(work);
    const sidecar = JSON.parse(fs.readFileSync(path.join(work, MINILM_ONNX_SIDECAR), 'utf-8'));
    const st = fs.statSync(weights);
    expect(sidecar.weights).toEqual({ size: MANIFEST_SIZE, sha256: MANIFEST_SHA, stamp: { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino } });
    // The copy is the same graph: only the sidecar was rewritten, model.onnx was not rebuilt.
    expect(fs.statSync(path.join(work, MINILM_ONNX_FILE)).mtimeMs).toBe(onnxMtime);
  });

  it('refuses a bit-flipped copy of the right size (even with its mtime put back), naming the file, and leaves no model.onnx', async () => {
    const before = fs.statSync(weights);
    const fd = fs.openSync(weights, 'r+');
    const byte = Buffer.alloc(1);
    const at = 50_000_000; // inside the tensor data, past the header
    fs.readSync(fd, byte, 0, 1, at);
    byte[0] ^= 0x10;
    fs.writeSync(fd, byte, 0, 1, at);
    fs.closeSync(fd);
    fs.utimesSync(weights, before.atime, before.mtime);
    expect(fs.statSync(weights).size).toBe(MANIFEST_SIZE);
    const got = sha256(weights);
    expect(got).not.toBe(MANIFEST_SHA);

    const err = await ensureMiniLMOnnx(work).catch((e: Error) => e);
    expect((err as Error).message).toBe(
      `${weights}: sha256 mismatch (corrupt weights): expected ${MANIFEST_SHA}, got ${got}; run \`img2prompt models pull minilm\` to repair`,
    );
    expect(leftovers()).toEqual([]);
    // Still refused on the next open: nothing was recorded that would let it through.
    await expect(ensureMiniLMOnnx(work)).rejects.toThrow(/sha256 mismatch/);
    expect(leftovers()).toEqual([]);
  });

  it('refuses truncated weights before hashing them', async () => {
    fs.truncateSync(weights, 1_000_000);
    await expect(ensureMiniLMOnnx(work)).rejects.toThrow(
      `${weights}: truncated: 1000000 bytes, expected ${MANIFEST_SIZE}; run \`img2prompt models pull minilm\` to repair`,
    );
    expect(leftovers()).toEqual([]);
  });
});
