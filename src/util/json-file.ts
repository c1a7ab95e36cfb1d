import { promises as fs } from 'node:fs';
import { Img2PromptError, errorMessage } from './errors.js';

/** Reads a file that must hold one JSON object; errors name the file and say what is wrong. */
export async function readJsonObject(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf-8');
  } catch (err) {
    throw new Img2PromptError(file, `cannot read: ${errorMessage(err)}`, { code: 'FILE_UNREADABLE', cause: err });
  }
  return parseJsonObject(file, text);
}

/** Parses text that must be one JSON object; errors name `file`. */
export function parseJsonObject(file: string, text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new Img2PromptError(file, `corrupt JSON: ${errorMessage(err)}`, { code: 'FILE_INVALID', cause: err });
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Img2PromptError(file, 'corrupt JSON: not a JSON object', { code: 'FILE_INVALID' });
  return v as Record<string, unknown>;
}
