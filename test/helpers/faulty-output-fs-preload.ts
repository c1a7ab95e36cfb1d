// Loaded with `node --import tsx --import <this file>` before the CLI: puts the fault described in
// $IMG2PROMPT_TEST_OUTPUT_FAULT (JSON, see OutputFault) on the writers' seam of that CLI process.
import { FAULT_ENV, injectOutputFault, type OutputFault } from './faulty-output-fs.js';

const spec = process.env[FAULT_ENV];
if (spec) injectOutputFault(JSON.parse(spec) as OutputFault);
