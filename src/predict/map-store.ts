import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { modelHome } from '../models/cache.js';
import { sanitiseModelId } from '../interrogate/bank-cache.js';
import { Img2PromptError } from '../util/errors.js';
import { bankDataHash, LinearMap, type FittedFor, type LinearMapFitOptions } from './linear-map.js';
import type { PromptBank } from './prompt-bank.js';

/**
 * Where linear maps live and how predict gets one: a map file belongs to one CLIP model, one MiniLM
 * model and one prompt bank, so the default path names the CLIP model (with its weight hash) and the
 * bank (with its content hash): `<home>/maps/<clip model id>/<bank name>.json`.
 */

export function defaultMapPath(clipModelId: string, bankName: string, home: string = modelHome()): string {
  return path.join(home, 'maps', sanitiseModelId(clipModelId), `${bankName}.json`);
}

export interface FitMapOptions {
  /** Fixed relative ridge strength; absent: chosen by held-out cosine among the default candidates. */
  lambda?: number;
  onProgress?: LinearMapFitOptions['onProgress'];
}

/** Fits the CLIP→MiniLM map on the bank's text pairs. */
export function fitMapOnBank(bank: PromptBank, options: FitMapOptions = {}): LinearMap {
  return LinearMap.fitOnBank(bank, {
    ...(options.lambda === undefined ? { select: true } : { lambda: options.lambda }),
    onProgress: options.onProgress,
  });
}

/** Fits and saves (creating the folder). */
export async function fitAndSaveMap(bank: PromptBank, file: string, fittedFor: FittedFor, options: FitMapOptions = {}): Promise<LinearMap> {
  const map = fitMapOnBank(bank, options);
  await fs.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  await map.save(file, fittedFor);
  return map;
}

export interface ObtainMapOptions extends FitMapOptions {
  /** A map file the user named: it must exist and match (no silent refit of someone's file). */
  file?: string;
  /** Default location when `file` is absent (see defaultMapPath). */
  defaultFile: string;
  /** Told when the map is fitted and why. */
  onNotice?(message: string): void;
}

/**
 * The map for this bank and these models: the named file (checked), else the default file when it
 * exists and matches, else fitted now and saved to the default file for the next run.
 */
export async function obtainMap(bank: PromptBank, fittedFor: FittedFor, options: ObtainMapOptions): Promise<{ map: LinearMap; file: string; fitted: boolean }> {
  const expect = { ...fittedFor, dataHash: bankDataHash(bank) };
  if (options.file !== undefined) {
    return { map: await LinearMap.load(options.file, expect), file: options.file, fitted: false };
  }
  const file = options.defaultFile;
  let why = 'none saved yet';
  if (existsSync(file)) {
    try {
      const saved = await LinearMap.load(file, expect);
      if (options.lambda === undefined || saved.info.lambda === options.lambda) return { map: saved, file, fitted: false };
      why = `the saved one has lambda ${saved.info.lambda}, ${options.lambda} asked for`;
    } catch (err) {
      if (!(err instanceof Img2PromptError)) throw err;
      why = err.reason;
    }
  }
  options.onNotice?.(`fitting the linear map on ${bank.size} prompts (${why}) → ${file}`);
  return { map: await fitAndSaveMap(bank, file, fittedFor, options), file, fitted: true };
}
