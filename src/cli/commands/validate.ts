import type { Command } from 'commander';
import { Img2PromptError } from '../../util/errors.js';
import { imageIdsInDir, readIdsFile, validateSubmission, type ValidationReport } from '../../submission/validate.js';
import { listLimited } from '../list-limited.js';
import type { ImageInputCliOptions } from '../input-images.js';
import { ALLOW_SVG_OPTION } from '../options.js';
import type { CliContext } from '../context.js';

const SHOWN = 20;

/** Human-readable report: a verdict line, then the first problems (or warnings) one per line. */
export function formatValidation(file: string, report: ValidationReport): string {
  const lines: string[] = [];
  const size = `${report.images} images, ${report.rows} rows`;
  if (report.valid) lines.push(`${file}: valid submission (${size})`);
  else lines.push(`${file}: INVALID submission, ${report.problemCount} problem${report.problemCount === 1 ? '' : 's'} (${size})`);
  lines.push(...listLimited(report.problems, report.problemCount, SHOWN));
  if (report.warnings.length > 0) {
    lines.push(`warnings (${report.warnings.length}):`);
    lines.push(...listLimited(report.warnings, report.warnings.length, SHOWN));
  }
  return lines.join('\n') + '\n';
}

export function register(program: Command, cli: CliContext): void {
  program
    .command('validate')
    .description('check a Kaggle submission CSV: header, 384 rows per image, finite values, expected image ids')
    .argument('<submission>', 'submission CSV (imgId_eId,val)')
    .option('--images <dir>', 'expect exactly the images in this folder, as predict reads them (ids = file names without extension)')
    .option(...ALLOW_SVG_OPTION)
    .option('--ids <file>', 'expect exactly the ids listed in this file, one per line')
    .option('--json', 'print the report as JSON')
    .action(async (submission: string, opts: { images?: string; ids?: string; json?: boolean } & ImageInputCliOptions) => {
      if (opts.images && opts.ids) throw new Img2PromptError(undefined, 'give either --images or --ids, not both');
      const imageIds = opts.images ? await imageIdsInDir(opts.images, { allowSvg: opts.allowSvg }) : opts.ids ? await readIdsFile(opts.ids) : undefined;
      const report = await validateSubmission(submission, { imageIds });
      cli.out(opts.json ? JSON.stringify({ file: submission, ...report }, null, 2) + '\n' : formatValidation(submission, report));
      if (!report.valid) cli.fail();
    });
}
