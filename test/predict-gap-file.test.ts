import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { gapFileFor, readGapFile, writeGapFile } from '../src/predict/gap-file.js';
import { tempDir } from './helpers/paths.js';

let dir: string;
beforeEach(() => {
  dir = tempDir('img2prompt-gap-file-');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('the modality-gap file of a checkpointed run', () => {
  it('reads back bit-exact, and refuses a gap whose bytes changed after it was written instead of using it', async () => {
    const file = gapFileFor(path.join(dir, 'out.csv.ckpt'));
    const vector = Float32Array.from({ length: 8 }, (_, i) => Math.sin(i + 1));
    await writeGapFile(file, 'run-1', { vector, images: 5, texts: 40 });
    const back = await readGapFile(file, 'run-1', 8);
    expect(Buffer.from(back!.vector!.buffer).equals(Buffer.from(vector.buffer))).toBe(true);
    expect(back).toMatchObject({ images: 5, texts: 40 });
    expect(await readGapFile(file, 'another run', 8)).toBeUndefined();

    // One base64 digit changed: still a valid vector of the right length, so only the file's own hash tells.
    const text = fs.readFileSync(file, 'utf8');
    const at = text.indexOf('"vector":"') + 12;
    fs.writeFileSync(file, text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1));
    await expect(readGapFile(file, 'run-1', 8)).rejects.toThrow(
      new RegExp(`^${file}: the modality gap of this run: its content hashes to [0-9a-f]{64}, not the [0-9a-f]{64} recorded when it was written \\(changed or damaged since\\); rerun without --resume$`),
    );
  });
});
