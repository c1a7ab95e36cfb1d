import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ortLibraryDir } from '../src/native/addon.js';

/**
 * `npm ci` never downloads onnxruntime-node's CUDA files, through settings npm documents and keeps
 * honouring: `allowScripts` in package.json denies that package's install script (npm's install-script
 * policy), and for an npm that predates the policy, `node-options` in .npmrc makes the script skip.
 */

/** npm as a user would start it here: nothing inherited from the `npm test` this suite may run under, and no way out to the network. */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_/i.test(k) && !['NODE_OPTIONS', 'ONNXRUNTIME_NODE_INSTALL', 'INIT_CWD'].includes(k)) env[k] = v;
  }
  const nowhere = 'http://127.0.0.1:9';
  return { ...env, GLOBAL_AGENT_HTTPS_PROXY: nowhere, GLOBAL_AGENT_HTTP_PROXY: nowhere, HTTPS_PROXY: nowhere, https_proxy: nowhere };
}

const npm = (...args: string[]) => spawnSync('npm', args, { env: npmEnv(), encoding: 'utf8', timeout: 120_000 });
const ortFiles = () => fs.readdirSync(ortLibraryDir()).sort();

describe('the CUDA download switch', () => {
  it('is set with settings npm knows: no "Unknown project config" warning', () => {
    const r = npm('config', 'list');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/Unknown project config/);
    expect(r.stderr).not.toMatch(/will stop working/);
  });

  it('npm does not run onnxruntime-node\'s install script at all (denied in allowScripts), and every other install script is reviewed', () => {
    const before = ortFiles();
    const r = npm('rebuild', 'onnxruntime-node', '--foreground-scripts');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toContain('script/install');
    expect(ortFiles()).toEqual(before);
    expect(npm('install-scripts', 'ls').stdout).toContain('No packages with unreviewed install scripts.');
  });

  it('where an npm without that policy runs the script, the NODE_OPTIONS npm hands it make it skip the download', () => {
    const nodeOptions = npm('config', 'get', 'node-options').stdout.trim();
    expect(nodeOptions).toContain('ONNXRUNTIME_NODE_INSTALL');
    const before = ortFiles();
    const script = path.resolve(ortLibraryDir(), '..', '..', '..', '..', 'script', 'install.js');
    const r = spawnSync(process.execPath, [script], { env: { ...npmEnv(), NODE_OPTIONS: nodeOptions }, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(ortFiles()).toEqual(before);
  });
});
