// Issue 10, input side: what the decoder and the folder walker do with inputs that are not regular image
// files (FIFOs, folders, dangling and looping links, unreadable or empty files, SVG, BMP). A FIFO used to
// hang every reader forever, so every test that could touch one runs under its own short deadline and
// frees a blocked reader before failing (see `withinDeadline`).
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp, { type Sharp } from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { decodeImage } from '../src/image/decode.js';
import { loadBatches, type ImageFailure } from '../src/image/batch-loader.js';
import { imageExtensions, RASTER_FORMATS } from '../src/image/image-formats.js';
import { listImageFiles } from '../src/image/list-images.js';
import { imageIdsInDir } from '../src/submission/validate.js';
import { Img2PromptError } from '../src/util/errors.js';
import { KAGGLE_SAMPLE, asset, tempDir } from './helpers/paths.js';

const tmp = tempDir('img2prompt-inputs-');
const isRoot = process.getuid?.() === 0;
/** Root reads anything, so as root the permission test runs in a process that has dropped to `nobody`. */
const NOBODY = 65534;
const canRunAsNobody = isRoot && spawnSync(process.execPath, ['-e', ''], { uid: NOBODY, gid: NOBODY }).status === 0;
const KAGGLE = path.join(KAGGLE_SAMPLE, 'images');
const PNG = path.join(KAGGLE, '20057f34d.png');
const SVG = '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="6" height="4"><rect width="6" height="4" fill="#f00"/></svg>\n';

/** A folder holding one real image and every kind of entry that is named like an image but is not one. */
const dir = path.join(tmp, 'mixed');
const fifo = path.join(dir, 'pipe.png');

beforeAll(() => {
  fs.mkdirSync(dir);
  fs.copyFileSync(PNG, path.join(dir, 'a.png'));
  fs.mkdirSync(path.join(dir, 'x.png'));
  fs.symlinkSync('nothere.png', path.join(dir, 'dangling.png'));
  fs.symlinkSync('loop2.png', path.join(dir, 'loop1.png'));
  fs.symlinkSync('loop1.png', path.join(dir, 'loop2.png'));
  fs.symlinkSync('a.png', path.join(dir, 'link-to-a.png'));
  execOrThrow('mkfifo', [fifo]);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

function execOrThrow(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

/**
 * `work`, failed if it has not settled within `ms`. A reader blocked on a FIFO would otherwise hold a
 * thread of the pool forever and hang the test file: opening the FIFO for writing and closing it again
 * hands that reader an end of file, so a regression fails here instead of hanging.
 */
async function withinDeadline<T>(work: Promise<T>, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      try {
        fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      } catch {
        // No reader is blocked on it.
      }
      reject(new Error(`still running after ${ms} ms (blocked on a FIFO?)`));
    }, ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function reasonOf(input: string | Uint8Array, options: Parameters<typeof decodeImage>[1] = {}): Promise<string> {
  const err = await withinDeadline(decodeImage(input, options).then(() => undefined, (e: unknown) => e));
  expect(err, `decodeImage(${String(input)}) should fail`).toBeInstanceOf(Img2PromptError);
  return (err as Img2PromptError).reason;
}

describe('inputs that are not regular files are refused from their stat, never read', () => {
  it('a FIFO named pipe.png fails at once with its reason (it used to block forever)', async () => {
    expect(await reasonOf(fifo)).toBe('is a named pipe (FIFO), not a regular file: not read');
  });

  it('a FIFO swapped in after the stat is still refused, by the check on the non-blocking descriptor', async () => {
    // The race: stat saw a regular file, open then finds the FIFO.
    const realStat = fs.promises.stat;
    const stat = vi.spyOn(fs.promises, 'stat').mockImplementation(((p: fs.PathLike, o?: fs.StatOptions) =>
      p === fifo ? realStat(PNG) : realStat(p, o)) as typeof fs.promises.stat);
    expect(await reasonOf(fifo)).toBe('is a named pipe (FIFO), not a regular file: not read');
    expect(stat).toHaveBeenCalledWith(fifo);
  });

  it('a directory named x.png, a dangling link and a link loop say what they are', async () => {
    expect(await reasonOf(path.join(dir, 'x.png'))).toBe('is a directory, not an image file');
    expect(await reasonOf(path.join(dir, 'dangling.png'))).toBe('is a dangling symbolic link (its target nothere.png does not exist)');
    expect(await reasonOf(path.join(dir, 'loop1.png'))).toBe('is a symbolic link loop (too many levels of symbolic links)');
    expect(await reasonOf(path.join(dir, 'missing.png'))).toBe('no such file');
    // A link to an image is an image.
    await expect(decodeImage(path.join(dir, 'link-to-a.png'))).resolves.toMatchObject({ width: 512, height: 512 });
  });

  it('loadBatches reports each of them as a failure of its own and loads the rest', async () => {
    const files = ['a.png', 'pipe.png', 'x.png', 'dangling.png', 'loop1.png', 'link-to-a.png'].map((f) => path.join(dir, f));
    const failures: ImageFailure[] = [];
    const loaded: string[] = [];
    await withinDeadline(
      (async () => {
        for await (const b of loadBatches(files, { batchSize: 4, size: 32 })) {
          failures.push(...b.failures);
          loaded.push(...b.ids);
        }
      })(),
    );
    expect(loaded).toEqual(['a', 'link-to-a']);
    expect(failures.map((f) => [path.basename(f.file), f.reason.split(' ').slice(0, 4).join(' ')])).toEqual([
      ['pipe.png', 'is a named pipe'],
      ['x.png', 'is a directory, not'],
      ['dangling.png', 'is a dangling symbolic'],
      ['loop1.png', 'is a symbolic link'],
    ]);
  });
});

describe('what counts as an image: one walker for every command and validate --images', () => {
  it('lists the regular image files of a folder (links to them included) and sets the rest aside with reasons', async () => {
    const { files, skipped } = await withinDeadline(listImageFiles([dir]));
    expect(files.map((f) => path.basename(f))).toEqual(['a.png', 'link-to-a.png']);
    expect(Object.fromEntries(skipped.map((s) => [path.basename(s.file), s.reason]))).toEqual({
      'dangling.png': 'is a dangling symbolic link (its target nothere.png does not exist)',
      'loop1.png': 'is a symbolic link loop (too many levels of symbolic links)',
      'loop2.png': 'is a symbolic link loop (too many levels of symbolic links)',
      'pipe.png': 'is a named pipe (FIFO), not a regular file: not read',
      'x.png': 'is a directory, not an image file',
    });
    // validate --images expects exactly these ids (it used to skip the entries predict gave rows to).
    expect(await imageIdsInDir(dir)).toEqual(['a', 'link-to-a']);
  });

  it('a FIFO named explicitly is set aside too; a path that does not exist at all is an error', async () => {
    const { files, skipped } = await withinDeadline(listImageFiles([fifo, PNG]));
    expect(files).toEqual([PNG]);
    expect(skipped).toEqual([{ file: fifo, reason: 'is a named pipe (FIFO), not a regular file: not read' }]);
    await expect(listImageFiles([path.join(dir, 'nope.png')])).rejects.toThrow(`${path.join(dir, 'nope.png')}: not found`);
  });
});

describe('reasons name the real problem, on one line', () => {
  it.runIf(!isRoot || canRunAsNobody)('permission denied is reported as such, not as an unsupported format', () => {
    const locked = path.join(tmp, 'locked');
    fs.mkdirSync(locked);
    fs.chmodSync(tmp, 0o755);
    fs.chmodSync(locked, 0o755);
    const file = path.join(locked, 'secret.png');
    fs.copyFileSync(PNG, file);
    fs.chmodSync(file, 0o000);
    const asNobody = isRoot ? { uid: NOBODY, gid: NOBODY } : {};
    const script = `import('./src/image/decode.ts').then((m) => m.decodeImage(${JSON.stringify(file)})).then(() => console.log('decoded'), (e) => console.log(e.reason))`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8', timeout: 60_000, ...asNobody });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('permission denied');
  });

  it('an I/O error while reading is reported as one (simulated EIO)', async () => {
    const realOpen = fs.promises.open;
    vi.spyOn(fs.promises, 'open').mockImplementation((async (...args: Parameters<typeof fs.promises.open>) => {
      const handle = await realOpen(...args);
      handle.readFile = (() => Promise.reject(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO', errno: -5, syscall: 'read' }))) as typeof handle.readFile;
      return handle;
    }) as typeof fs.promises.open);
    expect(await reasonOf(PNG)).toBe('input/output error (EIO): the disk or file system failed to read it');
  });

  it('an empty file says so; libvips messages lose their line breaks, repeats and empty details', async () => {
    const empty = path.join(tmp, 'empty.png');
    fs.writeFileSync(empty, '');
    expect(await reasonOf(empty)).toBe('empty file (0 bytes)');
    // A PNG signature and nothing else: libvips says "…corrupt header:" with nothing after the colon.
    const bare = await reasonOf(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(bare).toMatch(/^cannot decode image: .*corrupt header$/);
    // A JPEG cut after its first bytes: libjpeg's complaints come over several repeated lines.
    const jpeg = await reasonOf(fs.readFileSync(asset('images', 'pillow-hopper.jpg')).subarray(0, 40));
    expect(jpeg).not.toMatch(/\n/);
    const parts = jpeg.split('; ');
    expect(new Set(parts).size).toBe(parts.length);
    for (const reason of [bare, jpeg]) expect(reason.trim()).not.toBe('');
  });
});

describe('formats: raster only unless SVG is allowed; the walker lists what the decoder reads', () => {
  it('refuses an SVG, whatever its name, unless allowSvg', async () => {
    const svg = path.join(tmp, 'drawing.svg');
    const disguised = path.join(tmp, 'drawing-svg.png');
    fs.writeFileSync(svg, SVG);
    fs.writeFileSync(disguised, SVG);
    for (const f of [svg, disguised]) {
      expect(await reasonOf(f)).toBe('an SVG (vector) image: only raster images are read unless SVG is allowed (--allow-svg, allowSvg)');
      await expect(decodeImage(f, { allowSvg: true })).resolves.toMatchObject({ width: 6, height: 4 });
    }
    const svgDir = path.join(tmp, 'svgs');
    fs.mkdirSync(svgDir);
    fs.copyFileSync(svg, path.join(svgDir, 'v.svg'));
    fs.copyFileSync(PNG, path.join(svgDir, 'r.png'));
    expect((await listImageFiles([svgDir])).files.map((f) => path.basename(f))).toEqual(['r.png']);
    expect((await listImageFiles([svgDir], { allowSvg: true })).files.map((f) => path.basename(f))).toEqual(['r.png', 'v.svg']);
    expect(await imageIdsInDir(svgDir, { allowSvg: true })).toEqual(['r', 'v']);
  });

  it('every listed extension is one the decoder reads, and .bmp (which it cannot) is not listed', async () => {
    const writers: Record<string, (s: Sharp) => Sharp> = {
      PNG: (s) => s.png(),
      JPEG: (s) => s.jpeg(),
      WebP: (s) => s.webp(),
      AVIF: (s) => s.avif(),
      TIFF: (s) => s.tiff(),
      GIF: (s) => s.gif(),
    };
    const source = asset('images', 'pillow-hopper.png');
    const listed = [...imageExtensions()].sort();
    expect(listed).toEqual(['.avif', '.gif', '.jpeg', '.jpg', '.png', '.tif', '.tiff', '.webp']);
    for (const format of RASTER_FORMATS) {
      for (const ext of format.extensions) {
        const file = path.join(tmp, `sample${ext}`);
        await writers[format.name]!(sharp(source)).toFile(file);
        await expect(decodeImage(file), file).resolves.toMatchObject({ width: 128, height: 128 });
      }
    }
    const bmpDir = path.join(tmp, 'bmp');
    fs.mkdirSync(bmpDir);
    // A real BMP header: sharp has no BMP decoder, so a listed .bmp could only ever fail.
    fs.writeFileSync(path.join(bmpDir, 'old.bmp'), Buffer.concat([Buffer.from('BM'), Buffer.alloc(52)]));
    fs.copyFileSync(PNG, path.join(bmpDir, 'new.png'));
    expect((await listImageFiles([bmpDir])).files.map((f) => path.basename(f))).toEqual(['new.png']);
    expect(await imageIdsInDir(bmpDir)).toEqual(['new']);
    expect(await reasonOf(path.join(bmpDir, 'old.bmp'))).toBe('not a supported image (PNG, JPEG, WebP, AVIF, TIFF, GIF)');
  });
});
