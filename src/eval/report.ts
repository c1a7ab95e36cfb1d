/**
 * Writes an eval report folder:
 *
 *   index.html              the page (report-page.ts): open it from disk, no server needed
 *   report.json             every number on the page
 *   images.csv              the per-image table: id, file, fold, each member's cosine, the ensemble's, prompts
 *   charts/*.svg, *.png     the two charts, the PNGs rendered from the same SVG text by sharp
 *   images/<worst images>   copies of the worst images, so the folder stands on its own
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { writeFileAtomic } from '../util/atomic-write.js';
import { distributionSvg, perImageSvg } from './charts.js';
import { ENSEMBLE, type Evaluation } from './evaluate.js';
import { reportPage } from './report-page.js';

export interface ReportImage {
  id: string;
  /** Where the image was read from (copied into the report when it is among the worst). */
  file: string;
  truth: string;
  /** The prompt predict gave the image (interrogator, caption or nearest bank prompt). */
  prompt: string | null;
}

export interface ReportInput {
  evaluation: Evaluation;
  /** In the evaluation's row order. */
  images: readonly ReportImage[];
  model: { clip: string; minilm: string; random: boolean };
  /** Worst images shown; default 6. */
  worst?: number;
  /** Most images in the per-image chart (the lowest scored); default 120. */
  maxBars?: number;
  title?: string;
}

/** The files written, relative to the report folder. */
export const REPORT_FILES = ['index.html', 'report.json', 'images.csv', 'charts/distribution.svg', 'charts/distribution.png', 'charts/per-image.svg', 'charts/per-image.png'] as const;

const csvField = (v: string): string => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);

/** The per-image table as CSV. */
export function imagesCsv(evaluation: Evaluation, images: readonly ReportImage[]): string {
  const names = evaluation.scores.map((s) => s.name);
  const lines = [['imgId', 'file', 'fold', ...names, 'truth', 'prompt'].map(csvField).join(',')];
  images.forEach((img, i) => {
    lines.push([img.id, img.file, String(evaluation.fold[i]! + 1), ...evaluation.scores.map((s) => String(s.perImage[i])), img.truth, img.prompt ?? ''].map(csvField).join(','));
  });
  return lines.join('\n') + '\n';
}

/** The SVG rendered to PNG (sharp rasterises SVG with librsvg). */
async function renderPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/** Writes the report into `dir` (created); returns the files written, relative to it. */
export async function writeEvalReport(dir: string, input: ReportInput): Promise<string[]> {
  const e = input.evaluation;
  const ensemble = e.scores.find((s) => s.name === ENSEMBLE)!;
  const byScore = input.images.map((_, i) => i).sort((a, b) => ensemble.perImage[a]! - ensemble.perImage[b]! || a - b);
  const worst = byScore.slice(0, Math.min(input.worst ?? 6, byScore.length));
  const maxBars = input.maxBars ?? 120;
  const shown = byScore.slice(0, maxBars);
  const title = input.title ?? 'img2prompt eval';
  const randomNote = input.model.random ? ' (RANDOM CLIP: meaningless)' : '';
  const distribution = distributionSvg(e.scores, `Score distribution per member${randomNote}`);
  const perImage = perImageSvg(input.images.map((x) => x.id), e.scores, shown, `Cosine per image, worst ensemble first${randomNote}`);

  await fs.mkdir(path.join(dir, 'charts'), { recursive: true });
  await fs.mkdir(path.join(dir, 'images'), { recursive: true });
  const copied = new Map<number, string>();
  for (const i of worst) {
    const img = input.images[i]!;
    const rel = `images/${img.id}${path.extname(img.file).toLowerCase()}`;
    await fs.copyFile(img.file, path.join(dir, rel));
    copied.set(i, rel);
  }
  const written: string[] = [...copied.values()];
  const write = async (rel: string, data: string | Uint8Array) => {
    await writeFileAtomic(path.join(dir, rel), data);
    written.push(rel);
  };
  await write('charts/distribution.svg', distribution);
  await write('charts/distribution.png', await renderPng(distribution));
  await write('charts/per-image.svg', perImage);
  await write('charts/per-image.png', await renderPng(perImage));
  await write('images.csv', imagesCsv(e, input.images));
  await write('report.json', `${JSON.stringify({
    title,
    model: input.model,
    images: e.images,
    folds: e.folds,
    seed: e.seed,
    resamples: e.resamples,
    weights: e.weights,
    scores: e.scores.map(({ perImage: _, ...s }) => s),
    perImage: input.images.map((img, i) => ({
      id: img.id, file: img.file, fold: e.fold[i]! + 1, truth: img.truth, prompt: img.prompt,
      scores: Object.fromEntries(e.scores.map((s) => [s.name, s.perImage[i]])),
    })),
  }, null, 2)}\n`);
  await write('index.html', reportPage({
    title,
    evaluation: e,
    images: input.images.map((img, i) => ({ id: img.id, truth: img.truth, prompt: img.prompt, ...(copied.has(i) ? { src: copied.get(i)! } : {}) })),
    worst,
    distributionSvg: distribution,
    perImageSvg: perImage,
    ...(shown.length < byScore.length ? { perImageNote: `The ${shown.length} lowest-scored of ${byScore.length} images.` } : {}),
    model: input.model,
    generated: new Date().toISOString(),
  }));
  return written;
}
