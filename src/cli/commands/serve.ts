import type { Command } from 'commander';
import { DEFAULT_CLIP_MODEL } from '../../clip/model.js';
import { defaultLabelsDir } from '../../interrogate/label-banks.js';
import { parseBuiltInMemberList } from '../../predict/members.js';

import { createServer } from '../../server/app.js';
import { SERVER_DEFAULTS } from '../../server/options.js';
import { Img2PromptError } from '../../util/errors.js';
import { addCaptionModelOption, captionModelFrom, collectRepeated, parsePositiveInt } from '../options.js';
import type { CliContext } from '../context.js';
import { releaseInterruptHandlers } from '../interrupt.js';

interface ServeCliOptions {
  host: string;
  port: string;
  model: string;
  captionModel: string;
  members?: string;
  labelsDir: string;
  promptsBank?: string[];
  predict: boolean;
  maxBatch: string;
  maxWaitMs: string;
  queue: string;
  timeoutMs: string;
  token?: string;
  cors?: string;
  maxBodyMb: string;
}

function nonNegativeInt(option: string, text: string): number {
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new Img2PromptError(undefined, `${option} must be an integer >= 0, got "${text}"`);
  return Number(text);
}

export function register(program: Command, cli: CliContext): void {
  addCaptionModelOption(
    program
      .command('serve')
      .description('HTTP API (JSON, OpenAPI at /openapi.json): interrogate, predict, embeddings and similarity, with the images of concurrent requests batched together')
      .option('--host <host>', 'interface to bind (anything but loopback exposes the API to the network)', SERVER_DEFAULTS.host)
      .option('--port <port>', 'TCP port (0: a free one, printed at start)', String(SERVER_DEFAULTS.port))
      .option('--model <name>', 'CLIP model in the cache (models pull/import/random) or a model folder', DEFAULT_CLIP_MODEL)
      .option('--members <list>', 'predict members, comma-separated: knn, interrogator, captioner (map cannot be served) [default: knn,interrogator (+captioner with a caption model)]')
      .option('--labels-dir <dir>', 'folder with the built-in label lists', defaultLabelsDir())
      .option('--prompts-bank <file>', 'predict: prompt corpus file, one prompt per line; repeat for more [default: the shipped corpus]', collectRepeated)
      .option('--no-predict', 'do not open the predict engine (POST /v1/predict answers 404; starts faster, uses less memory)')
      .option('--max-batch <n>', 'most images per model batch', String(SERVER_DEFAULTS.maxBatch))
      .option('--max-wait-ms <ms>', 'longest the first image of a batch waits for more', String(SERVER_DEFAULTS.maxWaitMs))
      .option('--queue <n>', 'most images waiting for a batch (429 beyond)', String(SERVER_DEFAULTS.queue))
      .option('--timeout-ms <ms>', 'per-request deadline (504 beyond)', String(SERVER_DEFAULTS.timeoutMs))
      .option('--token <token>', 'require `Authorization: Bearer <token>` on every /v1 route [default: $IMG2PROMPT_TOKEN when set]')
      .option('--cors <origin>', 'allow browser calls from this origin (* for any) [default: no CORS]')
      .option('--max-body-mb <n>', 'largest request body in MiB (413 beyond)', String(SERVER_DEFAULTS.maxBodyMb)),
  ).action(async (opts: ServeCliOptions) => {
    const maxBodyMb = Number(opts.maxBodyMb);
    if (!(Number.isFinite(maxBodyMb) && maxBodyMb > 0)) throw new Img2PromptError(undefined, `--max-body-mb must be a number > 0, got "${opts.maxBodyMb}"`);
    const server = createServer({
      host: opts.host,
      port: nonNegativeInt('--port', opts.port),
      model: opts.model,
      captionModel: captionModelFrom(opts),
      members: opts.members === undefined ? undefined : parseBuiltInMemberList(opts.members),
      labelsDir: opts.labelsDir,
      promptsBank: opts.promptsBank,
      predict: opts.predict,
      maxBatch: parsePositiveInt('--max-batch', opts.maxBatch),
      maxWaitMs: nonNegativeInt('--max-wait-ms', opts.maxWaitMs),
      queue: parsePositiveInt('--queue', opts.queue),
      timeoutMs: parsePositiveInt('--timeout-ms', opts.timeoutMs),
      // From the environment, the token stays out of `ps` listings.
      token: opts.token ?? (process.env.IMG2PROMPT_TOKEN || undefined),
      cors: opts.cors,
      maxBodyMb,
      onNotice: (message) => cli.err(`${message}\n`),
    });
    // The signals stop the server gracefully from now on: in-flight requests finish, then exit 0.
    releaseInterruptHandlers();
    const stopped = new Promise<void>((resolve, reject) => {
      const stop = (signal: NodeJS.Signals) => {
        process.stderr.write(`img2prompt serve: ${signal}: finishing in-flight requests, then exiting\n`);
        // A second signal does not wait.
        process.once(signal, () => process.exit(1));
        server.close().then(resolve, reject);
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    const { url } = await server.listen();
    process.stderr.write(`img2prompt serve: listening on ${url} (loading models; ${url}/readyz says when ready)\n`);
    let outcome: 'ready' | 'stopped';
    try {
      outcome = await Promise.race([server.ready.then(() => 'ready' as const), stopped.then(() => 'stopped' as const)]);
    } catch (err) {
      await server.close().catch(() => {});
      throw err;
    }
    if (outcome === 'ready') {
      process.stderr.write(`img2prompt serve: ready on ${url}${server.options.token ? ' (token required)' : ''}; web page: ${url}/\n`);
      await stopped;
    }
    process.stderr.write('img2prompt serve: stopped\n');
  });
}
