import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { tempDir } from './helpers/paths.js';

/** A test run leaves nothing in the temp folder: `npm test` once used to leave ~29 folders in /tmp. */

describe('a test run', () => {
  it('leaves its temp folder as it found it, even after tests that do not remove their own temp folders', () => {
    const tmp = tempDir('img2prompt-cleanup-');
    // This file's tests make six temp folders and remove none of them.
    const r = spawnSync(process.execPath, [path.join('node_modules', 'vitest', 'vitest.mjs'), 'run', 'test/interrogate-label-banks.test.ts'], {
      env: { ...process.env, TMPDIR: tmp },
      encoding: 'utf8',
    });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(fs.readdirSync(tmp)).toEqual([]);
    fs.rmSync(tmp, { recursive: true, force: true });
  });
});
