/**
 * The CLI as a library: `main(args)` runs one command line and resolves to its exit code, so a test or a
 * host program can run `img2prompt` in-process. Nothing runs on import; bin.ts is the executable.
 */
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
import { register as registerCaption } from './commands/caption.js';
import { addPrecisionOption } from './options.js';
import { CliContext, type CliIo } from './context.js';
import { register as registerServe } from './commands/serve.js';
import { register as registerMerge } from './commands/merge.js';
import { register as registerFitHead } from './commands/fit-head.js';
import { register as registerEval } from './commands/eval.js';
import { register as registerQueue } from './commands/queue.js';
import { register as registerWorker } from './commands/worker.js';
import { Img2PromptError, errorMessage } from '../util/errors.js';
import { packageVersion } from '../util/package-root.js';
import { installInterruptHandlers } from './interrupt.js';
import { onNotice } from '../util/notices.js';
import { debugVariable, precisionVariable, setPrecisionVariable } from '../config.js';

export type { CliIo } from './context.js';

/** Exit codes: 0 ok, 1 failure (the message says why), 2 usage error. */
export function buildProgram(cli: CliContext): Command {
  const program = new Command();
  program
    .name('img2prompt')
    .description(
      'Predict the Stable Diffusion prompt behind an image and write Kaggle "Image to Prompts" submissions.\n' +
        'Models live in $IMG2PROMPT_HOME (default ~/.cache/img2prompt); start with `img2prompt models pull minilm`.',
    )
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    // Set before the commands are added, which inherit both: usage errors, --help and --version are
    // thrown (never process.exit) and written to this run's streams.
    .exitOverride()
    .configureOutput({ writeOut: (text) => cli.out(text), writeErr: (text) => cli.err(text) });
  for (const register of [registerModels, registerEmbed, registerEmbedImages, registerLabels, registerInterrogate, registerCaption, registerPredict, registerFitMap, registerFitWeights, registerFitHead, registerEval, registerValidate, registerMerge, registerScore, registerDemo, registerInfo, registerGpu, registerServe, registerQueue, registerWorker]) {
    register(program, cli);
  }
  addPrecisionOption(program);
  return program;
}

/**
 * Runs `img2prompt <args>` (the arguments after the program name, as in `process.argv.slice(2)`) and
 * resolves to the exit code; it never calls process.exit nor sets process.exitCode. Output goes to `io`;
 * without it, to the process's stdout and stderr, and Ctrl-C is handled as the executable does (see
 * interrupt.ts). Runs given an `io` leave the process's signal handling alone.
 */
export async function main(args: readonly string[], io?: CliIo): Promise<number> {
  if (!io) installInterruptHandlers();
  const cli = new CliContext(io ?? { stdout: process.stdout, stderr: process.stderr }, args);
  // The library's notices (a damaged cache rebuilt, CUDA not usable, ...) go to stderr, one line each.
  const stopNotices = onNotice((message) => cli.err(`warning: ${message}\n`));
  // --precision is handed on through the environment; a run puts back what it found.
  const precision = precisionVariable();
  try {
    await buildProgram(cli).parseAsync([...args], { from: 'user' });
    return cli.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version arrive here too, with exit code 0.
      return err.exitCode === 0 ? 0 : 2;
    }
    const message = err instanceof Img2PromptError ? err.message : errorMessage(err);
    cli.err(`img2prompt: ${message}\n`);
    if (debugVariable() && err instanceof Error) cli.err(`${err.stack}\n`);
    return 1;
  } finally {
    stopNotices();
    setPrecisionVariable(precision);
  }
}
