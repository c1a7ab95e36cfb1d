/**
 * The eval report's charts as standalone SVG documents: written inline into index.html and rendered
 * to PNG by sharp (report.ts) from the very same text, so the page and the PNG files cannot differ.
 * Plain SVG 1.1 with fonts named generically: no script, no external reference, no CDN.
 */
import { ENSEMBLE, type ScoredMember } from './evaluate.js';

const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2', '#edc948', '#ff9da7', '#9c755f', '#bab0ac'];
const ENSEMBLE_COLOUR = '#e15759';
const FONT = 'font-family="DejaVu Sans, Arial, Helvetica, sans-serif"';

/** The colour of the k-th score series (the ensemble has its own). */
export function seriesColour(name: string, k: number): string {
  return name === ENSEMBLE ? ENSEMBLE_COLOUR : PALETTE[k % PALETTE.length]!;
}

/** Text made safe for XML content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

const f = (x: number): string => (Math.round(x * 10) / 10).toString();

/** A domain [lo, hi] covering `values` (and 0), rounded out to tenths, within [-1, 1]. */
function cosineDomain(values: number[]): [number, number] {
  const finite = values.filter(Number.isFinite);
  const lo = Math.max(-1, Math.floor(Math.min(0, ...finite) * 10) / 10);
  const hi = Math.min(1, Math.ceil(Math.max(0.1, ...finite) * 10) / 10);
  return [lo, hi > lo ? hi : lo + 0.1];
}

/** Tick values from lo to hi: tenths, or fifths when the range is wide. */
function ticks(lo: number, hi: number): number[] {
  const step = hi - lo > 1 ? 0.2 : 0.1;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + 1e-9; v += step) out.push(Math.round(v * 100) / 100);
  return out;
}

/** The q-quantile of sorted values (linear interpolation). */
function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const at = q * (sorted.length - 1);
  const i = Math.floor(at);
  return sorted[i]! + (sorted[Math.min(i + 1, sorted.length - 1)]! - sorted[i]!) * (at - i);
}

/**
 * Score distribution per member: a row per member (then the ensemble) with a dot per image, the
 * quartile box with its median, and the mean with its bootstrap interval.
 */
export function distributionSvg(scores: readonly ScoredMember[], title: string): string {
  const width = 820, left = 190, right = 30, top = 54, rowHeight = 64, bottom = 46;
  const height = top + rowHeight * scores.length + bottom;
  const [lo, hi] = cosineDomain(scores.flatMap((s) => [...s.perImage, s.low, s.high]));
  const x = (v: number) => left + ((v - lo) / (hi - lo)) * (width - left - right);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="13">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  for (const t of ticks(lo, hi)) {
    parts.push(`<line x1="${f(x(t))}" y1="${top - 8}" x2="${f(x(t))}" y2="${height - bottom}" stroke="${t === 0 ? '#888' : '#e3e3e3'}"/>`);
    parts.push(`<text x="${f(x(t))}" y="${height - bottom + 18}" text-anchor="middle" fill="#444">${t.toFixed(1)}</text>`);
  }
  parts.push(`<text x="${f((left + width - right) / 2)}" y="${height - 8}" text-anchor="middle" fill="#444">cosine with the true prompt (MiniLM), per image</text>`);
  scores.forEach((s, k) => {
    const colour = seriesColour(s.name, k);
    const cy = top + k * rowHeight + rowHeight / 2;
    const sorted = [...s.perImage].sort((a, b) => a - b);
    const [q1, med, q3] = [0.25, 0.5, 0.75].map((q) => quantile(sorted, q)) as [number, number, number];
    parts.push(`<g class="series" data-name="${escapeXml(s.name)}">`);
    parts.push(`<text x="${left - 12}" y="${cy - 4}" text-anchor="end" font-weight="bold">${escapeXml(s.name)}</text>`);
    parts.push(`<text x="${left - 12}" y="${cy + 13}" text-anchor="end" fill="#444" font-size="12">${s.mean.toFixed(4)} [${s.low.toFixed(3)}, ${s.high.toFixed(3)}]</text>`);
    parts.push(`<rect x="${f(x(q1))}" y="${cy - 11}" width="${f(Math.max(1, x(q3) - x(q1)))}" height="22" fill="${colour}" fill-opacity="0.18" stroke="${colour}"/>`);
    parts.push(`<line x1="${f(x(med))}" y1="${cy - 11}" x2="${f(x(med))}" y2="${cy + 11}" stroke="${colour}" stroke-width="2"/>`);
    s.perImage.forEach((v, i) => {
      // A fixed vertical spread so equal scores stay visible; no randomness, so the chart is reproducible.
      const jitter = ((i * 7) % 9) - 4;
      parts.push(`<circle cx="${f(x(v))}" cy="${f(cy + jitter * 2)}" r="3.2" fill="${colour}" fill-opacity="0.75"/>`);
    });
    parts.push(`<line x1="${f(x(s.low))}" y1="${cy + 20}" x2="${f(x(s.high))}" y2="${cy + 20}" stroke="#222" stroke-width="2"/>`);
    for (const end of [s.low, s.high]) parts.push(`<line x1="${f(x(end))}" y1="${cy + 16}" x2="${f(x(end))}" y2="${cy + 24}" stroke="#222" stroke-width="2"/>`);
    parts.push(`<circle cx="${f(x(s.mean))}" cy="${cy + 20}" r="4.5" fill="#222"/>`);
    parts.push('</g>');
  });
  parts.push(`<text x="${width - right}" y="42" text-anchor="end" fill="#555" font-size="11">box: quartiles and median · black: mean and bootstrap 95 % interval</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

/**
 * Per-image bars: for each image (left to right from the ensemble's worst), one bar per member and
 * one for the ensemble. `order`: the image indices to show, in that order.
 */
export function perImageSvg(ids: readonly string[], scores: readonly ScoredMember[], order: readonly number[], title: string): string {
  const series = scores.length;
  const bar = series > 5 ? 7 : 10;
  const left = 64, right = 20, top = 70, plot = 260, bottom = 110;
  // Few images spread over the chart's width (up to three bars' room each); many make it wider.
  const tight = series * bar + 14;
  const group = Math.max(tight, Math.min(3 * tight, (820 - left - right) / Math.max(1, order.length)));
  const width = Math.max(820, left + right + group * order.length);
  const height = top + plot + bottom;
  const [lo, hi] = cosineDomain(order.flatMap((i) => scores.map((s) => s.perImage[i]!)));
  const y = (v: number) => top + ((hi - v) / (hi - lo)) * plot;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  let lx = left;
  scores.forEach((s, k) => {
    parts.push(`<rect x="${lx}" y="36" width="12" height="12" fill="${seriesColour(s.name, k)}"/><text x="${lx + 16}" y="46">${escapeXml(s.name)}</text>`);
    lx += 30 + s.name.length * 7.5;
  });
  for (const t of ticks(lo, hi)) {
    parts.push(`<line x1="${left}" y1="${f(y(t))}" x2="${width - right}" y2="${f(y(t))}" stroke="${t === 0 ? '#888' : '#e3e3e3'}"/>`);
    parts.push(`<text x="${left - 6}" y="${f(y(t) + 4)}" text-anchor="end" fill="#444">${t.toFixed(1)}</text>`);
  }
  parts.push(`<text transform="translate(16 ${top + plot / 2}) rotate(-90)" text-anchor="middle" fill="#444">cosine</text>`);
  order.forEach((img, g) => {
    const gx = left + g * group + (group - series * bar) / 2;
    parts.push(`<g class="image" data-id="${escapeXml(ids[img]!)}">`);
    scores.forEach((s, k) => {
      const v = s.perImage[img]!;
      const y0 = y(0), y1 = y(v);
      parts.push(`<rect x="${f(gx + k * bar)}" y="${f(Math.min(y0, y1))}" width="${bar - 1}" height="${f(Math.max(0.5, Math.abs(y1 - y0)))}" fill="${seriesColour(s.name, k)}"><title>${escapeXml(`${ids[img]} · ${s.name}: ${v.toFixed(4)}`)}</title></rect>`);
    });
    const cx = gx + (series * bar) / 2;
    parts.push(`<text transform="translate(${f(cx)} ${top + plot + 12}) rotate(-50)" text-anchor="end" fill="#333">${escapeXml(ids[img]!)}</text>`);
    parts.push('</g>');
  });
  parts.push('</svg>');
  return parts.join('\n');
}
