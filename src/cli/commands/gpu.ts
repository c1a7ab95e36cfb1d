import type { Command } from 'commander';
import { installCudaProvider } from '../../gpu/install.js';
import { cudaReadiness, type CudaReadiness } from '../../gpu/readiness.js';
import type { PullEvent } from '../../models/pull.js';
import type { Progress } from '../progress.js';
import type { CliContext } from '../context.js';

/** The readiness report: every CUDA library and every library that did not resolve, then the verdict. */
export function formatReadiness(r: CudaReadiness): string {
  const lines = [`provider      ${r.providerInstalled ? 'installed' : 'not installed'} in ${r.ortDir}${r.cudaMajor ? ` (built for CUDA ${r.cudaMajor})` : ''}`];
  lines.push(`devices       ${r.devices.length ? r.devices.join(', ') : 'none'}`);
  for (const lib of r.libraries) {
    if (!lib.cuda && lib.status === 'found') continue;
    const where = lib.status === 'found' ? `${lib.path} (${lib.via})` : lib.status === 'off-path' ? `not on the loader's path: ${lib.path}` : 'not found';
    // Remedies of required libraries are in the problem list below; an optional one has only this line.
    const tail = lib.optional && lib.remedy ? `: ${lib.remedy}` : '';
    lines.push(`${lib.status.padEnd(8)} ${lib.soname.padEnd(24)} ${where}${lib.optional ? ' [optional]' : ''}${tail}`);
  }
  lines.push(r.usable ? 'CUDA usable   yes' : `CUDA usable   no\n${r.problems.map((p) => `  - ${p}`).join('\n')}`);
  return lines.join('\n') + '\n';
}

function reporter(cli: CliContext): { onProgress: (e: PullEvent) => void; stop: () => void } {
  let bar: Progress | undefined;
  let shown = 0;
  return {
    onProgress(e) {
      if (e.kind === 'stage') {
        bar?.stop();
        bar = undefined;
        cli.err(`${e.message}\n`);
        return;
      }
      bar ??= cli.progress('onnxruntime-gpu', e.total ?? 0, 'bytes');
      if (e.received > shown) {
        bar.tick(e.received - shown);
        shown = e.received;
      }
    },
    stop: () => bar?.stop(),
  };
}

export function register(program: Command, cli: CliContext): void {
  const gpu = program.command('gpu').description('CUDA support: install ORT\'s CUDA provider and check what it needs');
  gpu
    .command('install')
    .description(
      'Download the onnxruntime-gpu wheel of the ONNX Runtime version in use from PyPI, put its CUDA provider libraries ' +
        'beside libonnxruntime.so.1 and check that every CUDA/cuDNN library they need resolves (exit 1 while CUDA is not usable)',
    )
    .option('--check', 'only report what is present and missing; download nothing')
    .option('--ort-dir <dir>', 'folder of the libonnxruntime.so.1 to install beside (default: onnxruntime-node\'s)')
    .option('--keep-wheel', 'keep the downloaded wheel in $IMG2PROMPT_HOME/downloads')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { check?: boolean; ortDir?: string; keepWheel?: boolean; json?: boolean }) => {
      let readiness: CudaReadiness;
      let installed: object | undefined;
      if (opts.check) {
        readiness = cudaReadiness({ ortDir: opts.ortDir });
      } else {
        const progress = reporter(cli);
        try {
          const result = await installCudaProvider({ ortDir: opts.ortDir, keepWheel: opts.keepWheel, onProgress: progress.onProgress });
          readiness = result.readiness;
          installed = { wheel: result.wheel.filename, downloaded: result.downloaded, libraries: result.libraries };
          cli.err(`installed ${result.libraries.map((l) => l.path).join(', ')} from ${result.wheel.filename}\n`);
        } finally {
          progress.stop();
        }
      }
      cli.out(opts.json ? JSON.stringify({ ...(installed && { installed }), ...readiness }, null, 2) + '\n' : formatReadiness(readiness));
      if (!readiness.usable) {
        cli.err(`img2prompt: CUDA is not usable yet: ${readiness.problems[0]}${readiness.problems.length > 1 ? ` (and ${readiness.problems.length - 1} more, listed above)` : ''}\n`);
        cli.fail();
      }
    });
}
