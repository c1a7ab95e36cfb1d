import { describe, expect, it } from 'vitest';
import { seededRandom } from '../src/predict/seeded.js';
import fs from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { tempDir } from './helpers/paths.js';
import { PlantedTextSide, syntheticLabels } from './helpers/planted.js';
import {
  BANK_FORMAT_VERSION,
  bankFilePath,
  bankKey,
  buildBankFile,
  decodeHeader,
  encodeHeader,
  headerSize,
  loadOrBuildBank,
  readBankFile,
  sanitiseModelId,
} from '../src/interrogate/bank-cache.js';
import { toFloat16 } from '../src/rank/float16.js';
import { normalizeRowInPlace } from '../src/util/rows.js';
import type { LabelBankDef } from '../src/interrogate/types.js';
import type { BankKey } from '../src/interrogate/bank-cache.js';


const def = (labels: string[], name = 'flavors'): LabelBankDef => ({ name, role: 'flavor', labels, source: `${name}.txt` });

/** What a bank built by `side` must hold: each label's planted unit vector, row by row. */
function expectedMatrix(side: PlantedTextSide, labels: string[]): Float32Array {
  const out = new Float32Array(labels.length * side.dim);
  labels.forEach((l, i) => out.set(side.vector(l), i * side.dim));
  return out;
}

/** fp32 rows as stored: the cache renormalises each row, which may move the last bit of a value. */
function expectRowsClose(got: Float32Array | Uint16Array, want: Float32Array): void {
  expect(got).toBeInstanceOf(Float32Array);
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  expect(worst).toBeLessThan(1e-6);
}

/** A finished fp32 bank laid out as format 1 wrote it: the same header without the tokenizer id. */
function formatOneBank(key: BankKey, matrix: Float32Array): Buffer {
  const strings = [key.modelId, key.weightHash, key.labelsHash].map((s) => Buffer.from(s, 'utf8'));
  const size = Math.ceil((64 + strings.reduce((n, b) => n + 2 + b.length, 0) + 32) / 64) * 64;
  const header = Buffer.alloc(size);
  header.write('I2PBANK\0', 0, 'latin1');
  header.writeUInt32LE(1, 8);
  header.writeUInt32LE(size, 12);
  header.writeUInt32LE(key.dim, 16);
  header.writeUInt32LE(key.count, 20);
  header.writeUInt32LE(1, 24); // fp32
  const payload = Buffer.from(matrix.buffer, matrix.byteOffset, matrix.byteLength);
  createHash('sha256').update(payload).digest().copy(header, 32);
  let at = 64;
  for (const s of strings) {
    header.writeUInt16LE(s.length, at);
    s.copy(header, at + 2);
    at += 2 + s.length;
  }
  createHash('sha256').update(header.subarray(0, size - 32)).digest().copy(header, size - 32);
  return Buffer.concat([header, payload]);
}

describe('bank file format', () => {
  it('round-trips the header and lays the file out under <home>/banks/<model>/', () => {
    const side = new PlantedTextSide({ dim: 24, modelId: 'ViT-L-14/openai' });
    const key = bankKey(side, def(['a', 'b', 'c']), 'fp16');
    const header = encodeHeader(key, 'ab'.repeat(32));
    expect(header.length).toBe(headerSize(key));
    expect(header.length % 64).toBe(0);
    expect(decodeHeader(header, 'x.bank')).toEqual({ ...key, version: BANK_FORMAT_VERSION, headerBytes: header.length, payloadSha256: 'ab'.repeat(32) });
    expect(key.tokenizerId).toBe(side.tokenizerId);
    expect(sanitiseModelId('ViT-L-14/openai')).toBe('ViT-L-14_openai');
    expect(bankFilePath('ViT-L-14/openai', 'flavors', '/h')).toBe('/h/banks/ViT-L-14_openai/flavors.bank');
    expect(() => bankFilePath('m', '../evil', '/h')).toThrow('invalid bank name');
    const flipped = Buffer.from(header);
    flipped[20] ^= 1; // count
    expect(() => decodeHeader(flipped, 'x.bank')).toThrow('x.bank: bank header checksum mismatch');
  });
});

describe('building and loading banks', () => {
  it('builds fp32 and fp16 banks holding the normalised embeddings, then loads them without encoding', async () => {
    const home = tempDir();
    const labels = syntheticLabels('f', 1000);
    const side = new PlantedTextSide({ dim: 48 });
    const want = expectedMatrix(side, labels);

    const fp32 = await loadOrBuildBank(side, def(labels), { home, dtype: 'fp32', chunkSize: 300 });
    expect(fp32).toMatchObject({ built: true, reason: 'missing', dtype: 'fp32', matrix: { rows: 1000, dim: 48 } });
    expect(fp32.matrix.data).toEqual(want);
    // 1000 labels in chunks of 300: 4 encoder calls, in order.
    expect(side.calls.map((c) => c.length)).toEqual([300, 300, 300, 100]);
    expect(side.encodedTexts()).toEqual(labels);
    const size = fs.statSync(fp32.file).size;
    expect(size).toBe(headerSize(bankKey(side, def(labels), 'fp32')) + 1000 * 48 * 4);

    const again = await loadOrBuildBank(side, def(labels), { home, dtype: 'fp32' });
    expect(again.built).toBe(false);
    expect(again.matrix.data).toEqual(want);
    expect(side.calls).toHaveLength(4);

    // Another dtype is another cache key: rebuilt as fp16, rows equal to the rounded fp32 rows.
    const fp16 = await loadOrBuildBank(side, def(labels), { home, dtype: 'fp16', chunkSize: 4096 });
    expect(fp16).toMatchObject({ built: true, reason: 'stored as fp32, fp16 wanted', dtype: 'fp16' });
    expect(fp16.matrix.data).toBeInstanceOf(Uint16Array);
    expect(fp16.matrix.data).toEqual(toFloat16(want));
    expect(fs.readdirSync(path.dirname(fp16.file))).toEqual(['flavors.bank']); // no partials or sidecars left
  });

  it('stores fp32 unless fp16 is asked for', async () => {
    const home = tempDir();
    const labels = syntheticLabels('f', 30);
    const side = new PlantedTextSide({ dim: 20 });
    const bank = await loadOrBuildBank(side, def(labels), { home });
    expect(bank.dtype).toBe('fp32');
    expectRowsClose(bank.matrix.data, expectedMatrix(side, labels));
    expect((await readBankFile(bank.file)).header.dtype).toBe('fp32');
    const file = await buildBankFile(side, def(labels, 'half'), { home, dtype: 'fp16' });
    expect((await readBankFile(file)).header.dtype).toBe('fp16');
  });

  it('rebuilds when the model weights, the model or the labels change', async () => {
    const home = tempDir();
    const labels = syntheticLabels('f', 50);
    const a = new PlantedTextSide({ dim: 16 });
    await loadOrBuildBank(a, def(labels), { home });

    const newWeights = new PlantedTextSide({ dim: 16, weightHash: 'planted-weights-2', seed: 'other' });
    const r1 = await loadOrBuildBank(newWeights, def(labels), { home });
    expect(r1).toMatchObject({ built: true, reason: 'built with other model weights' });
    expectRowsClose(r1.matrix.data, expectedMatrix(newWeights, labels));

    const changed = [...labels.slice(0, 49), 'something new'];
    const r2 = await loadOrBuildBank(newWeights, def(changed), { home });
    expect(r2).toMatchObject({ built: true, reason: 'labels changed' });
    expect(newWeights.calls.at(-1)).toEqual(changed);

    const reordered = [...changed].reverse();
    expect((await loadOrBuildBank(newWeights, def(reordered), { home })).reason).toBe('labels changed');

    // A different model id lives in its own folder, so both stay cached.
    const other = new PlantedTextSide({ dim: 16, modelId: 'other/model' });
    expect((await loadOrBuildBank(other, def(labels), { home })).reason).toBe('missing');
    expect(fs.readdirSync(path.join(home, 'banks')).sort()).toEqual(['other_model', 'planted_test-model']);
  });

  it('rebuilds a bank whose labels were tokenized another way (text cleaning, vocabulary)', async () => {
    const home = tempDir();
    const labels = syntheticLabels('f', 40);
    const before = new PlantedTextSide({ dim: 16, tokenizerId: 'open_clip/v1/ctx77/0123456789abcdef' });
    await loadOrBuildBank(before, def(labels), { home });
    const after = new PlantedTextSide({ dim: 16, tokenizerId: 'open_clip/v2/ctx77/0123456789abcdef', seed: 'other' });
    const rebuilt = await loadOrBuildBank(after, def(labels), { home });
    expect(rebuilt).toMatchObject({ built: true, reason: `tokenized by ${before.tokenizerId}, now ${after.tokenizerId}` });
    expectRowsClose(rebuilt.matrix.data, expectedMatrix(after, labels));
    expect((await readBankFile(rebuilt.file)).header.tokenizerId).toBe(after.tokenizerId);
    expect((await loadOrBuildBank(after, def(labels), { home })).built).toBe(false);
  });

  it('rebuilds a bank of format 1, written before the tokenizer was part of the key', async () => {
    const home = tempDir();
    const labels = syntheticLabels('f', 30);
    const side = new PlantedTextSide({ dim: 16 });
    const file = bankFilePath(side.modelId, 'flavors', home);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    // Everything else matches (model, weights, labels, dim, dtype): only the missing tokenizer id is stale.
    fs.writeFileSync(file, formatOneBank(bankKey(side, def(labels), 'fp32'), expectedMatrix(side, labels)));
    const bank = await loadOrBuildBank(side, def(labels), { home });
    expect(bank).toMatchObject({ built: true, reason: `${file}: bank format version 1, expected ${BANK_FORMAT_VERSION}` });
    expect(side.encodedTexts()).toEqual(labels);
    expect((await readBankFile(file)).header).toMatchObject({ version: BANK_FORMAT_VERSION, tokenizerId: side.tokenizerId });
  });

  it('detects a truncated, a corrupted and a foreign final file and rebuilds it', async () => {
    const home = tempDir();
    const labels = syntheticLabels('f', 200);
    const side = new PlantedTextSide({ dim: 32 });
    const { file } = await loadOrBuildBank(side, def(labels), { home, dtype: 'fp32' });
    const good = fs.readFileSync(file);
    const want = expectedMatrix(side, labels);

    const cases: [string, Buffer, string][] = [
      ['truncated', good.subarray(0, good.length - 10), `is ${good.length - 10} bytes, its header says ${good.length}`],
      ['one matrix bit flipped', Buffer.from(good).fill(good[good.length - 100] ^ 0x10, good.length - 100, good.length - 99), 'bank matrix checksum mismatch'],
      ['header byte flipped', Buffer.from(good).fill(good[17] ^ 1, 17, 18), 'bank header checksum mismatch'],
      ['not a bank', Buffer.from('hello world, this is not a bank file at all, not even close.........................................'), 'bad magic'],
      ['empty', Buffer.alloc(0), 'bad magic'],
    ];
    for (const [what, bytes, reason] of cases) {
      fs.writeFileSync(file, bytes);
      await expect(readBankFile(file), what).rejects.toThrow(reason);
      const calls = side.calls.length;
      const rebuilt = await loadOrBuildBank(side, def(labels), { home, dtype: 'fp32' });
      expect(rebuilt.built, what).toBe(true);
      expect(rebuilt.reason, what).toContain(reason);
      expect(rebuilt.matrix.data, what).toEqual(want);
      expect(side.calls.length, what).toBe(calls + 1);
      expect(fs.readFileSync(file).equals(good), what).toBe(true);
    }
  });

  it('refuses encoder rows that are zero or not finite, naming the label, and stores the rest normalised by the one normaliser', async () => {
    const home = tempDir();
    const labels = syntheticLabels('f', 4);
    const side = new PlantedTextSide({ dim: 16 });
    const spoilt = (spoil: (rows: Float32Array) => void): PlantedTextSide => {
      const bad = Object.create(side) as PlantedTextSide;
      bad.encodeTexts = async (texts, opts) => {
        const rows = await side.encodeTexts(texts, opts);
        spoil(rows);
        return rows;
      };
      return bad;
    };
    const build = (text: PlantedTextSide) => buildBankFile(text, def(labels), { home });
    await expect(build(spoilt((m) => m.fill(0, 16, 32)))).rejects.toThrow(`flavors.txt: text encoder returned a zero embedding for label "${labels[1]}"`);
    await expect(build(spoilt((m) => (m[40] = Infinity)))).rejects.toThrow(`flavors.txt: text encoder returned a non-finite embedding for label "${labels[2]}"`);
    // A row twice too long (as a graph that does not normalise would give) is stored at unit length.
    const file = await build(spoilt((m) => m.subarray(48, 64).forEach((x, i, row) => (row[i] = 2 * x))));
    const want = await side.encodeTexts(labels);
    for (let r = 0; r < labels.length; r++) normalizeRowInPlace(want, r, 16);
    expect((await readBankFile(file)).matrix.data).toEqual(want);
  });

  it('never shows a final file while building, and resumes after an encoder failure', async () => {
    const home = tempDir();
    const labels = syntheticLabels('f', 100);
    const side = new PlantedTextSide({ dim: 16 });
    const file = bankFilePath(side.modelId, 'flavors', home);
    let failAfter = 3;
    const flaky = Object.create(side) as PlantedTextSide;
    flaky.encodeTexts = async (texts, opts) => {
      if (failAfter-- === 0) throw new Error('GPU fell over');
      return side.encodeTexts(texts, opts);
    };
    const seen: boolean[] = [];
    await expect(
      buildBankFile(flaky, def(labels), { home, chunkSize: 20, onChunk: () => seen.push(fs.existsSync(file)) }),
    ).rejects.toThrow('GPU fell over');
    expect(seen).toEqual([false, false, false]);
    expect(fs.existsSync(file)).toBe(false);
    expect(JSON.parse(fs.readFileSync(`${file}.partial.json`, 'utf8')).rowsDone).toBe(60);

    side.calls.length = 0;
    await buildBankFile(side, def(labels), { home, chunkSize: 20 });
    expect(side.encodedTexts()).toEqual(labels.slice(60));
    expectRowsClose((await readBankFile(file)).matrix.data, expectedMatrix(side, labels));
    expect(fs.existsSync(`${file}.partial`)).toBe(false);
    expect(fs.existsSync(`${file}.partial.json`)).toBe(false);
  });

  it('reports its progress to the caller (rows so far, per bank) and never draws on stderr itself, even with a bar forced on', async () => {
    const home = tempDir();
    const labels = syntheticLabels('p', 50);
    const side = new PlantedTextSide({ dim: 8 });
    const seen: [string, number, number][] = [];
    const saved = process.env.IMG2PROMPT_PROGRESS;
    process.env.IMG2PROMPT_PROGRESS = '1';
    const write = process.stderr.write;
    let drawn = '';
    process.stderr.write = ((chunk: string | Uint8Array) => ((drawn += String(chunk)), true)) as typeof process.stderr.write;
    try {
      await buildBankFile(side, def(labels), { home, chunkSize: 20, onProgress: (bank, rows, count) => seen.push([bank, rows, count]) });
    } finally {
      process.stderr.write = write;
      if (saved === undefined) delete process.env.IMG2PROMPT_PROGRESS;
      else process.env.IMG2PROMPT_PROGRESS = saved;
      fs.rmSync(home, { recursive: true, force: true });
    }
    expect(drawn).toBe('');
    expect(seen[0]).toEqual(['flavors', 0, 50]);
    expect(seen.at(-1)).toEqual(['flavors', 50, 50]);
    const rows = seen.map((x) => x[1]);
    expect(rows).toEqual([...rows].sort((a, b) => a - b));
    for (const chunkEnd of [20, 40, 50]) expect(rows).toContain(chunkEnd);
  });

  it('discards a partial build made for other labels', async () => {
    const home = tempDir();
    const side = new PlantedTextSide({ dim: 16 });
    const old = syntheticLabels('old', 100);
    let stop = 2;
    const flaky = Object.create(side) as PlantedTextSide;
    flaky.encodeTexts = async (texts, opts) => {
      if (stop-- === 0) throw new Error('interrupted');
      return side.encodeTexts(texts, opts);
    };
    await expect(buildBankFile(flaky, def(old), { home, chunkSize: 25 })).rejects.toThrow('interrupted');
    side.calls.length = 0;
    const fresh = syntheticLabels('new', 100);
    const bank = await loadOrBuildBank(side, def(fresh), { home, chunkSize: 25 });
    expect(side.encodedTexts()).toEqual(fresh);
    expectRowsClose(bank.matrix.data, expectedMatrix(side, fresh));
  });

  it('resumes a build whose process was SIGKILLed midway, from its last finished chunk', async () => {
    const home = tempDir();
    const count = 1000;
    const chunk = 50;
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/build-bank-child.ts', home, String(count), String(chunk), '150', 'fp16'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const killedAt = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        const chunks = out.split('\n').filter((l) => l.startsWith('chunk ')).length;
        if (chunks >= 3 && !child.killed) {
          child.kill('SIGKILL');
          resolve(chunks);
        }
      });
      child.on('exit', (code) => (child.killed ? undefined : reject(new Error(`child exited ${code} before being killed: ${stderr}`))));
    });
    await new Promise((r) => child.once('close', r));
    expect(child.signalCode).toBe('SIGKILL');
    expect(killedAt).toBeGreaterThanOrEqual(3);

    const side = new PlantedTextSide({ dim: 32 });
    const labels = syntheticLabels('label', count);
    const file = bankFilePath(side.modelId, 'resume', home);
    expect(fs.existsSync(file)).toBe(false);
    const rowsDone = JSON.parse(fs.readFileSync(`${file}.partial.json`, 'utf8')).rowsDone as number;
    expect(rowsDone % chunk).toBe(0);
    expect(rowsDone).toBeGreaterThanOrEqual(3 * chunk);
    expect(rowsDone).toBeLessThan(count);

    const resumed = await loadOrBuildBank(side, { name: 'resume', role: 'flavor', labels, source: 'resume.txt' }, { home, chunkSize: chunk, dtype: 'fp16' });
    expect(resumed.built).toBe(true);
    // Only the rows the killed build had not finished were encoded, in chunks from there on.
    expect(side.encodedTexts()).toEqual(labels.slice(rowsDone));
    expect(side.calls.every((c) => c.length === chunk)).toBe(true);

    // Byte for byte what an uninterrupted build writes.
    const oneShotHome = tempDir();
    const oneShot = await loadOrBuildBank(new PlantedTextSide({ dim: 32 }), { name: 'resume', role: 'flavor', labels, source: 'resume.txt' }, { home: oneShotHome, chunkSize: 4096, dtype: 'fp16' });
    expect(resumed.matrix.data).toEqual(oneShot.matrix.data);
    expect(fs.readFileSync(file).equals(fs.readFileSync(oneShot.file))).toBe(true);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['resume.bank']);
  });

  it('survives SIGKILLs at random moments: never a valid bank before the build finishes, and every restart ends byte-identical', async () => {
    // Many small chunks and an encoder that never sleeps: most of the build is chunk writes, datasyncs
    // and sidecar renames, which is where random kills land.
    const count = 3000;
    const chunk = 20;
    const dim = 64;
    const labels = syntheticLabels('label', count);
    const bankDef: LabelBankDef = { name: 'resume', role: 'flavor', labels, source: 'resume.txt' };
    const reference = fs.readFileSync((await loadOrBuildBank(new PlantedTextSide({ dim }), bankDef, { home: tempDir(), chunkSize: 4096 })).file);
    const rand = seededRandom(20261125); // the same "random" kill moments every run

    /** Runs the child builder in `home`; SIGKILLs it `killAfterMs` after it is ready (never, if undefined). */
    async function runChild(home: string, killAfterMs?: number): Promise<{ finished: boolean; buildMs: number; sawInvalid: string[] }> {
      const file = bankFilePath('planted/test-model', 'resume', home);
      const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/build-bank-child.ts', home, String(count), String(chunk), '0', 'fp32', String(dim)], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let stderr = '';
      let readyAt = 0;
      const sawInvalid: string[] = [];
      // While the child runs, the final path must hold nothing or the complete, correct bank.
      const watch = setInterval(() => {
        let bytes: Buffer;
        try {
          bytes = fs.readFileSync(file);
        } catch {
          return;
        }
        if (!bytes.equals(reference)) sawInvalid.push(`${bytes.length} bytes`);
      }, 3);
      child.stderr.on('data', (d) => (stderr += d));
      child.stdout.on('data', (d) => {
        out += d;
        if (!readyAt && out.includes('ready\n')) {
          readyAt = performance.now();
          if (killAfterMs !== undefined) setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        }
      });
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      clearInterval(watch);
      const finished = out.includes('finished\n');
      if (!finished && child.signalCode !== 'SIGKILL') throw new Error(`build child exited ${code}: ${stderr}`);
      return { finished, buildMs: performance.now() - readyAt, sawInvalid };
    }

    // One uninterrupted child build sizes the window the kills are drawn from.
    const timing = await runChild(tempDir());
    expect(timing.finished).toBe(true);
    const window = timing.buildMs * 0.9;

    let midBuildKills = 0;
    for (let run = 0; run < 5; run++) {
      const home = tempDir();
      const file = bankFilePath('planted/test-model', 'resume', home);
      // One or two kills in a row (the second one hits a build that is itself resuming).
      const kills = 1 + Math.floor(rand() * 2);
      let finished = false;
      for (let k = 0; k < kills && !finished; k++) {
        const delay = rand() * window;
        const r = await runChild(home, delay);
        const what = `run ${run}, kill ${k} after ${delay.toFixed(0)} ms`;
        expect(r.sawInvalid, what).toEqual([]);
        finished = r.finished;
        if (!fs.existsSync(file)) {
          midBuildKills++;
          await expect(readBankFile(file), what).rejects.toThrow('cannot read bank');
        } else {
          // Killed after the rename: that bank is the finished one.
          expect(fs.readFileSync(file).equals(reference), what).toBe(true);
        }
      }
      // The restart resumes from what the sidecar says is on disk and ends with the very same bytes.
      const sidecar = `${file}.partial.json`;
      const rowsDone = fs.existsSync(sidecar) ? (JSON.parse(fs.readFileSync(sidecar, 'utf8')).rowsDone as number) : 0;
      expect(rowsDone % chunk, `run ${run}`).toBe(0);
      const side = new PlantedTextSide({ dim });
      const resumed = await loadOrBuildBank(side, bankDef, { home, chunkSize: chunk });
      if (resumed.built) expect(side.encodedTexts(), `run ${run}`).toEqual(labels.slice(rowsDone));
      expect(fs.readFileSync(resumed.file).equals(reference), `run ${run}`).toBe(true);
      expect(fs.readdirSync(path.dirname(file)), `run ${run}`).toEqual(['resume.bank']);
    }
    // The window is drawn to land inside the build; most kills must have, or this tested nothing.
    expect(midBuildKills).toBeGreaterThanOrEqual(3);
  });
});
