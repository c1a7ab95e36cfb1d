// img2prompt eval end to end on the Kaggle sample (7 images) with a random tiny CLIP: the report
// folder stands alone (images copied, PNG charts rendered from the SVG), its numbers agree with
// report.json and images.csv, and headless Chromium opens index.html from disk, finds the tables,
// charts, worst images and the random-weights warning, and saves a screenshot under
// test-output/eval-report/. Without a browser the test fails, it does not skip.
import fs from 'node:fs';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pathToFileURL } from 'node:url';
import { launchChromium } from './helpers/chromium.js';
import { KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { runCliInProcess, type CliResult } from './helpers/cli.js';
import { copyKaggleImages, restoreHome, useTinyClipHome, writeSmallBankAndLabels } from './helpers/tiny-clip-home.js';

const OUTPUT = path.resolve('test-output', 'eval-report');
const TRUTH = path.join(KAGGLE_SAMPLE, 'prompts.csv');
const SAMPLE_IDS = ['20057f34d', '227ef0887', '92e911621', 'a4e1c55a9', 'c98f79f71', 'd8edf2e40', 'f27825b2c'];
const home = tempDir('img2prompt-eval-home-');
const work = tempDir('img2prompt-eval-work-');
const images = path.join(work, 'images');
const report = path.join(work, 'report');
let saved: string | undefined;
let browser: Browser;
let run: CliResult;

interface ReportJson {
  model: { clip: string; random: boolean };
  images: number;
  folds: number;
  scores: { name: string; mean: number; low: number; high: number }[];
  perImage: { id: string; fold: number; truth: string; prompt: string | null; scores: Record<string, number> }[];
}

beforeAll(async () => {
  // First: without a browser the test fails here, before the model setup.
  browser = await launchChromium();
  saved = await useTinyClipHome(home, 11);
  copyKaggleImages(images);
  const common = writeSmallBankAndLabels(work).options;
  run = await runCliInProcess(['eval', '--images', images, '--truth', TRUTH, '--folds', '3', '--members', 'knn,map,interrogator', '--worst', '3', '-o', report, ...common], home);
  fs.mkdirSync(OUTPUT, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  restoreHome(saved);
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

describe('img2prompt eval on the Kaggle sample (random tiny CLIP: numbers meaningless)', () => {
  it('prints the scores table and writes a self-contained report folder', async () => {
    expect(run.stderr).toContain('RANDOM weights');
    expect(run.code).toBe(0);
    console.log(`eval table (random tiny CLIP, meaningless numbers):\n${run.stdout}`);
    expect(run.stdout).toMatch(/^member\s+score\s+95 % interval\s+weight$/m);
    for (const name of ['knn', 'map', 'interrogator']) expect(run.stdout).toMatch(new RegExp(`^${name}\\s+-?[0-9.]+\\s+\\[-?[0-9.]+, -?[0-9.]+\\]\\s+[0-9.]+$`, 'm'));
    expect(run.stdout).toMatch(/^ensemble\s+-?[0-9.]+\s+\[-?[0-9.]+, -?[0-9.]+\]\s+\(3-fold CV\)$/m);
    expect(run.stdout).toContain('RANDOM CLIP weights: these numbers mean nothing');

    for (const f of ['index.html', 'report.json', 'images.csv', 'charts/distribution.svg', 'charts/per-image.svg']) expect(fs.existsSync(path.join(report, f))).toBe(true);
    for (const png of ['charts/distribution.png', 'charts/per-image.png']) {
      const meta = await sharp(path.join(report, png)).metadata();
      expect(meta.format).toBe('png');
      expect(meta.width).toBeGreaterThanOrEqual(800);
      // The PNG is the SVG rendered: same size.
      const svg = fs.readFileSync(path.join(report, png.replace('.png', '.svg')), 'utf8');
      expect(svg).toContain(`width="${meta.width}"`);
      fs.copyFileSync(path.join(report, png), path.join(OUTPUT, path.basename(png)));
    }
    const json = JSON.parse(fs.readFileSync(path.join(report, 'report.json'), 'utf8')) as ReportJson;
    expect(json.model.random).toBe(true);
    expect(json.images).toBe(7);
    expect(json.scores.map((s) => s.name)).toEqual(['knn', 'map', 'interrogator', 'ensemble']);
    expect(json.perImage.map((p) => p.id).sort()).toEqual(SAMPLE_IDS);
    for (const s of json.scores) {
      const values = json.perImage.map((p) => p.scores[s.name]!);
      expect(s.mean).toBeCloseTo(values.reduce((a, v) => a + v, 0) / values.length, 12);
      expect(s.low).toBeLessThanOrEqual(s.mean);
      expect(s.high).toBeGreaterThanOrEqual(s.mean);
    }
    const csv = fs.readFileSync(path.join(report, 'images.csv'), 'utf8').trimEnd().split('\n');
    expect(csv[0]).toBe('imgId,file,fold,knn,map,interrogator,ensemble,truth,prompt');
    expect(csv).toHaveLength(8);
    // The 3 worst images (lowest ensemble score) are copied beside the page.
    const worst = [...json.perImage].sort((a, b) => a.scores['ensemble']! - b.scores['ensemble']!).slice(0, 3).map((p) => `${p.id}.png`);
    expect(fs.readdirSync(path.join(report, 'images')).sort()).toEqual([...worst].sort());
  });

  it('opens in headless Chromium from disk: tables, charts, worst images with prompts, the random warning; screenshot saved', async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    try {
      await page.goto(pathToFileURL(path.join(report, 'index.html')).href);
      await page.waitForLoadState('load');
      expect(await page.locator('#random-warning').innerText()).toContain('RANDOM weights: every score on this page is meaningless');
      expect(await page.locator('#scores tbody tr').count()).toBe(4);
      expect(await page.locator('#images tbody tr').count()).toBe(7);
      expect(await page.locator('#distribution svg g.series').count()).toBe(4);
      expect(await page.locator('#per-image svg g.image').count()).toBe(7);
      const cards = page.locator('#worst .card');
      expect(await cards.count()).toBe(3);
      const truthCsv = fs.readFileSync(TRUTH, 'utf8');
      for (let i = 0; i < 3; i++) {
        const card = cards.nth(i);
        const img = card.locator('img');
        await img.scrollIntoViewIfNeeded();
        await expect.poll(() => img.evaluate((el: HTMLImageElement) => el.complete && el.naturalWidth)).toBe(512);
        const truth = await card.locator('.truth').innerText();
        expect(truthCsv).toContain(truth.replace(/"/g, '""').slice(0, 30));
        expect((await card.locator('.predicted').innerText()).length).toBeGreaterThan(0);
      }
      // The scores shown are report.json's.
      const json = JSON.parse(fs.readFileSync(path.join(report, 'report.json'), 'utf8')) as ReportJson;
      const shown = await page.locator('#scores tbody tr').evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('td')].slice(0, 2).map((td) => td.textContent)));
      expect(shown).toEqual(json.scores.map((s) => [s.name, s.mean.toFixed(4)]));
      // Static: nothing but the page and its own files is requested.
      expect(requests.every((u) => u.startsWith('file://'))).toBe(true);
      await page.screenshot({ path: path.join(OUTPUT, 'index.png'), fullPage: true });
      expect(fs.statSync(path.join(OUTPUT, 'index.png')).size).toBeGreaterThan(10_000);
    } finally {
      await page.close();
    }
  });
});
