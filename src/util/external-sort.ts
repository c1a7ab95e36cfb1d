import { createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

/**
 * Items sorted by a string key (code-unit order, as `<` compares strings, whatever the locale) with
 * memory bounded by `runSize` items, however many there are: a folder of millions of images is listed
 * in name order without holding its names. Up to `runSize` items are sorted in memory (one run: no
 * file at all, the common case); beyond that each full run is sorted and written to a temp file as
 * JSON lines, and the runs are merged. Items must survive JSON. Equal keys keep their input order.
 * The temp files are removed when the sequence ends, fails or is left early.
 */
export async function* externalSort<T>(items: AsyncIterable<T>, key: (item: T) => string, options: { runSize?: number } = {}): AsyncGenerator<T, void, undefined> {
  const runSize = options.runSize ?? 65_536;
  let run: T[] = [];
  let dir: string | undefined;
  const runs: string[] = [];
  const byKey = (a: T, b: T): number => compareKeys(key(a), key(b));
  try {
    for await (const item of items) {
      run.push(item);
      if (run.length < runSize) continue;
      dir ??= await fs.mkdtemp(path.join(os.tmpdir(), 'img2prompt-sort-'));
      runs.push(await writeRun(dir, runs.length, run.sort(byKey)));
      run = [];
    }
    run.sort(byKey); // Array.prototype.sort is stable
    if (runs.length === 0) {
      yield* run;
      return;
    }
    // The last, partial run stays in memory as one more source of the merge.
    yield* mergeRuns([...runs.map((file) => readRun<T>(file)), arrayRun(run)], key);
  } finally {
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  }
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function writeRun<T>(dir: string, index: number, items: readonly T[]): Promise<string> {
  const file = path.join(dir, `run-${index}.jsonl`);
  const handle = await fs.open(file, 'w');
  try {
    // JSON escapes newlines, so a line is an item whatever its strings hold.
    for (let i = 0; i < items.length; i += 4096) {
      await handle.write(items.slice(i, i + 4096).map((item) => JSON.stringify(item) + '\n').join(''));
    }
  } finally {
    await handle.close();
  }
  return file;
}

async function* readRun<T>(file: string): AsyncGenerator<T, void, undefined> {
  const lines = readline.createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const line of lines) yield JSON.parse(line) as T;
}

async function* arrayRun<T>(items: readonly T[]): AsyncGenerator<T, void, undefined> {
  yield* items;
}

/**
 * K-way merge through a binary heap of each run's next item. Ties go to the earlier run, whose items
 * came first in the input, so the whole sort is stable.
 */
async function* mergeRuns<T>(sources: AsyncGenerator<T, void, undefined>[], key: (item: T) => string): AsyncGenerator<T, void, undefined> {
  interface Head { item: T; key: string; source: number }
  const heap: Head[] = [];
  const before = (a: Head, b: Head): boolean => a.key < b.key || (a.key === b.key && a.source < b.source);
  const push = (h: Head): void => {
    heap.push(h);
    for (let i = heap.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  };
  const pop = (): Head => {
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      for (let i = 0; ;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let least = i;
        if (l < heap.length && before(heap[l]!, heap[least]!)) least = l;
        if (r < heap.length && before(heap[r]!, heap[least]!)) least = r;
        if (least === i) break;
        [heap[i], heap[least]] = [heap[least]!, heap[i]!];
        i = least;
      }
    }
    return top;
  };
  const advance = async (source: number): Promise<void> => {
    const next = await sources[source]!.next();
    if (!next.done) push({ item: next.value, key: key(next.value), source });
  };
  try {
    for (let s = 0; s < sources.length; s++) await advance(s);
    while (heap.length > 0) {
      const top = pop();
      yield top.item;
      await advance(top.source);
    }
  } finally {
    for (const source of sources) await source.return(undefined);
  }
}
