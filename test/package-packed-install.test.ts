import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers/paths.js';

// The check packs this checkout with npm; where npm cannot run there is nothing to test.
const npm = spawnSync('npm', ['--version'], { encoding: 'utf8' });
const npmMissing = npm.status === 0 ? undefined : `npm pack cannot run here (npm --version: ${npm.error?.message ?? npm.stderr.trim()})`;

interface Report {
  steps: Record<string, { bytes?: number; prebuiltBytes?: number | null; lines?: string[] }>;
  installed: { submission: string; prompts: string; rows: number };
  checkout: { submission: string; prompts: string; rows: number };
  exports: { missing: string[]; sessionInFront: boolean; deep: string; ort: string };
  types: { examples: string[]; code: number };
}

describe('the packed package (scripts/check-packed-install.mjs)', () => {
  it(
    'installs from its tarball with no g++, cmake, make, apt-get or dpkg on PATH and predicts the same bytes as the checkout',
    (ctx) => {
      ctx.skip(npmMissing !== undefined, npmMissing);
      const work = tempDir('img2prompt-packed-');
      try {
        const r = spawnSync(process.execPath, ['scripts/check-packed-install.mjs', '--work', work], { encoding: 'utf8' });
        const transcript = `${r.stdout}${r.stderr}`;
        expect(r.status, transcript).toBe(0);
        const report = JSON.parse(fs.readFileSync(path.join(work, 'report.json'), 'utf8')) as Report;

        expect(report.steps.pack!.prebuiltBytes).toBeGreaterThan(100_000);
        expect(report.steps['install the tarball into an empty project']!.lines!.join('\n')).toMatch(
          /img2prompt: using the prebuilt addon prebuilds\/linux-x64\/img2prompt_native\.node \(N-API 8, ONNX Runtime 1\.30\.0\); nothing to build/,
        );
        expect(fs.existsSync(path.join(work, 'app', 'node_modules', 'img2prompt', 'build'))).toBe(false);
        expect(fs.existsSync(path.join(work, 'app', 'node_modules', 'img2prompt', 'prebuilds', 'linux-x64', 'img2prompt_native.node'))).toBe(true);
        // The web page of `img2prompt serve` is read from the package at run time (tsc does not copy it into dist/).
        for (const f of ['index.html', 'app.js', 'app.css']) expect(fs.existsSync(path.join(work, 'app', 'node_modules', 'img2prompt', 'src', 'server', 'web', f)), f).toBe(true);

        // 7 Kaggle images x 384 rows, byte for byte what the checkout writes for the same models and bank.
        expect(report.installed.rows).toBe(7 * 384);
        expect(report.installed.submission).toBe(report.checkout.submission);
        expect(report.installed.prompts).toBe(report.checkout.prompts);

        expect(report.exports).toEqual({ missing: [], sessionInFront: false, deep: 'ERR_PACKAGE_PATH_NOT_EXPORTED', ort: '1.30.0' });
        expect(report.types).toEqual({ examples: ['types/example-1.ts', 'types/example-2.ts', 'types/example-3.ts', 'types/example-4.ts', 'types/example-5.ts'], code: 0 });
        // postpack leaves no prebuilt behind in the checkout.
        expect(fs.existsSync('prebuilds')).toBe(false);
      } finally {
        fs.rmSync(work, { recursive: true, force: true });
      }
    },
    600_000,
  );
});
