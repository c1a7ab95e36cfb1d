/**
 * The web page at `/`: index.html and its script and style, read from src/server/web/ in the package
 * (tsc copies no non-TS files into dist/, so dist/src/server/web.js reads them from the package root;
 * package.json "files" ships them). Everything the page needs comes from this server: it works offline.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Img2PromptError } from '../util/errors.js';
import { packageRoot } from '../util/package-root.js';

/** The page's files: URL path → file name and content type. */
const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/web/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/web/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
};

/**
 * Only this server's own files, no inline script; blob: for the thumbnails of the picked images.
 * A page that can load nothing else cannot leak the images or the token elsewhere.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'", "img-src 'self' blob: data:", "script-src 'self'", "style-src 'self'",
  "connect-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

/** The folder the page's files are served from. */
export function webDir(): string {
  return path.join(packageRoot(), 'src', 'server', 'web');
}

/** Registers GET `/` and the page's assets; the files are read once, here, so a broken install fails at start. */
export function registerWebPage(app: FastifyInstance, dir = webDir()): void {
  for (const [url, { file, type }] of Object.entries(ASSETS)) {
    let body: Buffer;
    try {
      body = fs.readFileSync(path.join(dir, file));
    } catch (err) {
      throw new Img2PromptError(path.join(dir, file), `the web page's file cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}); reinstall img2prompt`);
    }
    app.get(url, async (_request, reply) =>
      reply
        .type(type)
        // Small files, and a new version of the package must show at once: revalidate every time.
        .header('cache-control', 'no-cache')
        .header('content-security-policy', CONTENT_SECURITY_POLICY)
        .header('x-content-type-options', 'nosniff')
        .send(body),
    );
  }
}
