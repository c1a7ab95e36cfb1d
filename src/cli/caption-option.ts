import type { Command } from 'commander';

/** --caption-model, shared by interrogate and predict: the captioner whose caption heads each prompt. */
export function addCaptionModelOption(cmd: Command): Command {
  return cmd.option(
    '--caption-model <name|none>',
    'captioner (models pull blip-large, or a folder) whose caption heads every interrogator prompt and feeds the captioner member; none: no caption',
    'none',
  );
}

/** The captionModel option of the engines: undefined for none. */
export function captionModelFrom(opts: { captionModel?: string }): string | undefined {
  return opts.captionModel === undefined || opts.captionModel === 'none' ? undefined : opts.captionModel;
}
