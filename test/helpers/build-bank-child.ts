// Child process for the bank-cache resume test: builds a bank of `count` synthetic labels with a slow
// planted encoder, printing "chunk <rowsDone>" after each chunk is safely on disk. The test kills it
// with SIGKILL midway.
//   node --import tsx test/helpers/build-bank-child.ts <home> <count> <chunkSize> <delayMs>
import { buildBankFile } from '../../src/interrogate/bank-cache.js';
import { PlantedTextSide, syntheticLabels } from './planted.js';

const [home, count, chunkSize, delayMs] = process.argv.slice(2);
const side = new PlantedTextSide({ dim: 32, delayMs: Number(delayMs) });
const labels = syntheticLabels('label', Number(count));
await buildBankFile(side, { name: 'resume', role: 'flavor', labels, source: 'resume.txt' }, {
  home,
  dtype: 'fp16',
  chunkSize: Number(chunkSize),
  onChunk: (done) => process.stdout.write(`chunk ${done}\n`),
});
process.stdout.write('finished\n');
