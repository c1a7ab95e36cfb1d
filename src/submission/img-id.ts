/**
 * Image ids travel through CSV files unquoted (`<imgId>_<eId>` in submissions) and come from file names,
 * so they may not contain whitespace, commas, quotes or control characters. Underscores are fine: a
 * submission key is split at its last underscore.
 */
const FORBIDDEN = /[\s,"'\u0000-\u001f\u007f]/u;

/** Why `id` is not a usable image id, or undefined when it is. */
export function imgIdProblem(id: string): string | undefined {
  if (id === '') return 'empty imgId';
  const bad = FORBIDDEN.exec(id);
  if (bad) return `invalid imgId ${JSON.stringify(id)}: contains ${describeChar(bad[0])} (no whitespace, commas or quotes allowed)`;
  return undefined;
}

function describeChar(ch: string): string {
  if (ch === ',') return 'a comma';
  if (ch === '"' || ch === "'") return 'a quote';
  if (/\s/u.test(ch)) return 'whitespace';
  return `control character U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}
