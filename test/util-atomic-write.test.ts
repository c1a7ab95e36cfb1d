// The one output path (src/util/atomic-write.ts) under disk faults, simulated through the writers' seam
// so that every machine runs them: a full disk (a short write, then ENOSPC), EIO at write or at fsync,
// a device that drops bytes while reporting success, writes the kernel splits, /dev/full. Each writer of
// a product file is checked to publish either the whole file or nothing, leaving no temp behind.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { AtomicFile, removeStaleTemps, writeFileAtomic } from '../src/util/atomic-write.js';
import { readSubmission, writeSubmission, EMBEDDING_DIM } from '../src/submission/submission-csv.js';
import { writeValidatedSubmission } from '../src/predict/submission-output.js';
import { writePromptsCsv } from '../src/submission/prompts-csv.js';
import { NpyRowWriter, readNpy, writeNpy } from '../src/util/npy.js';
import { inputNamesSummary, PredictCheckpoint } from '../src/predict/checkpoint.js';
import { Img2PromptError } from '../src/util/errors.js';
import { injectOutputFault, writeToDevFull, type OutputFault } from './helpers/faulty-output-fs.js';
import { expectBadInput, listDir } from './helpers/submission-fakes.js';
import { tempDir } from './helpers/paths.js';

const work = tempDir('img2prompt-atomic-');
let restore: (() => void) | undefined;
let n = 0;

afterEach(() => {
  restore?.();
  restore = undefined;
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** A fresh empty folder per case: "nothing left behind" is then "the folder is as it was". */
function folder(): string {
  const dir = path.join(work, `case-${n++}`);
  fs.mkdirSync(dir);
  return dir;
}

function fault(f: OutputFault): void {
  restore = injectOutputFault(f);
}

/** Unit vectors for `count` images: a valid submission body. */
function unitVectors(count: number): Float32Array {
  const v = new Float32Array(count * EMBEDDING_DIM);
  for (let i = 0; i < count; i++) v[i * EMBEDDING_DIM + (i % EMBEDDING_DIM)] = 1;
  return v;
}

const IDS = ['a1', 'b2', 'c3', 'd4', 'e5', 'f6', 'g7'];

describe('a full disk (ENOSPC after a short write)', () => {
  it('writeSubmission: one error naming the submission and "no space left on device"; no file, no temp', async () => {
    const dir = folder();
    const target = path.join(dir, 'sub.csv');
    fault({ match: '^\\.sub\\.csv\\.', kind: 'ENOSPC', after: 8192 });
    await expectBadInput(writeSubmission(target, IDS, unitVectors(IDS.length)), target, /^cannot write: no space left on device$/);
    expect(listDir(dir)).toEqual([]);
  });

  it('an earlier file at the target is left as it was', async () => {
    const dir = folder();
    const target = path.join(dir, 'sub.csv');
    fs.writeFileSync(target, 'the previous submission\n');
    fault({ match: '^\\.sub\\.csv\\.', kind: 'ENOSPC', after: 100 });
    await expectBadInput(writeSubmission(target, IDS, unitVectors(IDS.length)), target, /no space left on device/);
    expect(listDir(dir)).toEqual(['sub.csv']);
    expect(fs.readFileSync(target, 'utf8')).toBe('the previous submission\n');
  });

  it('predict\'s validated submission blames the disk, not the data', async () => {
    const dir = folder();
    const target = path.join(dir, 'sub.csv');
    fault({ match: '^\\.sub\\.csv\\.', kind: 'ENOSPC', after: 20_000 });
    const err = await expectBadInput(writeValidatedSubmission(target, IDS, unitVectors(IDS.length)), target, /^cannot write: no space left on device$/);
    expect(err.message).not.toMatch(/invalid submission/);
    expect(listDir(dir)).toEqual([]);
  });

  it('the other writers: prompts CSV, JSON and text files, .npy (whole and row by row)', async () => {
    const dir = folder();
    const prompts = path.join(dir, 'prompts.csv');
    const json = path.join(dir, 'weights.json');
    const npy = path.join(dir, 'embeds.npy');
    const rows = path.join(dir, 'rows.npy');
    fault({ match: '', kind: 'ENOSPC', after: 64 });
    await expectBadInput(writePromptsCsv(prompts, IDS.map((imgId) => ({ imgId, prompt: `a photo of ${imgId}, highly detailed, trending on artstation` }))), prompts, /^cannot write: no space left on device$/);
    await expectBadInput(writeFileAtomic(json, JSON.stringify({ weights: Array.from({ length: 50 }, (_, i) => i) })), json, /^cannot write: no space left on device$/);
    await expectBadInput(writeNpy(npy, new Float32Array(64), [8, 8]), npy, /^cannot write: no space left on device$/);
    restore!();
    // Row by row: the header and the first rows fit, the next rows do not.
    fault({ match: 'rows\\.npy', kind: 'ENOSPC', after: 200 });
    const writer = await NpyRowWriter.create(rows, 4, 8);
    await writer.append(new Float32Array(16));
    await expectBadInput(writer.append(new Float32Array(16)), rows, /^cannot write: no space left on device$/);
    await writer.abort();
    expect(listDir(dir)).toEqual([]);
  });

  it('a checkpoint append says which file and why; what was synced before stays readable', async () => {
    const dir = folder();
    const file = path.join(dir, 'sub.csv.ckpt');
    const run = { inputs: inputNamesSummary(['a', 'b', 'c']), options: {}, models: { clip: 'x' } };
    // The size of the header and one record, from a twin written without faults.
    const twin = path.join(folder(), 'twin.ckpt');
    const measured = await PredictCheckpoint.open(twin, run, { resume: false, dim: 4, chunkSize: 1 });
    await measured.add({ id: 'a', members: { knn: new Float32Array([1, 0, 0, 0]) } });
    await measured.close();
    fault({ match: '^sub\\.csv\\.ckpt$', kind: 'ENOSPC', after: fs.statSync(twin).size + 10 });
    const cp = await PredictCheckpoint.open(file, run, { resume: false, dim: 4, chunkSize: 1 });
    await cp.add({ id: 'a', members: { knn: new Float32Array([1, 0, 0, 0]) } });
    await expect(cp.add({ id: 'b', members: { knn: new Float32Array([0, 1, 0, 0]) } })).rejects.toThrow(`${file}: cannot append to checkpoint: no space left on device`);
    await cp.close().catch(() => undefined);
    restore!();
    restore = undefined;
    const back = await PredictCheckpoint.open(file, run, { resume: true, dim: 4 });
    expect([back.size, back.has('a'), back.has('b')]).toEqual([1, true, false]);
    await back.close();
  });
});

describe('other device faults', () => {
  it('EIO at write: the OS reason, nothing published', async () => {
    const dir = folder();
    const target = path.join(dir, 'sub.csv');
    fault({ match: '^\\.sub\\.csv\\.', kind: 'EIO', after: 0 });
    await expectBadInput(writeSubmission(target, IDS, unitVectors(IDS.length)), target, /^cannot write: i\/o error$/);
    expect(listDir(dir)).toEqual([]);
  });

  it('EIO only at fsync (a write-back error): nothing published', async () => {
    const dir = folder();
    const target = path.join(dir, 'sub.csv');
    fault({ match: '^\\.sub\\.csv\\.', kind: 'EIO-at-sync' });
    await expectBadInput(writeSubmission(target, IDS, unitVectors(IDS.length)), target, /^cannot write: i\/o error$/);
    expect(listDir(dir)).toEqual([]);
  });

  it('a device that keeps fewer bytes than it reports written is caught by the size check', async () => {
    const dir = folder();
    const target = path.join(dir, 'sub.csv');
    fault({ match: '^\\.sub\\.csv\\.', kind: 'lying-write', after: 5000 });
    await expectBadInput(writeSubmission(target, IDS, unitVectors(IDS.length)), target, /^cannot write: the file holds 5000 bytes after \d+ were written$/);
    expect(listDir(dir)).toEqual([]);
  });

  it('/dev/full through the seam: the kernel\'s own ENOSPC', async (ctx) => {
    if (!fs.existsSync('/dev/full')) ctx.skip();
    const dir = folder();
    const target = path.join(dir, 'sub.csv');
    restore = writeToDevFull();
    await expectBadInput(writeSubmission(target, IDS, unitVectors(IDS.length)), target, /^cannot write: no space left on device$/);
    expect(listDir(dir)).toEqual([]);
  });

  it('writes the kernel cuts short are continued: the whole file, byte for byte', async () => {
    const dir = folder();
    const target = path.join(dir, 'sub.csv');
    const ref = path.join(dir, 'ref.csv');
    await writeSubmission(ref, IDS, unitVectors(IDS.length));
    fault({ match: '^\\.sub\\.csv\\.', kind: 'short-writes' });
    await writeSubmission(target, IDS, unitVectors(IDS.length));
    expect(fs.readFileSync(target).equals(fs.readFileSync(ref))).toBe(true);
    expect((await readSubmission(target)).ids).toEqual(IDS);
    const npy = path.join(dir, 'sub.csv.npy');
    await writeNpy(npy, new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
    expect(Array.from((await readNpy(npy)).data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(listDir(dir)).toEqual(['ref.csv', 'sub.csv', 'sub.csv.npy']);
  });
});

describe('temps of killed writers', () => {
  it('a temp left by a SIGKILLed process is removed by the next write of the same target; a live writer\'s temp is kept', async () => {
    const dir = folder();
    const target = path.join(dir, 'out.json');
    // A real writer, killed while its temp is open.
    const script = `
      import { AtomicFile } from './src/util/atomic-write.ts';
      const out = await AtomicFile.create(${JSON.stringify(target)});
      await out.write('half of a file');
      process.stdout.write('ready\\n');
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    const live = listDir(dir);
    expect(live).toHaveLength(1);
    expect(live[0]).toMatch(new RegExp(`^\\.out\\.json\\.${child.pid}\\.[0-9a-f]{8}\\.tmp$`));
    // While its writer lives, the temp is in use.
    expect(await removeStaleTemps(target)).toEqual([]);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(listDir(dir)).toEqual(live);

    await writeFileAtomic(target, '{}\n');
    expect(listDir(dir)).toEqual(['out.json']);
  });

  it('abort removes the temp and leaves the target alone; a committed file cannot be written again', async () => {
    const dir = folder();
    const target = path.join(dir, 'x.txt');
    const out = await AtomicFile.create(target);
    await out.write('abc');
    await out.abort();
    expect(listDir(dir)).toEqual([]);
    const again = await AtomicFile.create(target);
    await again.write('abc');
    await again.commit();
    await expect(again.write('more')).rejects.toBeInstanceOf(Img2PromptError);
    expect(fs.readFileSync(target, 'utf8')).toBe('abc');
  });
});
