import type { Command } from 'commander';
import { score, type ScoreResult } from '../../submission/score.js';
import { openMiniLMEmbedder } from '../../submission/default-embedder.js';
import { parsePositiveInt } from '../options.js';
import { listLimited } from '../list-limited.js';
import type { CliContext } from '../context.js';

/** Per-image table, then missing/extra ids, then the mean (the number people look for) last. */
export function formatScore(result: ScoreResult): string {
  const width = Math.max(5, ...result.images.map((r) => r.imgId.length));
  const lines = [`${'imgId'.padEnd(width)}  ${'cosine'.padStart(7)}`];
  for (const r of result.images) {
    lines.push(`${r.imgId.padEnd(width)}  ${r.cosine.toFixed(4).padStart(7)}${r.missing ? '  (missing: scored 0)' : ''}`);
  }
  if (result.missing.length > 0) {
    lines.push(`missing from the prediction (scored 0): ${result.missing.length}`);
    lines.push(...listLimited(result.missing, result.missing.length, 20));
  }
  if (result.extra.length > 0) {
    lines.push(`in the prediction but not in the truth (ignored): ${result.extra.length}`);
    lines.push(...listLimited(result.extra, result.extra.length, 20));
  }
  lines.push(`mean cosine: ${result.mean.toFixed(4)} over ${result.images.length} images`);
  return lines.join('\n') + '\n';
}

export function register(program: Command, cli: CliContext): void {
  program
    .command('score')
    .description("Kaggle's metric: mean cosine of all-MiniLM-L6-v2 embeddings, prediction vs truth (prompts CSVs or submissions)")
    .requiredOption('--pred <csv>', 'predicted prompts CSV (imgId,prompt) or submission (imgId_eId,val)')
    .requiredOption('--truth <csv>', 'true prompts CSV or submission')
    .option('--batch-size <n>', 'prompts per inference batch when embedding (default 64)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { pred: string; truth: string; batchSize?: string; json?: boolean }) => {
      const batchSize = parsePositiveInt('--batch-size', opts.batchSize);
      const result = await score(opts.pred, opts.truth, openMiniLMEmbedder, { batchSize });
      cli.out(opts.json ? JSON.stringify(result, null, 2) + '\n' : formatScore(result));
    });
}
