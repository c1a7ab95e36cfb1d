import cliProgress from 'cli-progress';
import { progressVariable } from '../config.js';

export interface Progress {
  /** Advance by `n` items (default 1). */
  tick(n?: number): void;
  /** Set the absolute count done (for callbacks that report totals). */
  update(done: number): void;
  /** Finish the bar; safe to call twice. */
  stop(): void;
}

/** A stream a display can draw on: a terminal (isTTY) gets a bar, anything else lines. */
export type ProgressStream = NodeJS.WritableStream & { isTTY?: boolean };

export interface ProgressOptions {
  /** Where to draw; default process.stderr. */
  stream?: ProgressStream;
  /** Seconds between lines when the stream is not a terminal; default 5. */
  lineEverySeconds?: number;
}

const silent: Progress = { tick() {}, update() {}, stop() {} };

/** 83 s → "1m23s"; 4000 s → "1h06m". */
function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * How far a job is: a progress bar with rate and ETA on an interactive terminal; where stderr is a
 * file or a pipe (CI logs, `2> log`, nohup), where a bar would be noise, one line every few seconds
 * instead, so a long run is never silent for minutes. `IMG2PROMPT_PROGRESS=0` turns both off,
 * `IMG2PROMPT_PROGRESS=1` forces the bar.
 */
export function createProgress(label: string, total: number, unit = 'items', options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  const forced = progressVariable();
  if (forced === '0' || total <= 0) return silent;
  if (forced === '1' || stream.isTTY === true) return barProgress(label, total, unit, stream);
  return lineProgress(label, total, unit, stream, (options.lineEverySeconds ?? 5) * 1000);
}

function barProgress(label: string, total: number, unit: string, stream: NodeJS.WritableStream): Progress {
  const bar = new cliProgress.SingleBar(
    {
      stream,
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

/**
 * `label: 1200/20000 images (6%), 41.3/s, ETA 6m47s` every `everyMs`, whether or not the count moved
 * (a stalled run shows as one), and a last line with the time taken when a line was printed at all: a
 * job shorter than one interval prints nothing.
 */
function lineProgress(label: string, total: number, unit: string, stream: NodeJS.WritableStream, everyMs: number): Progress {
  const started = Date.now();
  let done = 0;
  let printed = false;
  let stopped = false;
  const line = (end: string) => {
    const secs = (Date.now() - started) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    stream.write(`${label}: ${done}/${total} ${unit} (${Math.floor((100 * done) / total)}%), ${rate.toFixed(1)}/s, ${end}\n`);
    printed = true;
  };
  const timer = setInterval(() => {
    const secs = (Date.now() - started) / 1000;
    line(done > 0 ? `ETA ${duration(((total - done) * secs) / done)}` : 'ETA ?');
  }, everyMs);
  // A progress line must never keep the process alive.
  timer.unref();
  return {
    tick(n = 1) {
      this.update(done + n);
    },
    update(value: number) {
      done = value;
    },
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      if (printed) line(`${done >= total ? 'finished' : 'stopped'} after ${duration((Date.now() - started) / 1000)}`);
    },
  };
}

/**
 * Progress for the bank caches' `onProgress(bank, rowsDone, count)` callbacks: one display per bank
 * being built, finished as soon as its last row is in. The cache reports a chunk's last row twice (as
 * the encoder finishes it, and again once it is saved): a report for a bank that has just finished
 * draws nothing, so a bank gets one bar, not a second, full one.
 */
export function bankBuildProgress(options: ProgressOptions = {}): { onProgress(bank: string, rowsDone: number, count: number): void; stop(): void } {
  let current: string | undefined;
  let progress: Progress | undefined;
  let finished: string | undefined;
  const stop = () => {
    progress?.stop();
    progress = undefined;
    current = undefined;
  };
  return {
    onProgress(bank, rowsDone, count) {
      if (bank === finished && rowsDone >= count) return;
      finished = undefined;
      if (bank !== current) {
        stop();
        progress = createProgress(`embedding ${bank}`, count, 'labels', options);
        current = bank;
      }
      progress!.update(rowsDone);
      if (rowsDone >= count) {
        stop();
        finished = bank;
      }
    },
    stop,
  };
}

/**
 * Progress of a run in phases (predict: the modality-gap sample's encoding, then the images), one display
 * per phase, labelled by `labelOf`. Each display is created on its phase's first report, so the notices
 * printed before it do not cut through it.
 */
export function phasedProgress<P extends string>(labelOf: (phase: P) => string, options: ProgressOptions = {}): { onProgress(done: number, total: number, phase: P): void; stop(): void } {
  let display: Progress | undefined;
  let current: P | undefined;
  return {
    onProgress(done, total, phase) {
      if (phase !== current) {
        display?.stop();
        display = createProgress(labelOf(phase), total, 'images', options);
        current = phase;
      }
      display!.update(done);
    },
    stop() {
      display?.stop();
    },
  };
}
