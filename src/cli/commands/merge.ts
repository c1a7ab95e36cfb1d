import type { Command } from 'commander';
import { Option } from 'commander';
import { mergeParts } from '../../submission/merge-parts.js';
import { imageIdsInDir, readIdsFile } from '../../submission/validate.js';
import { withClaimedOutputs } from '../../util/output-claim.js';
import { ALLOW_SVG_OPTION } from '../options.js';
import type { CliContext } from '../context.js';

interface MergeCliOptions {
  output: string;
  images?: string;
  ids?: string;
  allowSvg?: boolean;
}

export function register(program: Command, cli: CliContext): void {
  program
    .command('merge')
    .description('Put the parts of a sharded run (--shard I/N) together: submissions, or prompts CSVs → one file, the same bytes as one unsharded run')
    .argument('<parts...>', 'the parts: all submissions (imgId_eId,val) or all prompts CSVs (imgId,prompt)')
    .requiredOption('-o, --output <file>', 'merged file to write')
    .addOption(new Option('--images <dir>', 'the folder the run read: every image in it must be in a part, and rows follow its order (as predict DIR writes them)').conflicts('ids'))
    .option('--ids <file>', 'the expected image ids, one a line, in the order to write')
    .option(...ALLOW_SVG_OPTION)
    .addHelpText(
      'after',
      `
Every image must be in exactly one part. Given --images or --ids, an id missing from every part (in a
submission) or not expected is refused, naming it; rows are written in that folder's (or file's) order.
Without them, rows are written in id order, which is the order of 'predict DIR' when DIR's images all
have the same extension.`,
    )
    .action(async (parts: string[], opts: MergeCliOptions) => {
      const expectedIds = opts.images !== undefined ? await imageIdsInDir(opts.images, { allowSvg: opts.allowSvg }) : opts.ids !== undefined ? await readIdsFile(opts.ids) : undefined;
      await withClaimedOutputs([opts.output], { createFolders: true }, async () => {
        const { kind, images } = await mergeParts(parts, opts.output, { expectedIds });
        cli.err(`${parts.length} ${kind} parts → ${opts.output} (${images} images)\n`);
      });
    });
}
