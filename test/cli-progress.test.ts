import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { bankBuildProgress, createProgress } from '../src/cli/progress.js';

/** A non-terminal stream (a pipe or a log file, as stderr is under nohup or in CI) that keeps what it was given. */
function logStream(): Writable & { isTTY: false; lines: () => string[] } {
  let text = '';
  const w = new Writable({
    write(chunk, _enc, done) {
      text += String(chunk);
      done();
    },
  });
  return Object.assign(w, { isTTY: false as const, lines: () => text.split('\n').filter((l) => l !== '') });
}

const savedProgress = process.env.IMG2PROMPT_PROGRESS;
beforeEach(() => {
  vi.useFakeTimers();
  delete process.env.IMG2PROMPT_PROGRESS;
});
afterEach(() => {
  vi.useRealTimers();
  if (savedProgress === undefined) delete process.env.IMG2PROMPT_PROGRESS;
  else process.env.IMG2PROMPT_PROGRESS = savedProgress;
});

describe('progress when stderr is not a terminal', () => {
  it('prints a line every 5 seconds with count, rate and ETA, even while stalled, and a last line with the time taken', () => {
    const stream = logStream();
    const p = createProgress('predict', 20_000, 'images', { stream });
    vi.advanceTimersByTime(4_999);
    expect(stream.lines()).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(stream.lines()).toEqual(['predict: 0/20000 images (0%), 0.0/s, ETA ?']);
    p.update(1_200);
    vi.advanceTimersByTime(5_000);
    p.tick(300);
    vi.advanceTimersByTime(5_000); // 1500 in 15 s: 100/s, 18500 to go
    p.update(20_000);
    vi.advanceTimersByTime(1_000);
    p.stop();
    p.stop();
    vi.advanceTimersByTime(60_000); // nothing after stop
    expect(stream.lines()).toEqual([
      'predict: 0/20000 images (0%), 0.0/s, ETA ?',
      'predict: 1200/20000 images (6%), 120.0/s, ETA 2m37s',
      'predict: 1500/20000 images (7%), 100.0/s, ETA 3m05s',
      'predict: 20000/20000 images (100%), 1250.0/s, finished after 16s',
    ]);
  });

  it('says "stopped" when a job ends short, and prints nothing at all for a job shorter than one interval', () => {
    const long = logStream();
    const p = createProgress('labels', 100, 'labels', { stream: long, lineEverySeconds: 2 });
    p.update(40);
    vi.advanceTimersByTime(2_000);
    p.stop();
    expect(long.lines()).toEqual(['labels: 40/100 labels (40%), 20.0/s, ETA 3s', 'labels: 40/100 labels (40%), 20.0/s, stopped after 2s']);

    const short = logStream();
    const q = createProgress('embed', 7, 'prompts', { stream: short });
    q.update(7);
    vi.advanceTimersByTime(4_000);
    q.stop();
    expect(short.lines()).toEqual([]);
  });

  it('is off with IMG2PROMPT_PROGRESS=0', () => {
    process.env.IMG2PROMPT_PROGRESS = '0';
    const stream = logStream();
    const p = createProgress('predict', 10, 'images', { stream });
    vi.advanceTimersByTime(30_000);
    p.stop();
    expect(stream.lines()).toEqual([]);
  });
});

describe('bank build progress', () => {
  /** A terminal stream that keeps what the bar drew. */
  function terminal(): Writable & { isTTY: true; columns: number; text: () => string } {
    let text = '';
    const w = new Writable({
      write(chunk, _enc, done) {
        text += String(chunk);
        done();
      },
    });
    return Object.assign(w, { isTTY: true as const, columns: 120, cursorTo() {}, clearLine() {}, moveCursor() {}, text: () => text });
  }

  it('draws one bar per bank, even when the cache reports the last row twice (from the encoder, then after the chunk is saved)', () => {
    process.env.IMG2PROMPT_PROGRESS = '1';
    const stream = terminal();
    const progress = bankBuildProgress({ stream });
    // The order buildBankFile reports in for a one-chunk bank: the start, the encoder's count, the saved chunk.
    progress.onProgress('artists', 0, 10);
    progress.onProgress('artists', 10, 10);
    progress.onProgress('artists', 10, 10);
    progress.onProgress('flavors', 0, 4);
    progress.onProgress('flavors', 4, 4);
    progress.stop();
    // A bar is started by drawing it at 0; a second bar for artists would draw 0/10 again after 10/10.
    expect(stream.text().match(/embedding artists [^\n]*? 0\/10 labels/g)).toHaveLength(1);
    expect(stream.text().match(/embedding artists [^\n]*? 10\/10 labels/g)).toHaveLength(1);
    expect(stream.text().match(/embedding flavors [^\n]*? 0\/4 labels/g)).toHaveLength(1);
  });
});
