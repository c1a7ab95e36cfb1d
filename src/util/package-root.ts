import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** Root of the img2prompt package, found from this file whether it runs from src/ (tests) or dist/src/. */
export function packageRoot(): string {
  if (root) return root;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest) && JSON.parse(fs.readFileSync(manifest, 'utf8')).name === 'img2prompt') return (root = dir);
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('img2prompt: cannot find the package root above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

/** Version from package.json. */
export function packageVersion(): string {
  return JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')).version;
}
