// Headless Chromium for the browser tests: Debian's `chromium` package driven by playwright-core.
import fs from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/**
 * The Chromium binary: $CHROMIUM_PATH, else Debian's. The binary itself rather than /usr/bin/chromium,
 * a shell wrapper that adds flags of its own. Throws (the test fails, never skips) when none is found.
 */
export function chromiumPath(): string {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/lib/chromium/chromium', '/usr/bin/chromium', '/usr/bin/chromium-browser'];
  const found = candidates.find((p): p is string => p !== undefined && p !== '' && fs.existsSync(p));
  if (!found) {
    throw new Error('no Chromium found (looked for $CHROMIUM_PATH, /usr/lib/chromium/chromium, /usr/bin/chromium): install it with `apt-get install -y chromium` (.ci/run does) or set CHROMIUM_PATH');
  }
  return found;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    // As root (CI containers) Chromium refuses to start with its sandbox on.
    args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), '--disable-dev-shm-usage'],
  });
}
