// The web page at `/` in a real browser (headless Chromium): drop the 7 Kaggle sample images, wait for
// 7 prompts, and check each shown prompt, its labels and the progress bar against what POST
// /v1/interrogate answers for the same bytes. Screenshots (desktop and phone width) go to
// test-output/serve-web/ at the repository root.
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from './helpers/chromium.js';
import { tempDir } from './helpers/paths.js';
import { postImage, startServer, type StartedServer } from './helpers/serve.js';
import { copyKaggleImages, restoreHome, useTinyClipHome, writeSmallBankAndLabels } from './helpers/tiny-clip-home.js';

const OUTPUT = path.resolve('test-output', 'serve-web');
const home = tempDir('img2prompt-web-home-');
const work = tempDir('img2prompt-web-work-');
let saved: string | undefined;
let labelsDir: string;
let images: { name: string; data: Uint8Array }[];
let served: StartedServer;
let guarded: StartedServer;
let browser: Browser;

beforeAll(async () => {
  // First: without a browser the test fails here, before minutes of model setup.
  browser = await launchChromium();
  saved = await useTinyClipHome(home, 7);
  copyKaggleImages(path.join(work, 'images'));
  ({ labelsDir } = writeSmallBankAndLabels(work));
  images = fs.readdirSync(path.join(work, 'images')).sort().map((f) => ({ name: f, data: new Uint8Array(fs.readFileSync(path.join(work, 'images', f))) }));
  served = await startServer({ model: 'tiny', labelsDir, predict: false, maxWaitMs: 50 });
  guarded = await startServer({ model: 'tiny', labelsDir, predict: false, token: 'open sesame' });
  fs.mkdirSync(OUTPUT, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  await served?.server.close();
  await guarded?.server.close();
  restoreHome(saved);
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

/** Drops `files` on the page's drop zone as a user's drag and drop does: a DataTransfer of Files. */
async function dropFiles(page: Page, files: { name: string; data: Uint8Array }[]): Promise<void> {
  const payload = files.map((f) => ({ name: f.name, b64: Buffer.from(f.data).toString('base64') }));
  await page.evaluate((list) => {
    const dt = new DataTransfer();
    for (const f of list) {
      const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
      dt.items.add(new File([bytes], f.name, { type: 'image/png' }));
    }
    const zone = document.getElementById('dropzone')!;
    for (const type of ['dragenter', 'dragover', 'drop']) zone.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, payload);
}

/** What a finished card shows. */
interface ShownCard {
  name: string;
  prompt: string;
  state: string;
  banks: { bank: string; labels: { label: string; value: string; width: number }[] }[];
}

function shownCards(page: Page): Promise<ShownCard[]> {
  return page.$$eval('.card', (cards) => cards.map((card) => ({
    name: (card as HTMLElement).dataset.name ?? '',
    prompt: card.querySelector('.prompt')?.textContent ?? '',
    state: card.querySelector('.state')?.textContent ?? '',
    banks: [...card.querySelectorAll('.bank')].map((b) => ({
      bank: b.querySelector('h3')?.textContent ?? '',
      labels: [...b.querySelectorAll('.label')].map((l) => ({
        label: l.querySelector('.text')?.textContent ?? '',
        value: l.querySelector('.value')?.textContent ?? '',
        width: parseFloat((l.querySelector('.bar span') as HTMLElement).style.width),
      })),
    })),
  })));
}

interface Interrogated {
  prompt: string;
  labels: { bank: string; label: string; similarity: number }[];
}

describe('the web page', () => {
  it('serves the page and its assets from the server itself, with a policy that allows nothing else', async () => {
    const page = await fetch(`${served.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    const html = await page.text();
    expect(html).not.toMatch(/https?:\/\//);
    for (const [asset, type] of [['/web/app.js', 'text/javascript; charset=utf-8'], ['/web/app.css', 'text/css; charset=utf-8']]) {
      expect(html).toContain(`"${asset}"`);
      const res = await fetch(`${served.url}${asset}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe(type);
      expect(await res.text()).not.toMatch(/https?:\/\/(?!www\.w3\.org)/);
    }
  });

  it('shows, for 7 dropped images, the prompt /v1/interrogate gives for each, its labels by bank and a full progress bar', async () => {
    const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    const page = await context.newPage();
    const foreign: string[] = [];
    const pageErrors: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(`${served.url}/`) && !r.url().startsWith('blob:')) foreign.push(r.url());
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${served.url}/`);
    await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('ready'));

    await dropFiles(page, images);
    await page.waitForFunction((n) => document.querySelectorAll('.card.done, .card.failed').length === n, images.length, { timeout: 120_000 });

    const cards = await shownCards(page);
    expect(cards.map((c) => c.name)).toEqual(images.map((i) => i.name));
    for (const img of images) {
      const res = await postImage(`${served.url}/v1/interrogate?id=${encodeURIComponent(img.name)}`, img.data);
      const expected = ((await res.json()) as { results: Interrogated[] }).results[0]!;
      const card = cards.find((c) => c.name === img.name)!;
      expect(card.state).toMatch(/^done/);
      expect(card.prompt).toBe(expected.prompt);
      expect(expected.prompt.length).toBeGreaterThan(0);
      // Every chosen label shows under its bank with its cosine; the best label's bar is full.
      const banks = [...new Set(expected.labels.map((l) => l.bank))];
      expect(card.banks.map((b) => b.bank)).toEqual(banks);
      for (const b of card.banks) {
        const want = expected.labels.filter((l) => l.bank === b.bank).sort((x, y) => y.similarity - x.similarity);
        expect(b.labels.map((l) => [l.label, l.value])).toEqual(want.map((l) => [l.label, l.similarity.toFixed(3)]));
      }
      const widths = card.banks.flatMap((b) => b.labels.map((l) => l.width));
      expect(Math.max(...widths)).toBeCloseTo(100, 6);
    }
    expect(new Set(cards.map((c) => c.prompt)).size).toBeGreaterThan(1);
    expect(await page.textContent('#progress-text')).toBe(`${images.length} / ${images.length}`);
    expect(await page.$eval('#progress', (p) => [(p as HTMLProgressElement).value, (p as HTMLProgressElement).max])).toEqual([images.length, images.length]);

    const desktop = path.join(OUTPUT, 'desktop.png');
    await page.screenshot({ path: desktop, fullPage: true });
    // Phone width: nothing wider than the screen (no sideways scrolling).
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    const phone = path.join(OUTPUT, 'phone.png');
    await page.screenshot({ path: phone, fullPage: true });
    console.log(`serve-web screenshots: ${desktop} ${phone}`);
    expect(fs.statSync(desktop).size).toBeGreaterThan(10_000);

    expect(foreign).toEqual([]);
    expect(pageErrors).toEqual([]);
    await context.close();
  });

  it('asks for the token on a 401, keeps it in sessionStorage and sends it as Bearer', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const authorizations: (string | undefined)[] = [];
    page.on('request', (r) => {
      if (r.url().includes('/v1/interrogate')) authorizations.push(r.headers().authorization);
    });
    await page.goto(`${guarded.url}/`);
    await dropFiles(page, [images[0]!]);
    await page.waitForSelector('.card.failed');
    expect(await page.$eval('#token-box', (d) => (d as HTMLDetailsElement).open)).toBe(true);
    expect(await page.textContent('#status')).toContain('needs a token');

    await page.fill('#token', 'open sesame');
    await page.click('#token-form button');
    expect(await page.evaluate(() => sessionStorage.getItem('img2prompt.token'))).toBe('open sesame');
    await dropFiles(page, [images[0]!]);
    await page.waitForSelector('.card.done');
    expect(authorizations).toEqual([undefined, 'Bearer open sesame']);
    const expected = (await (await postImage(`${guarded.url}/v1/interrogate`, images[0]!.data, 'image/png', { authorization: 'Bearer open sesame' })).json()) as { results: Interrogated[] };
    expect(await page.textContent('.card.done .prompt')).toBe(expected.results[0]!.prompt);
    await context.close();
  });
});
