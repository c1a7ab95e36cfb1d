import { Option, type Command } from 'commander';
import { PRECISIONS } from '../runtime/precision.js';
import { setPrecisionVariable } from '../config.js';

/** Commands that run a CLIP or MiniLM tower (for `labels`, its `build`). */
const TOWER_COMMANDS = ['embed', 'embed-images', 'labels build', 'interrogate', 'predict', 'fit-map', 'fit-weights', 'score', 'demo'];

/**
 * Gives every tower-running command `--precision fp32|fp16` and hands the choice to the model
 * openers through IMG2PROMPT_PRECISION (set before the action runs), so no command has to thread it
 * through its own options, and child processes they start inherit it.
 */
export function addPrecisionOption(program: Command): void {
  for (const path of TOWER_COMMANDS) {
    let cmd: Command | undefined = program;
    for (const name of path.split(' ')) cmd = cmd?.commands.find((c) => c.name() === name);
    cmd?.addOption(
      new Option('--precision <type>', 'tower precision for graphs built from a checkpoint (default: fp16 when sessions try CUDA first, fp32 on the CPU; or $IMG2PROMPT_PRECISION)').choices(PRECISIONS),
    );
  }
  program.hook('preAction', (_program, action) => {
    const precision = action.opts().precision as string | undefined;
    if (precision !== undefined) setPrecisionVariable(precision);
  });
}
