#!/usr/bin/env node
import sharp from 'sharp';
import { main } from './main.js';

// The process is the CLI's own, so it may set sharp's process-wide settings (a library caller keeps its
// own). libvips' operation cache keeps recent decodes for reuse, but a run reads every image once: the
// cache only costs memory, about 25 MiB more peak RSS on 100k images (bench/RESULTS.md, peak memory).
sharp.cache(false);
main(process.argv.slice(2)).then((code) => (process.exitCode = code));
