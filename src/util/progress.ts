import cliProgress from 'cli-progress';

export interface Progress {
  /** Advance by `n` items (default 1). */
  tick(n?: number): void;
  /** Set the absolute count done (for callbacks that report totals). */
  update(done: number): void;
  /** Finish the bar; safe to call twice. */
  stop(): void;
}

const silent: Progress = { tick() {}, update() {}, stop() {} };

/**
 * A progress bar with rate and ETA on an interactive terminal (stderr), nothing otherwise, so logs and
 * CI output stay clean. `IMG2PROMPT_PROGRESS=0|1` forces it off or on.
 */
export function createProgress(label: string, total: number, unit = 'items'): Progress {
  const forced = process.env.IMG2PROMPT_PROGRESS;
  const enabled = forced === '1' || (forced !== '0' && process.stderr.isTTY === true);
  if (!enabled || total <= 0) return silent;
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} {bar} {percentage}% | {value}/{total} ${unit} | {rate}/s | ETA {eta_formatted}`,
      hideCursor: true,
      etaBuffer: 50,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  let done = 0;
  bar.start(total, 0, { rate: '0' });
  let stopped = false;
  return {
    tick(n = 1) {
      this.update(done + n);
    },
    update(value: number) {
      done = value;
      const secs = (Date.now() - started) / 1000;
      bar.update(done, { rate: secs > 0 ? (done / secs).toFixed(1) : '0' });
    },
    stop() {
      if (!stopped) bar.stop();
      stopped = true;
    },
  };
}
