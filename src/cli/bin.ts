#!/usr/bin/env node
import sharp from 'sharp';
import { main } from './main.js';
import { limitHeapGrowth } from './heap-growth.js';

// The process is the CLI's own, so it may set sharp's process-wide settings (a library caller keeps its
// own). libvips' operation cache keeps recent decodes for reuse, but a run reads every image once, so the
// cache can only hold memory (up to sharp's default 50 MB).
sharp.cache(false);
// Peak memory that does not depend on where V8's last full GC fell (see heap-growth.ts).
limitHeapGrowth(process.execArgv);
main(process.argv.slice(2)).then((code) => (process.exitCode = code));
