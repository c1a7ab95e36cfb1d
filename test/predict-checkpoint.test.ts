import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { inputNamesSummary, PredictCheckpoint, runFingerprint, type RunDescription } from '../src/predict/checkpoint.js';
import { writeInputContents } from '../src/predict/input-fingerprint.js';
import { randomUnitRows } from './helpers/predict-fakes.js';
import { tempDir } from './helpers/paths.js';

const DIM = 384;

let dir: string;
let file: string;
beforeEach(() => {
  dir = tempDir('img2prompt-checkpoint-');
  file = path.join(dir, 'predict.ckpt');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const inputs = Array.from({ length: 20 }, (_, i) => `images/img${i}.png`);
const run: RunDescription = {
  inputs: inputNamesSummary(inputs),
  options: { k: 16, temperature: 0.02, members: ['bank', 'map'] },
  models: { clip: 'ViT-L-14/openai', minilm: 'all-MiniLM-L6-v2' },
};

const vectors = randomUnitRows(40, DIM, 1);
function record(i: number) {
  return {
    id: `img${i}`,
    members: { bank: vectors.slice(2 * i * DIM, (2 * i + 1) * DIM), map: vectors.slice((2 * i + 1) * DIM, (2 * i + 2) * DIM) },
    meta: { nearest: `a prompt for image ${i} — ünïcode` },
  };
}

async function expectRecord(cp: PredictCheckpoint, i: number): Promise<void> {
  const got = (await cp.read(`img${i}`))!;
  const want = record(i);
  expect(Buffer.from(got.members.bank.buffer).equals(Buffer.from(want.members.bank.buffer))).toBe(true);
  expect(Buffer.from(got.members.map.buffer).equals(Buffer.from(want.members.map.buffer))).toBe(true);
  expect(got.meta).toEqual(want.meta);
}

describe('PredictCheckpoint', () => {
  it('keeps where each record is, not its vectors, and reads queued and appended records back bit-exactly', async () => {
    const cp = await PredictCheckpoint.open(file, run, { resume: false, dim: DIM, chunkSize: 4 });
    for (let i = 0; i < 6; i++) await cp.add(record(i));
    // Four appended, two still queued: both kinds read back, and only byte offsets stay in memory.
    expect(cp.size).toBe(6);
    for (let i = 0; i < 6; i++) await expectRecord(cp, i);
    // A later record for an id wins.
    const again = { ...record(1), meta: { nearest: 'written again' } };
    await cp.add(again);
    await cp.flush();
    expect((await cp.read('img1'))?.meta).toEqual({ nearest: 'written again' });
    expect(await cp.read('img9')).toBeUndefined();
    await cp.close();
    const back = await PredictCheckpoint.open(file, run, { resume: true, dim: DIM });
    expect(back.size).toBe(6);
    expect((await back.read('img1'))?.meta).toEqual({ nearest: 'written again' });
    for (const i of [0, 2, 3, 4, 5]) await expectRecord(back, i);
    expect((await back.readMany(['img5', 'img0'])).map((r) => r?.id)).toEqual(['img5', 'img0']);
    await back.close();
  });

  it('round-trips records bit-exactly and keeps only fsynced chunks after a crash', async () => {
    const cp = await PredictCheckpoint.open(file, run, { resume: false, dim: DIM, chunkSize: 4 });
    for (let i = 0; i < 10; i++) await cp.add(record(i));
    // Not closed: simulates a crash. Two full chunks (8 records) were appended; 2 were still queued.
    const after = await PredictCheckpoint.open(file, run, { resume: true, dim: DIM });
    expect(after.startedFresh).toBe(false);
    expect(after.size).toBe(8);
    for (let i = 0; i < 8; i++) await expectRecord(after, i);
    await after.close();
    await cp.close(); // the crashed writer's file handle, released only for the test's sake

    const clean = await PredictCheckpoint.open(file, run, { resume: false, dim: DIM });
    for (let i = 0; i < 10; i++) await clean.add(record(i));
    await clean.close();
    const back = await PredictCheckpoint.open(file, run, { resume: true, dim: DIM });
    expect(back.size).toBe(10);
    expect(back.droppedBytes).toBe(0);
    for (let i = 0; i < 10; i++) await expectRecord(back, i);
    await back.close();
  });

  it('drops a torn last record, cuts it from the file, and appends cleanly after it', async () => {
    const cp = await PredictCheckpoint.open(file, run, { resume: false, dim: DIM, chunkSize: 1 });
    for (let i = 0; i < 5; i++) await cp.add(record(i));
    await cp.close();
    const cleanSize = fs.statSync(file).size;
    // Half of a sixth record, as a crash mid-write leaves it.
    const line = `${JSON.stringify({ id: 'img5', m: { bank: Buffer.from(record(5).members.bank.buffer).toString('base64') } })}\n`;
    fs.appendFileSync(file, line.slice(0, 1000));

    const resumed = await PredictCheckpoint.open(file, run, { resume: true, dim: DIM });
    expect(resumed.size).toBe(5);
    expect(resumed.has('img5')).toBe(false);
    expect(resumed.droppedBytes).toBe(1000);
    expect(fs.statSync(file).size).toBe(cleanSize);
    for (let i = 5; i < 8; i++) await resumed.add(record(i));
    await resumed.close();

    const again = await PredictCheckpoint.open(file, run, { resume: true, dim: DIM });
    expect(again.size).toBe(8);
    for (let i = 0; i < 8; i++) await expectRecord(again, i);
    await again.close();
    // Every line of the file is whole JSON: the torn bytes are gone.
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(9);
    for (const l of lines) expect(() => JSON.parse(l)).not.toThrow();
  });

  it('ignores a complete-looking but unparseable last line, refuses corruption in the middle', async () => {
    const cp = await PredictCheckpoint.open(file, run, { resume: false, dim: DIM });
    for (let i = 0; i < 3; i++) await cp.add(record(i));
    await cp.close();
    const good = fs.readFileSync(file);
    fs.writeFileSync(file, Buffer.concat([good, Buffer.alloc(300)])); // zero-filled tail, no newline
    const a = await PredictCheckpoint.open(file, run, { resume: true, dim: DIM });
    expect(a.size).toBe(3);
    expect(a.droppedBytes).toBe(300);
    await a.close();

    const lines = good.toString('utf8').split('\n');
    lines[2] = lines[2].slice(0, 50); // record 2 of 3 mangled, record 3 intact
    fs.writeFileSync(file, lines.join('\n'));
    await expect(PredictCheckpoint.open(file, run, { resume: true, dim: DIM })).rejects.toThrow(
      `${file}: checkpoint is corrupt at line 3 (valid records follow it); rerun with --restart to start over`,
    );
  });

  it('refuses to resume under a different fingerprint and says what changed', async () => {
    const cp = await PredictCheckpoint.open(file, run, { resume: false, dim: DIM });
    await cp.add(record(0));
    await cp.close();
    const resume = (r: RunDescription) => PredictCheckpoint.open(file, r, { resume: true, dim: DIM });
    await expect(resume({ ...run, options: { ...run.options, k: 32 } })).rejects.toThrow(
      `${file}: checkpoint belongs to a different run (option k: 16 → 32); rerun with --restart to start over`,
    );
    await expect(resume({ ...run, options: { ...run.options, temperature: undefined, tta: true } })).rejects.toThrow(
      /option temperature: 0\.02 → \(unset\); option tta: \(unset\) → true/,
    );
    await expect(resume({ ...run, inputs: inputNamesSummary(inputs.slice(1)) })).rejects.toThrow(/input list \(20 → 19 images\)/);
    await expect(resume({ ...run, inputs: inputNamesSummary([...inputs].reverse()) })).rejects.toThrow(/input list \(same count, different images or order\)/);
    await expect(resume({ ...run, models: { ...run.models, clip: 'ViT-B-32/openai' } })).rejects.toThrow(/model clip: "ViT-L-14\/openai" → "ViT-B-32\/openai"/);
    await expect(PredictCheckpoint.open(file, run, { resume: true, dim: 512 })).rejects.toThrow(/vectors of 384 values, this run uses 512/);
    // Key order does not change the fingerprint.
    expect(runFingerprint({ ...run, options: { members: ['bank', 'map'], temperature: 0.02, k: 16 } })).toBe(runFingerprint(run));
    // The same run resumes, and a fresh (non-resume) open replaces the file.
    const same = await resume(run);
    expect(same.size).toBe(1);
    await same.close();
    const fresh = await PredictCheckpoint.open(file, { ...run, options: { k: 32 } }, { resume: false, dim: DIM });
    expect(fresh.size).toBe(0);
    await fresh.close();
    expect(fs.readFileSync(file, 'utf8').split('\n')).toHaveLength(2);
  });

  it('refuses to resume when an input changed under the same name, naming the images and how they changed', async () => {
    const img = (name: string) => path.join(dir, name);
    const bytes = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 0xff));
    fs.writeFileSync(img('a.png'), bytes(1000, 1));
    fs.writeFileSync(img('b.png'), bytes(1000, 2));
    fs.writeFileSync(img('c.png'), bytes(1000, 3));
    fs.writeFileSync(img('big.png'), bytes(300_000, 4)); // more than the first and last 64 KiB
    const files = ['a.png', 'b.png', 'c.png', 'big.png'].map(img);
    // Each run writes its fingerprints to a file of its own; the checkpoint keeps the first run's.
    let runs = 0;
    const describe = async (): Promise<RunDescription> => ({
      ...run,
      inputs: inputNamesSummary(files),
      contents: await writeInputContents(path.join(dir, `contents-${runs++}`), files.length, async (a, b) => files.slice(a, b), async function* () { yield* files; }),
    });
    const cp = await PredictCheckpoint.open(file, await describe(), { resume: false, dim: DIM });
    await cp.add(record(0));
    await cp.close();
    const resume = async () => PredictCheckpoint.open(file, await describe(), { resume: true, dim: DIM });
    /** Rewrites `name` with `data` and puts its times back (to the nanosecond), so only the content tells. */
    const replaceKeepingTimes = (name: string, data: Buffer) => {
      const times = path.join(dir, 'times-ref');
      execFileSync('touch', ['-r', img(name), times]);
      fs.writeFileSync(img(name), data);
      execFileSync('touch', ['-r', times, img(name)]);
    };

    // Touched but unchanged: a small file's every byte was hashed, so it is the same image.
    execFileSync('touch', ['-d', '2001-01-01', img('a.png')]);
    (await resume()).close();

    replaceKeepingTimes('b.png', bytes(1000, 5));
    await expect(resume()).rejects.toThrow(
      `${file}: checkpoint belongs to a different run (1 input image changed since the checkpoint was written: ${img('b.png')} (content changed)); rerun with --restart to start over`,
    );
    fs.writeFileSync(img('c.png'), bytes(1200, 3));
    const big = bytes(300_000, 4);
    big[150_000] ^= 0xff; // in the middle, which the fast hash does not read: the mtime tells
    fs.writeFileSync(img('big.png'), big);
    await expect(resume()).rejects.toThrow(
      `(3 input images changed since the checkpoint was written: ${img('b.png')} (content changed), ${img('c.png')} (size 1000 → 1200 bytes), ${img('big.png')} (modified since (mtime changed)));`,
    );
    fs.rmSync(img('a.png'));
    await expect(resume()).rejects.toThrow(`(4 input images changed since the checkpoint was written: ${img('a.png')} (unreadable now), `);
  });

  it('treats a record changed after it was written (a flipped base64 digit still parses) as corrupt, never as data', async () => {
    const cp = await PredictCheckpoint.open(file, run, { resume: false, dim: DIM });
    for (let i = 0; i < 3; i++) await cp.add(record(i));
    await cp.close();
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    const flip = (line: string) => {
      const at = line.indexOf('"bank":"') + 20;
      return line.slice(0, at) + (line[at] === 'A' ? 'B' : 'A') + line.slice(at + 1);
    };
    // The last record damaged: dropped like a torn one, so its image is computed again.
    fs.writeFileSync(file, [...lines.slice(0, 3), flip(lines[3]!), ''].join('\n'));
    const last = await PredictCheckpoint.open(file, run, { resume: true, dim: DIM });
    expect([last.size, last.has('img0'), last.has('img1'), last.has('img2')]).toEqual([2, true, true, false]);
    await last.close();
    // One in the middle: refused, naming the line.
    const again = lines.slice();
    again[2] = flip(again[2]!);
    fs.writeFileSync(file, again.join('\n'));
    await expect(PredictCheckpoint.open(file, run, { resume: true, dim: DIM })).rejects.toThrow(
      `${file}: checkpoint is corrupt at line 3 (valid records follow it); rerun with --restart to start over`,
    );
  });

  it('starts fresh when resuming without a file or with a torn header, and rejects foreign files', async () => {
    const none = await PredictCheckpoint.open(file, run, { resume: true, dim: DIM });
    expect(none.startedFresh).toBe(true);
    await none.close();
    fs.writeFileSync(file, '{"format":"img2prompt-predict-checkp');
    const torn = await PredictCheckpoint.open(file, run, { resume: true, dim: DIM });
    expect(torn.startedFresh).toBe(true);
    await torn.add(record(1));
    await torn.close();
    const reopened = await PredictCheckpoint.open(file, run, { resume: true, dim: DIM });
    expect(reopened.size).toBe(1);
    await reopened.close();
    fs.writeFileSync(file, 'imgId,0,1,2\n');
    await expect(PredictCheckpoint.open(file, run, { resume: true, dim: DIM })).rejects.toThrow(`${file}: not a predict checkpoint`);
    const cp = await PredictCheckpoint.open(path.join(dir, 'x.ckpt'), run, { resume: false, dim: DIM });
    await expect(cp.add({ id: 'a', members: { bank: new Float32Array(3) } })).rejects.toThrow(/member 'bank' must be a Float32Array of 384 values/);
    await cp.close();
  });
});
