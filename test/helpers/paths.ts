import path from 'node:path';
import os from 'node:os';
import fs from 'node:fs';

/** ../shared/assets beside the repository (tests run from the repo root). */
export const ASSETS = path.resolve(process.cwd(), '..', 'shared', 'assets');
export const asset = (...parts: string[]): string => path.join(ASSETS, ...parts);
export const TINY_MODELS = asset('models-tiny');
export const KAGGLE_SAMPLE = asset('eval', 'kaggle-sample');

/** A fresh temp directory, removed by the caller (or left in /tmp for the OS). */
export function tempDir(prefix = 'img2prompt-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
