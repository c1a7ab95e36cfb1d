import { createHash } from 'node:crypto';

/**
 * JSON records that carry the sha256 of their own content (a map's λ and hashes, a run's modality-gap
 * vector), so a byte changed after writing is noticed on reading instead of silently used. The hash
 * covers the compact JSON text of every other field in order, which parsing and re-serialising
 * reproduce exactly, so indentation does not matter.
 */

export const SEAL_FIELD = 'sha256';

function digest(body: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('hex');
}

/** `body` plus its seal (`sha256`), which must be its last field. */
export function sealJson<T extends Record<string, unknown>>(body: T): T & { sha256: string } {
  const { [SEAL_FIELD]: _old, ...rest } = body;
  return { ...(rest as T), [SEAL_FIELD]: digest(rest) };
}

/** Why a parsed record's seal does not hold (undefined when it does). */
export function sealProblem(parsed: unknown): string | undefined {
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'not a JSON object';
  const { [SEAL_FIELD]: seal, ...rest } = parsed as Record<string, unknown>;
  if (typeof seal !== 'string') return `no ${SEAL_FIELD} of its content`;
  const now = digest(rest);
  return now === seal ? undefined : `its content hashes to ${now}, not the ${seal} recorded when it was written (changed or damaged since)`;
}
