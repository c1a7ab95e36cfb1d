/**
 * Every IMG2PROMPT_* environment variable the engine and the CLI read, in one place, so the list of
 * knobs a user can turn is this file. Each is a function read at call time, not a constant captured at
 * import: tests (and the CLI's --precision) set a variable after the modules are loaded, and a long-lived
 * process sees a change made before its next call.
 *
 * A variable set to an empty or all-blank string counts as unset.
 */

/** The trimmed value of `name`, or undefined when it is unset or blank. */
function variable(name: string): string | undefined {
  const value = process.env[name]?.trim();
  return value ? value : undefined;
}

/** Cache root for models, banks, maps and downloads (IMG2PROMPT_HOME); the caller applies the default. */
export function homeVariable(): string | undefined {
  return variable('IMG2PROMPT_HOME');
}

/** Name of the providers variable, for messages that tell the user what to set. */
export const PROVIDERS_VARIABLE = 'IMG2PROMPT_PROVIDERS';

/** The execution providers asked for, as written (e.g. "cuda,cpu"); checked by the session opener. */
export function providersVariable(): string | undefined {
  return variable(PROVIDERS_VARIABLE);
}

/** Name of the precision variable, for messages. */
export const PRECISION_VARIABLE = 'IMG2PROMPT_PRECISION';

/** The tower precision asked for (fp32 or fp16), as written; checked by the model openers. */
export function precisionVariable(): string | undefined {
  return variable(PRECISION_VARIABLE);
}

/**
 * Sets (or, given undefined, clears) IMG2PROMPT_PRECISION: the CLI's --precision hands its choice to
 * the model openers, and to the child processes a command starts, this way.
 */
export function setPrecisionVariable(value: string | undefined): void {
  if (value === undefined) delete process.env[PRECISION_VARIABLE];
  else process.env[PRECISION_VARIABLE] = value;
}

/** '0' turns progress display off, '1' forces the bar even off a terminal (IMG2PROMPT_PROGRESS). */
export function progressVariable(): string | undefined {
  return variable('IMG2PROMPT_PROGRESS');
}

/** Hub base URL for Hugging Face pulls: IMG2PROMPT_HF_ENDPOINT, then the standard HF_ENDPOINT (mirrors). */
export function hfEndpointVariable(): string | undefined {
  return variable('IMG2PROMPT_HF_ENDPOINT') ?? variable('HF_ENDPOINT');
}

/** The Python that runs pip and unpacks wheels (IMG2PROMPT_PYTHON). */
export function pythonVariable(): string | undefined {
  return variable('IMG2PROMPT_PYTHON');
}

/** PyPI's JSON API base (IMG2PROMPT_PYPI_URL): a mirror, or a test server. */
export function pypiUrlVariable(): string | undefined {
  return variable('IMG2PROMPT_PYPI_URL');
}

/** Path of the native addon to load instead of the built or prebuilt one, e.g. an ASan build (IMG2PROMPT_NATIVE). */
export function nativeAddonVariable(): string | undefined {
  return variable('IMG2PROMPT_NATIVE');
}

/** True when the CLI should print the stack of an error after its message (IMG2PROMPT_DEBUG set to anything but blank). */
export function debugVariable(): boolean {
  return variable('IMG2PROMPT_DEBUG') !== undefined;
}

/**
 * libuv's thread-pool size as libuv reads it (UV_THREADPOOL_SIZE, default 4): the decodes in flight are
 * bounded by it, since each holds a pool thread. The CLI sets it from the core count (cli/threadpool.cts).
 */
export function threadpoolSizeVariable(): number {
  const size = Number(variable('UV_THREADPOOL_SIZE'));
  return Number.isInteger(size) && size >= 1 ? Math.min(size, 1024) : 4;
}
