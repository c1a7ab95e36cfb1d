/** Print at most `limit` lines of `items` with an "... and N more" tail. */
export function listLimited(items: readonly string[], total: number, limit: number, indent = '  '): string[] {
  const shown = items.slice(0, limit).map((s) => `${indent}${s}`);
  if (total > shown.length) shown.push(`${indent}... and ${total - shown.length} more`);
  return shown;
}
