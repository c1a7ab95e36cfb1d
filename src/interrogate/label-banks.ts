import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { packageRoot } from '../util/package-root.js';
import { sha256Bytes } from '../models/sha256.js';
import type { BankRole, LabelBankDef } from './types.js';

/**
 * The CLIP Interrogator's label banks: the five lists it ships (artists, flavors, mediums, movements,
 * sites) expanded the way the original engine uses them, its negative list, and any user lists.
 */

/** The label lists that ship beside the repository (../shared/assets/labels). */
export function defaultLabelsDir(): string {
  return path.resolve(packageRoot(), '..', 'shared', 'assets', 'labels');
}

/** Names of the built-in banks, in the order the merged ranking concatenates them. */
export const STANDARD_BANKS = ['artists', 'flavors', 'mediums', 'movements', 'trendings', 'negative'] as const;
export type StandardBankName = (typeof STANDARD_BANKS)[number];

/**
 * One label per line: trimmed, empty lines skipped, duplicates dropped (first one kept), order kept.
 * A leading BOM and CRLF line ends are tolerated, since user lists come from any editor.
 */
export function parseLabelList(text: string): string[] {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  return dedupe(body.split(/\r?\n|\r/).map((line) => line.trim()));
}

/** Drops empty strings and repeats, keeping the first occurrence's position. */
export function dedupe(labels: Iterable<string>): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const label of labels) {
    if (label === '' || seen.has(label)) continue;
    seen.add(label);
    out.push(label);
  }
  return out;
}

/** A label file's labels; a missing, unreadable or empty file is an error naming it. */
export async function readLabelFile(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new Img2PromptError(file, `cannot read label file: ${errorMessage(err)}`, { code: 'FILE_UNREADABLE', cause: err });
  }
  const labels = parseLabelList(text);
  if (labels.length === 0) throw new Img2PromptError(file, 'label file has no labels (every line is empty)');
  return labels;
}

/** The engine's artist bank: every name as "by X", then every name as "inspired by X". */
export function artistLabels(names: readonly string[]): string[] {
  return dedupe([...names.map((n) => `by ${n}`), ...names.map((n) => `inspired by ${n}`)]);
}

/**
 * The engine's "trending" bank, built from bare site names: the site itself, then "trending on X",
 * "featured on X" and "X contest winner" for every site.
 */
export function trendingLabels(sites: readonly string[]): string[] {
  return dedupe([
    ...sites,
    ...sites.map((s) => `trending on ${s}`),
    ...sites.map((s) => `featured on ${s}`),
    ...sites.map((s) => `${s} contest winner`),
  ]);
}

/** The six built-in banks from `labelsDir` (artists.txt, flavors.txt, mediums.txt, movements.txt, sites.txt, negative.txt). */
export async function standardBanks(labelsDir: string): Promise<LabelBankDef[]> {
  const file = (name: string) => path.join(labelsDir, name);
  const bank = async (name: StandardBankName, role: BankRole, fileName: string, expand?: (l: string[]) => string[]) => {
    const raw = await readLabelFile(file(fileName));
    return { name, role, labels: expand ? expand(raw) : raw, source: file(fileName) } satisfies LabelBankDef;
  };
  const settled = await Promise.allSettled([
    bank('artists', 'artist', 'artists.txt', artistLabels),
    bank('flavors', 'flavor', 'flavors.txt'),
    bank('mediums', 'medium', 'mediums.txt'),
    bank('movements', 'movement', 'movements.txt'),
    bank('trendings', 'trending', 'sites.txt', trendingLabels),
    bank('negative', 'negative', 'negative.txt'),
  ]);
  // Read together, reported in list order: the error names the first unreadable list, whichever read failed first.
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<LabelBankDef>).value);
}

/** Bank name for a user list: `extra-` + the file's base name, reduced to the cache's safe alphabet. */
export function extraBankName(file: string): string {
  const base = path.basename(file).replace(/\.txt$/i, '');
  const safe = base.toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[-.]+|-+$/g, '');
  return `extra-${safe || 'labels'}`;
}

/**
 * User label banks: each path is a file (one bank) or a folder, whose `.txt` files each become a bank
 * (sorted by name; other files are ignored, so a folder can hold a README).
 */
export async function extraBanks(paths: readonly string[]): Promise<LabelBankDef[]> {
  const files: string[] = [];
  for (const p of paths) {
    let stat;
    try {
      stat = await fs.stat(p);
    } catch (err) {
      throw new Img2PromptError(p, `cannot read labels: ${errorMessage(err)}`, { code: 'FILE_UNREADABLE', cause: err });
    }
    if (stat.isDirectory()) {
      const names = (await fs.readdir(p)).filter((n) => n.toLowerCase().endsWith('.txt')).sort();
      if (names.length === 0) throw new Img2PromptError(p, 'labels folder has no .txt files');
      files.push(...names.map((n) => path.join(p, n)));
    } else {
      files.push(p);
    }
  }
  const banks: LabelBankDef[] = [];
  const byName = new Map<string, string>();
  for (const file of files) {
    const name = extraBankName(file);
    const clash = byName.get(name);
    if (clash !== undefined) throw new Img2PromptError(file, `label bank name "${name}" is already taken by ${clash}; rename one file`);
    byName.set(name, file);
    banks.push({ name, role: 'extra', labels: await readLabelFile(file), source: file });
  }
  return banks;
}

export interface LabelBankOptions {
  /** Folder with the built-in lists; default defaultLabelsDir(). */
  labelsDir?: string;
  /** User lists: files (one label per line) or folders of .txt files. */
  extraLabels?: readonly string[];
}

/** Built-in banks followed by user banks. */
export async function loadLabelBanks(options: LabelBankOptions = {}): Promise<LabelBankDef[]> {
  const standard = await standardBanks(options.labelsDir ?? defaultLabelsDir());
  const extra = await extraBanks(options.extraLabels ?? []);
  return [...standard, ...extra];
}

/** Identifies a label list exactly as it is embedded (order included); stored in the bank cache header. */
export function labelsHash(labels: readonly string[]): string {
  // JSON keeps the list unambiguous even for labels handed in through the API with odd characters.
  return sha256Bytes(JSON.stringify(labels));
}
