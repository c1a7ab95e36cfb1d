import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { TINY_MODELS, tempDir } from './helpers/paths.js';

/** ONNX Runtime's own files (its telemetry device id and offline store) live in $IMG2PROMPT_HOME, not in ~/.cache. */

const work = tempDir();
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** Every file under `dir`, relative to it, sorted. */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(dir, f)).isFile()).sort();
}

describe('ONNX Runtime files', () => {
  it('are written under $IMG2PROMPT_HOME/onnxruntime, nothing under the user\'s home or temp folder, and XDG_CACHE_HOME and TMPDIR are left as they were', () => {
    const userHome = path.join(work, 'user');
    const userTmp = path.join(work, 'tmp');
    const home = path.join(work, 'img2prompt-home');
    fs.mkdirSync(userHome);
    fs.mkdirSync(userTmp);
    // The per-process log of a process that has ended: swept by the next one.
    const ended = spawnSync(process.execPath, ['-e', '']).pid!;
    fs.mkdirSync(path.join(home, 'onnxruntime'), { recursive: true });
    fs.writeFileSync(path.join(home, 'onnxruntime', `mat-debug-${ended}.log`), '');
    const script = `
      import { Session, tensor } from './src/runtime/session.ts';
      const s = await Session.open(${JSON.stringify(path.join(TINY_MODELS, 'optimum-tiny-distilbert-sst2', 'model.onnx'))}, { providers: ['cpu'] });
      const ids = new BigInt64Array([101n, 102n]);
      await s.run({ input_ids: tensor('int64', ids, [1, 2]), attention_mask: tensor('int64', new BigInt64Array([1n, 1n]), [1, 2]) });
      s.close();
      console.log(JSON.stringify([process.env.XDG_CACHE_HOME ?? null, process.env.TMPDIR]));
    `;
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: userHome, IMG2PROMPT_HOME: home, TMPDIR: userTmp, TSX_DISABLE_CACHE: '1' };
    delete env.XDG_CACHE_HOME;
    delete env.ORT_DISABLE_TELEMETRY;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([null, userTmp]);
    expect(filesUnder(userHome)).toEqual([]);
    expect(filesUnder(userTmp)).toEqual([]);
    const ort = filesUnder(path.join(home, 'onnxruntime'));
    // The log of the ended process is swept whether or not this ORT build writes telemetry files at all.
    expect(ort).not.toContain(`mat-debug-${ended}.log`);
    // Some machines' ORT writes no telemetry files (CI's did not); where it does, they are all here.
    if (ort.length > 0) {
      expect(ort).toContain(path.join('Microsoft', 'DeveloperTools', '.onnxruntime', 'deviceid'));
      expect(ort).toContain(`mat-debug-${r.pid}.log`);
    }
  });
});
