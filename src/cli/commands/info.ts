import type { Command } from 'commander';
import { addonPath, ortLibraryDir } from '../../native/addon.js';
import { availableProviders, cudaProviderInstalled, defaultProviders, ortVersion } from '../../runtime/session.js';
import { cudaStatus, providerReport } from '../../runtime/cuda-status.js';
import { modelHome } from '../../models/cache.js';
import { packageVersion } from '../../util/package-root.js';
import type { CliContext } from '../context.js';

export function register(program: Command, cli: CliContext): void {
  program
    .command('info')
    .description('Show the engine build: ONNX Runtime version, execution providers (compiled in, and usable here or why not), addon and model cache paths')
    .option('--json', 'print as JSON')
    .action((opts: { json?: boolean }) => {
      const providers = providerReport();
      const cuda = cudaStatus();
      const info = {
        img2prompt: packageVersion(),
        onnxruntime: ortVersion(),
        addon: addonPath(),
        ortLibraryDir: ortLibraryDir(),
        // What ORT was compiled with: not what can run here (see providers).
        ortProviders: availableProviders(),
        providers,
        cudaProviderInstalled: cudaProviderInstalled(),
        cudaUsable: cuda.usable ? 'yes' : `no: ${cuda.reason}`,
        defaultProviders: defaultProviders(),
        modelHome: modelHome(),
      };
      if (opts.json) {
        cli.out(JSON.stringify(info, null, 2) + '\n');
        return;
      }
      const rows: [string, string][] = [
        ['img2prompt', info.img2prompt],
        ['onnxruntime', info.onnxruntime],
        ['addon', info.addon],
        ['ortLibraryDir', info.ortLibraryDir],
        ['ortProviders', `${info.ortProviders.join(', ')} (compiled in)`],
        ...providers.map((p): [string, string] => [p.name, p.usable ? 'usable' : `not usable: ${p.reason}`]),
        ['cudaProviderInstalled', String(info.cudaProviderInstalled)],
        ['cudaUsable', info.cudaUsable],
        ['defaultProviders', info.defaultProviders.join(', ')],
        ['modelHome', info.modelHome],
      ];
      for (const [k, v] of rows) cli.out(`${k.padEnd(26)} ${v}\n`);
    });
}
