/**
 * report/index.html: one static page (inline CSS and SVG, no script, nothing fetched) showing the
 * scores table, the two charts, the worst images beside their true and predicted prompts, and the
 * per-image table. With a random CLIP the page says, at the top and in red, that the numbers mean nothing.
 */
import { ENSEMBLE, type Evaluation } from './evaluate.js';
import { escapeXml } from './charts.js';

export interface PageImage {
  id: string;
  /** The image's path relative to the report folder (worst images only), for <img src>. */
  src?: string;
  truth: string;
  prompt: string | null;
}

export interface PageInput {
  title: string;
  evaluation: Evaluation;
  images: readonly PageImage[];
  /** Indices of the worst images, worst first. */
  worst: readonly number[];
  distributionSvg: string;
  perImageSvg: string;
  /** What the per-image chart shows when it is not every image. */
  perImageNote?: string;
  model: { clip: string; minilm: string; random: boolean };
  generated: string;
}

const CSS = `
body { font-family: "DejaVu Sans", Arial, Helvetica, sans-serif; margin: 24px auto; max-width: 1100px; padding: 0 16px; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 4px; } h2 { margin-top: 36px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.meta { color: #555; font-size: 0.9em; }
.random { background: #fde8e8; border: 2px solid #c81e1e; color: #8a1111; padding: 12px 16px; margin: 16px 0; font-weight: bold; }
table { border-collapse: collapse; margin: 8px 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.ensemble td { font-weight: bold; background: #fff6f6; }
.chart { overflow-x: auto; border: 1px solid #eee; margin: 8px 0; } .chart svg { display: block; }
.worst { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 16px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 10px; }
.card img { width: 100%; height: auto; border-radius: 4px; background: #f4f4f4; }
.card .score { font-weight: bold; color: #c81e1e; } .card dt { font-weight: bold; margin-top: 6px; } .card dd { margin: 0; }
.files a { margin-right: 12px; }
`;

const num = (v: number, digits = 4) => (Number.isFinite(v) ? v.toFixed(digits) : '–');

export function reportPage(p: PageInput): string {
  const e = p.evaluation;
  const members = e.scores.filter((s) => s.name !== ENSEMBLE);
  const ensemble = e.scores.find((s) => s.name === ENSEMBLE)!;
  const random = p.model.random
    ? `<div class="random" id="random-warning">CLIP model ${escapeXml(p.model.clip)} has RANDOM weights: every score on this page is meaningless (a plumbing check, for tests and demos only).</div>`
    : '';
  const scoreRows = e.scores.map((s) => {
    const weight = s.name === ENSEMBLE ? '' : num(e.weights[s.name] ?? 0, 3);
    const how = s.name === ENSEMBLE ? `${e.folds}-fold cross-validated (weights fitted on the other folds)` : 'member alone (nothing fitted on these images)';
    return `<tr class="${s.name === ENSEMBLE ? 'ensemble' : 'member'}"><td>${escapeXml(s.name)}</td><td class="num">${num(s.mean)}</td><td class="num">${num(s.low)}</td><td class="num">${num(s.high)}</td><td class="num">${weight}</td><td>${how}</td></tr>`;
  });
  const cards = p.worst.map((i, rank) => {
    const img = p.images[i]!;
    const memberScores = members.map((s) => `${escapeXml(s.name)} ${num(s.perImage[i]!, 3)}`).join(' · ');
    return `<div class="card" data-id="${escapeXml(img.id)}">
<div><span class="rank">#${rank + 1}</span> <strong>${escapeXml(img.id)}</strong> · ensemble <span class="score">${num(ensemble.perImage[i]!)}</span></div>
${img.src ? `<img src="${escapeXml(img.src)}" alt="${escapeXml(img.id)}" loading="lazy">` : ''}
<dl><dt>true prompt</dt><dd class="truth">${escapeXml(img.truth)}</dd>
<dt>predicted prompt</dt><dd class="predicted">${img.prompt === null ? '<em>none</em>' : escapeXml(img.prompt)}</dd>
<dt>members</dt><dd>${memberScores}</dd></dl></div>`;
  });
  const header = `<tr><th>image</th><th>fold</th>${e.scores.map((s) => `<th>${escapeXml(s.name)}</th>`).join('')}<th>true prompt</th><th>predicted prompt</th></tr>`;
  const imageRows = p.images.map((img, i) =>
    `<tr data-id="${escapeXml(img.id)}"><td>${escapeXml(img.id)}</td><td class="num">${e.fold[i]! + 1}</td>${e.scores.map((s) => `<td class="num">${num(s.perImage[i]!)}</td>`).join('')}<td>${escapeXml(img.truth)}</td><td>${img.prompt === null ? '' : escapeXml(img.prompt)}</td></tr>`);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeXml(p.title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>${escapeXml(p.title)}</h1>
<p class="meta">${e.images} images · CLIP ${escapeXml(p.model.clip)} · ${escapeXml(p.model.minilm)} · ${e.folds}-fold CV, seed ${e.seed} · bootstrap ${e.resamples} resamples · ${escapeXml(p.generated)}</p>
${random}
<h2>Scores</h2>
<p>The Kaggle metric: mean cosine between the predicted and the true prompt's all-MiniLM-L6-v2 vectors. 95 % intervals: percentile bootstrap over the images.</p>
<table id="scores"><thead><tr><th>member</th><th>mean cosine</th><th>95 % low</th><th>95 % high</th><th>weight</th><th>how</th></tr></thead>
<tbody>
${scoreRows.join('\n')}
</tbody></table>
<h2>Score distribution per member</h2>
<div class="chart" id="distribution">${p.distributionSvg}</div>
<h2>Per image</h2>
${p.perImageNote ? `<p class="meta">${escapeXml(p.perImageNote)}</p>` : ''}
<div class="chart" id="per-image">${p.perImageSvg}</div>
<h2>Worst images</h2>
<p>The ${p.worst.length} images the ensemble scored lowest (out of fold), with their true prompt and the prompt predicted for them.</p>
<div class="worst" id="worst">
${cards.join('\n')}
</div>
<h2>Every image</h2>
<table id="images"><thead>${header}</thead>
<tbody>
${imageRows.join('\n')}
</tbody></table>
<p class="files">Files: <a href="images.csv">images.csv</a><a href="report.json">report.json</a><a href="charts/distribution.png">distribution.png</a><a href="charts/per-image.png">per-image.png</a></p>
</body>
</html>
`;
}
