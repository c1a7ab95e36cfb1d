import type { Command } from 'commander';
import { addonPath, ortLibraryDir } from '../../native/addon.js';
import { availableProviders, cudaProviderInstalled, defaultProviders, ortVersion } from '../../runtime/session.js';
import { modelHome } from '../../models/cache.js';
import { cudaReadiness } from '../../gpu/readiness.js';
import { packageVersion } from '../../util/package-root.js';

export function register(program: Command): void {
  program
    .command('info')
    .description('Show the engine build: ONNX Runtime version, execution providers, addon and model cache paths')
    .option('--json', 'print as JSON')
    .action((opts: { json?: boolean }) => {
      const cuda = cudaReadiness();
      const info = {
        img2prompt: packageVersion(),
        onnxruntime: ortVersion(),
        addon: addonPath(),
        ortLibraryDir: ortLibraryDir(),
        ortProviders: availableProviders(),
        cudaProviderInstalled: cudaProviderInstalled(),
        cudaUsable: cuda.usable ? 'yes' : `no: ${cuda.problems[0]}${cuda.problems.length > 1 ? ` (and ${cuda.problems.length - 1} more: \`img2prompt gpu install --check\`)` : ''}`,
        defaultProviders: defaultProviders(),
        modelHome: modelHome(),
      };
      if (opts.json) {
        process.stdout.write(JSON.stringify(info, null, 2) + '\n');
        return;
      }
      for (const [k, v] of Object.entries(info)) process.stdout.write(`${k.padEnd(22)} ${Array.isArray(v) ? v.join(', ') : v}\n`);
    });
}
