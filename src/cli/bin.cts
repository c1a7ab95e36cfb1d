#!/usr/bin/env node
// The installed `img2prompt` command. It sizes libuv's thread pool to the machine before anything can
// start the pool (see threadpool.cts for why this file is CommonJS), then loads the ES-module CLI.
import os = require('node:os');
import threadpool = require('./threadpool.cjs');

threadpool.sizeThreadpool(process.env, os.availableParallelism());
void import('./bin.js');
