// Issue 15, inputs: images named by http(s) URLs, against a local server that serves good images, a
// response too slow for the timeout, a truncated body, a 404, a 500 then a 200, and a body over the size
// limit; then `embed-images` and `predict` on URLs and --from lists, where a URL that fails is an image
// failure (errors file, exit 1) and the run goes on.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchImageBytes, fetchToFile, inOrderAhead, urlImageId } from '../src/image/url-fetch.js';
import { parseInputList } from '../src/cli/input-list.js';
import { ImageListFile } from '../src/image/image-list-file.js';
import { inputImageId } from '../src/cli/input-images.js';
import { downloadUrlImages } from '../src/cli/url-inputs.js';
import { CliContext } from '../src/cli/context.js';
import { PassThrough } from 'node:stream';
import { readNpy } from '../src/util/npy.js';
import { readSubmission } from '../src/submission/submission-csv.js';
import { startFixtureServer, type FixtureServer } from './helpers/http-server.js';
import { KAGGLE_SAMPLE, tempDir } from './helpers/paths.js';
import { runCliInProcess, type CliResult } from './helpers/cli.js';
import { restoreHome, useTinyClipHome, writeSmallBankAndLabels, type SmallBank } from './helpers/tiny-clip-home.js';

const KAGGLE = path.join(KAGGLE_SAMPLE, 'images');
const [A, B, C] = ['20057f34d', '227ef0887', '92e911621'];
const png = (id: string) => fs.readFileSync(path.join(KAGGLE, `${id}.png`));
const home = tempDir('img2prompt-urls-home-');
const work = tempDir('img2prompt-urls-work-');
const cli = (args: string[]): Promise<CliResult> => runCliInProcess(args, home, { timeoutMs: 200_000 });
/** Short waits, so that failing tries do not make the suite slow. */
const QUICK = { timeoutMs: 400, backoffMs: 10 };
let server: FixtureServer;
let saved: string | undefined;
let bank: SmallBank;

beforeAll(async () => {
  server = await startFixtureServer();
  server.route(`/img/${A}.png`, { body: png(A) });
  server.route(`/img/${B}.png`, { body: png(B) });
  server.route('/img/slow.png', { body: png(C), delayMs: 3_000 });
  server.route('/img/truncated.png', { body: png(C), plan: [{ drop: 100 }, { drop: 100 }, { drop: 100 }] });
  // For the predict run: the plan of /img/truncated.png is spent by the fetch test.
  server.route('/img/cut.png', { body: png(C), plan: [{ drop: 100 }, { drop: 100 }, { drop: 100 }] });
  server.route('/img/flaky.png', { body: png(C), plan: [{ status: 500 }] });
  server.route('/img/busy.png', { body: png(C), plan: [{ status: 429 }, { status: 503 }] });
  server.route('/img/big.png', { body: new Uint8Array(3 * 1024 * 1024) });
  saved = await useTinyClipHome(home, 3);
  bank = writeSmallBankAndLabels(work);
});

afterAll(async () => {
  await server.close();
  restoreHome(saved);
  fs.rmSync(home, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

describe('the id of a URL image', () => {
  it('is the last path segment, URL-decoded, without the extension', () => {
    expect(urlImageId('https://host/a/b/20057f34d.png?size=large#top')).toBe('20057f34d');
    expect(urlImageId('http://host/x/caf%C3%A9.v2.jpg')).toBe('café.v2');
    expect(urlImageId('http://host/noext')).toBe('noext');
  });

  it('is refused, naming the URL, when the path names no file', () => {
    expect(() => urlImageId('http://host/dir/')).toThrow('http://host/dir/: no image id: the URL path must end in a file name');
    expect(() => urlImageId('http://host/a%2Fb.png')).toThrow(/holds a slash or NUL once decoded/);
    expect(() => urlImageId('http://host/%E0%A4%A.png')).toThrow(/not valid percent-encoding/);
  });
});

describe('--from lists', () => {
  it('one input a line; blank lines and # comments skipped, whitespace trimmed, CRLF read', () => {
    expect(parseInputList('# images\r\na.png\r\n\r\n  http://h/b.png  \n#c.png\nsome dir\n')).toEqual(['a.png', 'http://h/b.png', 'some dir']);
  });

  it('a list that names nothing, or cannot be read, is refused naming it', async () => {
    const empty = path.join(work, 'empty-list.txt');
    fs.writeFileSync(empty, '# nothing yet\n\n');
    const r = await cli(['caption', '--from', empty, '-o', path.join(work, 'c.csv')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`img2prompt: ${empty}: the input list (--from) names no input\n`);
    const missing = path.join(work, 'no-list.txt');
    const r2 = await cli(['interrogate', '--from', missing, '-o', path.join(work, 'p.csv')]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toBe(`img2prompt: ${missing}: cannot read the input list (--from): no such file\n`);
  });
});

describe('fetchToFile and fetchImageBytes against a local server', () => {
  const file = () => path.join(work, `dl-${Math.random().toString(36).slice(2)}.png`);

  it('downloads a good image, byte for byte, in one request', async () => {
    const to = file();
    expect(await fetchToFile(`${server.url}/img/${A}.png`, to, QUICK)).toBeUndefined();
    expect(fs.readFileSync(to).equals(png(A))).toBe(true);
    const bytes = await fetchImageBytes(`${server.url}/img/${B}.png`, QUICK);
    expect('data' in bytes && Buffer.from(bytes.data).equals(png(B))).toBe(true);
  });

  it('a 404 fails at once (not retried), and leaves no file', async () => {
    const to = file();
    const before = server.requestsFor('/img/missing.png').length;
    expect(await fetchToFile(`${server.url}/img/missing.png`, to, QUICK)).toBe('HTTP 404 Not Found');
    expect(server.requestsFor('/img/missing.png').length - before).toBe(1);
    expect(fs.existsSync(to)).toBe(false);
  });

  it('a 500 then a 200: retried, and the second try gives the image', async () => {
    const to = file();
    expect(await fetchToFile(`${server.url}/img/flaky.png`, to, QUICK)).toBeUndefined();
    expect(server.requestsFor('/img/flaky.png').map((r) => r.status)).toEqual([500, 200]);
    expect(fs.readFileSync(to).equals(png(C))).toBe(true);
  });

  it('429 and 503 are retried too, within the 3 tries', async () => {
    expect(await fetchImageBytes(`${server.url}/img/busy.png`, QUICK)).toEqual({ data: expect.any(Uint8Array) });
    expect(server.requestsFor('/img/busy.png').map((r) => r.status)).toEqual([429, 503, 200]);
  });

  it('a body cut short is retried, then reported with what arrived', async () => {
    const to = file();
    const reason = await fetchToFile(`${server.url}/img/truncated.png`, to, QUICK);
    expect(reason).toMatch(/^(network error after \d+ bytes: .+|truncated download: \d+ of \d+ bytes) \(after 3 tries\)$/);
    expect(server.requestsFor('/img/truncated.png')).toHaveLength(3);
    expect(fs.existsSync(to)).toBe(false);
  });

  it('a body over the size limit is refused from its Content-Length, without retrying', async () => {
    const reason = await fetchToFile(`${server.url}/img/big.png`, file(), { ...QUICK, maxBytes: 1024 * 1024 });
    expect(reason).toBe('download of 3 MiB is over the limit of 1 MiB (--max-download-mb)');
    expect(server.requestsFor('/img/big.png')).toHaveLength(1);
  });

  it('a response slower than the timeout fails after 3 tries', async () => {
    const t0 = performance.now();
    expect(await fetchImageBytes(`${server.url}/img/slow.png`, QUICK)).toEqual({ failure: 'timed out after 0.4 s (after 3 tries)' });
    expect(server.requestsFor('/img/slow.png')).toHaveLength(3);
    // Three timeouts and two short waits, not the server's 3 s.
    expect(performance.now() - t0).toBeLessThan(2_900);
  });

  it('a server that is not there is a network error', async () => {
    const reason = await fetchToFile('http://127.0.0.1:1/x.png', file(), { ...QUICK, tries: 1 });
    expect(reason).toMatch(/^network error: /);
  });
});

describe('downloadUrlImages', () => {
  const quiet = () => new CliContext({ stdout: new PassThrough(), stderr: new PassThrough() }, []);

  it('reads each URL from its download, still named by its URL, with the download\'s reason, and removes a private spool on close', async () => {
    const urls = [`${server.url}/img/${A}.png`, path.join(KAGGLE, `${C}.png`), `${server.url}/img/gone.png`];
    const list = await ImageListFile.of(urls, inputImageId);
    const d = await downloadUrlImages(quiet(), list, QUICK);
    const got = await d.list.slice(0, 3);
    expect(got[1]).toEqual({ id: C, label: urls[1], file: urls[1] });
    expect(got.map((x) => [x.id, x.label])).toEqual([[A, urls[0]], [C, urls[1]], ['gone', urls[2]]]);
    expect(path.basename(got[0]!.file!)).toBe(`${A}.png`);
    expect(fs.readFileSync(got[0]!.file!).equals(png(A))).toBe(true);
    expect(d.failed).toBe(1);
    expect(d.reportAs({ file: urls[2]!, reason: 'not found' })).toEqual({ file: urls[2], reason: 'HTTP 404 Not Found' });
    expect(d.reportAs({ file: urls[0]!, reason: 'bad pixels' })).toEqual({ file: urls[0], reason: 'bad pixels' });
    await d.close();
    expect(fs.existsSync(path.dirname(got[0]!.file!))).toBe(false);
    await list.close();
  });

  it('a kept spool (a resumable run) reuses whole downloads, with a fixed mtime, and fetches only what is missing', async () => {
    const dir = path.join(work, 'kept.downloads');
    const urls = [`${server.url}/img/${A}.png`, `${server.url}/img/${B}.png`];
    const list = await ImageListFile.of(urls, inputImageId);
    const files = async (d: Awaited<ReturnType<typeof downloadUrlImages>>) => (await d.list.slice(0, 2)).map((x) => x.file!);
    const first = await downloadUrlImages(quiet(), list, QUICK, { dir });
    const firstFiles = await files(first);
    expect(fs.statSync(firstFiles[0]!).mtimeMs).toBe(0);
    fs.rmSync(firstFiles[1]!);
    fs.writeFileSync(`${firstFiles[1]}.part`, 'half a download');
    const before = server.requests.length;
    const second = await downloadUrlImages(quiet(), list, QUICK, { dir });
    expect(server.requests.slice(before).map((r) => r.path)).toEqual([`/img/${B}.png`]);
    expect(await files(second)).toEqual(firstFiles);
    expect(fs.readFileSync(firstFiles[1]!).equals(png(B))).toBe(true);
    expect(fs.readdirSync(dir).sort()).toEqual([`${A}.png`, `${B}.png`]);
    await second.close();
    await list.close();
  });
});

describe('inOrderAhead', () => {
  it('keeps at most `concurrency` in flight and yields in item order', async () => {
    let inFlight = 0;
    let most = 0;
    const started: number[] = [];
    const work = async (n: number) => {
      started.push(n);
      most = Math.max(most, ++inFlight);
      await new Promise((resolve) => setTimeout(resolve, (10 - n) * 3));
      inFlight--;
      return n * 10;
    };
    const out: number[] = [];
    for await (const r of inOrderAhead([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], work, 3)) {
      // Nothing runs more than 3 ahead of what the consumer has taken.
      expect(started.length).toBeLessThanOrEqual(out.length + 3 + 1);
      out.push(r);
    }
    expect(out).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
    expect(most).toBe(3);
  });
});

describe('commands on URL inputs', () => {
  it('embed-images: URLs next to files and a --from list; a failed URL is an image failure, the run goes on', async () => {
    const list = path.join(work, 'list.txt');
    fs.writeFileSync(list, `# from the server\n${server.url}/img/${B}.png\n\n${server.url}/img/missing.png\n`);
    const out = path.join(work, 'emb', 'e.npy');
    const r = await cli(['embed-images', `${server.url}/img/${A}.png`, path.join(KAGGLE, `${C}.png`), '--from', list, '--model', 'tiny', '-o', out]);
    expect(r.code, r.stderr).toBe(1);
    expect(fs.readFileSync(path.join(work, 'emb', 'e.ids.txt'), 'utf8')).toBe(`${A}\n${C}\n${B}\n`);
    expect((await readNpy(out)).shape).toEqual([3, expect.any(Number)]);
    expect(fs.readFileSync(`${out}.errors.txt`, 'utf8')).toBe(`${server.url}/img/missing.png\tHTTP 404 Not Found\n`);
    expect(r.stderr).toContain(`img2prompt: 1 of 4 images could not be read; they have no row (listed in ${out}.errors.txt):\n  ${server.url}/img/missing.png: HTTP 404 Not Found\n`);
  });

  it('embed-images: a URL and a file with the same id are refused before anything is fetched, naming both', async () => {
    const before = server.requests.length;
    const r = await cli(['embed-images', `${server.url}/img/${A}.png`, path.join(KAGGLE, `${A}.png`), '--model', 'tiny', '-o', path.join(work, 'clash.npy')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`"${server.url}/img/${A}.png" and "${path.join(KAGGLE, `${A}.png`)}" share the id "${A}"`);
    expect(server.requests.length).toBe(before);
  });

  it('predict: a URL image gets the same vector as the file; a failed URL is listed with its reason and keeps its row', async () => {
    const out = path.join(work, 'pred', 'sub.csv');
    const r = await cli(['predict', `${server.url}/img/${A}.png`, `${server.url}/img/cut.png`, '--download-timeout', '5', '-o', out, ...bank.options]);
    expect(r.code, r.stderr).toBe(1);
    const errors = fs.readFileSync(`${out}.errors.txt`, 'utf8');
    expect(errors).toMatch(new RegExp(`^${server.url}/img/cut.png\\t(network error after \\d+ bytes|truncated download).* \\(after 3 tries\\)\\n$`));
    // The downloads kept for a --resume are gone once the submission is in place.
    expect(fs.existsSync(`${out}.ckpt.downloads`)).toBe(false);
    const byUrl = await readSubmission(out);
    expect(byUrl.ids).toEqual([A, 'cut']);

    const local = path.join(work, 'pred', 'local.csv');
    const r2 = await cli(['predict', path.join(KAGGLE, `${A}.png`), '-o', local, ...bank.options]);
    expect(r2.code, r2.stderr).toBe(0);
    // Alone, the image is its own modality-gap sample; with the failed URL beside it, too (a failed image is not sampled).
    expect(Array.from(byUrl.vectors.subarray(0, 384))).toEqual(Array.from((await readSubmission(local)).vectors));
  });

  it('--max-download-mb limits URL images in a command', async () => {
    const out = path.join(work, 'big', 'e.npy');
    const r = await cli(['embed-images', `${server.url}/img/${A}.png`, `${server.url}/img/big.png`, '--max-download-mb', '2', '--model', 'tiny', '-o', out]);
    expect(r.code).toBe(1);
    expect(fs.readFileSync(`${out}.errors.txt`, 'utf8')).toBe(`${server.url}/img/big.png\tdownload of 3 MiB is over the limit of 2 MiB (--max-download-mb)\n`);
  });

  it('no inputs at all is refused, saying what to give', async () => {
    const r = await cli(['embed-images', '--model', 'tiny', '-o', path.join(work, 'none.npy')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('img2prompt: no inputs: give image files, folders or URLs, or --from FILE\n');
  });
});
