// Child process for the bank-cache resume tests: builds (or resumes) a bank of `count` synthetic labels
// with a planted encoder, printing "ready" before it starts, "chunk <rowsDone>" after each chunk is
// safely on disk and "finished" once the bank file is in place. The tests SIGKILL it midway.
//   node --import tsx test/helpers/build-bank-child.ts <home> <count> <chunkSize> <delayMs> [dtype] [dim]
// dtype defaults to the cache's default; dim to 32.
import { buildBankFile } from '../../src/interrogate/bank-cache.js';
import type { BankDtype } from '../../src/interrogate/types.js';
import { PlantedTextSide, syntheticLabels } from './planted.js';

const [home, count, chunkSize, delayMs, dtype, dim] = process.argv.slice(2);
const side = new PlantedTextSide({ dim: Number(dim ?? 32), delayMs: Number(delayMs) });
const labels = syntheticLabels('label', Number(count));
process.stdout.write('ready\n');
await buildBankFile(side, { name: 'resume', role: 'flavor', labels, source: 'resume.txt' }, {
  home,
  dtype: dtype as BankDtype | undefined,
  chunkSize: Number(chunkSize),
  onChunk: (done) => process.stdout.write(`chunk ${done}\n`),
});
process.stdout.write('finished\n');
