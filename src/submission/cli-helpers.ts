import { Img2PromptError } from '../util/errors.js';

/** `--name` value as a positive integer, or a one-line error naming the option. */
export function parsePositiveInt(option: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[0-9]+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new Img2PromptError(undefined, `${option} must be a positive integer, got "${text}"`);
  }
  return Number(text);
}

/** Print at most `limit` lines of `items` with an "... and N more" tail. */
export function listLimited(items: readonly string[], total: number, limit: number, indent = '  '): string[] {
  const shown = items.slice(0, limit).map((s) => `${indent}${s}`);
  if (total > shown.length) shown.push(`${indent}... and ${total - shown.length} more`);
  return shown;
}

/** Commander collector for an option given once per value (`--x a --x b`): unlike `<v...>` it cannot swallow the positional arguments after it. */
export function collectRepeated(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
