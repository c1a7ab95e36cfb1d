#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { register as registerModels } from './commands/models.js';
import { register as registerEmbed } from './commands/embed.js';
import { register as registerValidate } from './commands/validate.js';
import { register as registerScore } from './commands/score.js';
import { register as registerDemo } from './commands/demo.js';
import { register as registerInfo } from './commands/info.js';
import { register as registerEmbedImages } from './commands/embed-images.js';
import { register as registerLabels } from './commands/labels.js';
import { register as registerInterrogate } from './commands/interrogate.js';
import { register as registerPredict } from './commands/predict.js';
import { register as registerFitMap } from './commands/fit-map.js';
import { register as registerFitWeights } from './commands/fit-weights.js';
import { register as registerGpu } from './commands/gpu.js';
import { addPrecisionOption } from './precision-option.js';
import { register as registerCaption } from './commands/caption.js';
import { register as registerServe } from './commands/serve.js';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { packageVersion } from '../util/package-root.js';
import { installInterruptHandlers } from './interrupt.js';
import { onNotice } from '../util/notices.js';

/** Exit codes: 0 ok, 1 failure (the message says why), 2 usage error. */
export function buildProgram(): Command {
  const program = new Command();
  program
    .name('img2prompt')
    .description(
      'Predict the Stable Diffusion prompt behind an image and write Kaggle "Image to Prompts" submissions.\n' +
        'Models live in $IMG2PROMPT_HOME (default ~/.cache/img2prompt); start with `img2prompt models pull minilm`.',
    )
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const register of [registerModels, registerEmbed, registerEmbedImages, registerLabels, registerInterrogate, registerCaption, registerPredict, registerFitMap, registerFitWeights, registerValidate, registerScore, registerDemo, registerInfo, registerGpu, registerServe]) register(program);
  addPrecisionOption(program);
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

export async function main(argv: string[]): Promise<number> {
  installInterruptHandlers();
  // The library's notices (a damaged cache rebuilt, CUDA not usable, ...) go to stderr, one line each.
  const stopNotices = onNotice((message) => process.stderr.write(`warning: ${message}\n`));
  try {
    await buildProgram().parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version arrive here too, with exit code 0.
      return err.exitCode === 0 ? 0 : 2;
    }
    const message = err instanceof Img2PromptError ? err.message : errorMessage(err);
    process.stderr.write(`img2prompt: ${message}\n`);
    if (process.env.IMG2PROMPT_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return 1;
  } finally {
    stopNotices();
  }
}

main(process.argv).then((code) => {
  process.exitCode = code;
});
