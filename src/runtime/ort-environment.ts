import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { native } from '../native/addon.js';
import { modelHome } from '../models/cache.js';
import { processAlive } from '../util/process-liveness.js';

/**
 * ONNX Runtime's process-wide environment, and where ORT's own files go: into $IMG2PROMPT_HOME, like
 * everything else img2prompt keeps, instead of ~/.cache/Microsoft and /tmp.
 */

/** Where ORT keeps its own files: `<home>/onnxruntime/Microsoft/DeveloperTools/.onnxruntime/`. */
export function ortFilesDir(): string {
  return path.join(modelHome(), 'onnxruntime');
}

let environmentReady = false;

/**
 * ortFilesDir(), created; when it cannot be (a read-only home), a folder of this user's in the temp
 * folder instead: ORT falls back to writing `:memory:.ses` into the current directory when its own
 * folder cannot be made.
 */
function writableOrtFilesDir(): string {
  for (const dir of [ortFilesDir(), path.join(os.tmpdir(), `img2prompt-onnxruntime-${os.userInfo().uid}`)]) {
    try {
      fs.mkdirSync(dir, { recursive: true });
      fs.accessSync(dir, fs.constants.W_OK);
      return dir;
    } catch {
      // try the next
    }
  }
  return ortFilesDir();
}

/**
 * Creates ORT's process-wide environment once, with XDG_CACHE_HOME and TMPDIR pointed into
 * $IMG2PROMPT_HOME for the duration of that call. Creating it is when ORT's telemetry (1DS) settles
 * where its files go: the device id and offline store (`$XDG_CACHE_HOME/Microsoft/DeveloperTools/
 * .onnxruntime/`, else under ~/.cache), a `.ses` session file and a `mat-debug-<pid>.log` per process
 * (in $TMPDIR, else /tmp). The variables are put back at once, so child processes (pip for model
 * pulls) and other libraries see the user's own values. ORT's own ORT_DISABLE_TELEMETRY=1 stops all of it.
 */
export function prepareOrtEnvironment(): void {
  if (environmentReady) return;
  const dir = writableOrtFilesDir();
  const saved = { XDG_CACHE_HOME: process.env.XDG_CACHE_HOME, TMPDIR: process.env.TMPDIR };
  process.env.XDG_CACHE_HOME = dir;
  process.env.TMPDIR = dir;
  try {
    native().initEnvironment();
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
  environmentReady = true;
  removeDeadProcessLogs(dir);
}

/** ORT's telemetry leaves one `mat-debug-<pid>.log` per process; those of processes that have ended go. */
function removeDeadProcessLogs(dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(/^mat-debug-(\d+)\.log$/.exec(name)?.[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || processAlive(pid)) continue;
    fs.rmSync(path.join(dir, name), { force: true });
  }
}
