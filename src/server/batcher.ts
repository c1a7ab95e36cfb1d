/**
 * Cross-request batching. Requests hand their images to a lane (one lane per engine and per set of run
 * options that must be the same for a whole engine run, e.g. interrogate/fast); the images of a lane
 * wait until `maxBatch` of them are queued or `maxWaitMs` has passed since the first one came, then
 * go through the engine together in one run. Each result goes back to the request it came from, in
 * that request's order.
 *
 * One batch runs at a time, whatever the lane: the engines share the machine's cores (and the GPU),
 * so two runs side by side would only slow each other down.
 */
import { HttpError } from './errors.js';

/** What a lane does with one batch: results aligned with `items` (a per-item failure is a result too). */
export interface Lane<T, R> {
  /** Items under the same key may share an engine run. */
  key: string;
  /** Names the lane in metrics (e.g. "interrogate"); several keys may share a name. */
  name: string;
  run(items: readonly T[]): Promise<R[]>;
}

interface Job<T, R> {
  item: T;
  ticket: Ticket<R>;
  position: number;
}

/** One submit(): its items' results, filled in as their batches finish. */
interface Ticket<R> {
  results: R[];
  left: number;
  settled: boolean;
  resolve(results: R[]): void;
  reject(err: unknown): void;
}

interface Group<T, R> {
  lane: Lane<T, R>;
  jobs: Job<T, R>[];
  due: boolean;
  timer: NodeJS.Timeout | undefined;
}

export interface BatcherOptions {
  /** Most items per engine run. */
  maxBatch: number;
  /** Longest an item waits for others after the first of its batch arrived. */
  maxWaitMs: number;
  /** Most items waiting (not yet in a run); a submit that would pass it is refused with 429. */
  maxQueue: number;
  /** Told after each engine run (for metrics). */
  onBatch?(lane: string, size: number, seconds: number): void;
}

export class Batcher<T, R> {
  private readonly groups = new Map<string, Group<T, R>>();
  private waiting = 0;
  private running: Promise<void> | undefined;
  /** Seconds one batch took recently: what Retry-After is estimated from. */
  private lastBatchSeconds = 0;

  constructor(private readonly options: BatcherOptions) {}

  /** Items queued and not yet handed to an engine. */
  get depth(): number {
    return this.waiting;
  }

  /** True while a batch is in an engine. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  /**
   * Queues `items` on `lane` and resolves with their results in the same order. Refused at once with
   * 429 when the queue cannot take them all; when `signal` aborts (deadline, client gone) the items
   * still waiting leave the queue and the promise rejects with the signal's reason.
   */
  submit<S extends R>(lane: Lane<T, S>, items: readonly T[], signal?: AbortSignal): Promise<S[]> {
    if (items.length === 0) return Promise.resolve([]);
    if (this.waiting + items.length > this.options.maxQueue) {
      const retry = Math.max(1, Math.ceil(this.lastBatchSeconds * Math.ceil((this.waiting + items.length) / this.options.maxBatch)));
      return Promise.reject(new HttpError(429, 'queue_full', `the server is busy: ${this.waiting} images are queued (limit ${this.options.maxQueue}); retry after ${retry} s`, { 'retry-after': String(retry) }));
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<S[]>((resolve, reject) => {
      const ticket: Ticket<R> = { results: new Array<R>(items.length), left: items.length, settled: false, resolve: resolve as (r: R[]) => void, reject };
      let group = this.groups.get(lane.key);
      if (!group) {
        group = { lane: lane as Lane<T, R>, jobs: [], due: false, timer: undefined };
        this.groups.set(lane.key, group);
      }
      const jobs = items.map((item, position) => ({ item, ticket, position }));
      group.jobs.push(...jobs);
      this.waiting += jobs.length;
      const g = group;
      if (g.jobs.length >= this.options.maxBatch) this.markDue(g);
      else g.timer ??= setTimeout(() => this.markDue(g), this.options.maxWaitMs);
      signal?.addEventListener('abort', () => this.cancel(ticket, signal.reason), { once: true });
      this.pump();
    });
  }

  /** Resolves once nothing is queued or running (for a graceful stop). */
  async drain(): Promise<void> {
    for (const g of this.groups.values()) this.markDue(g);
    while (this.running || this.waiting > 0) {
      await (this.running ?? new Promise((r) => setImmediate(r)));
    }
  }

  private markDue(group: Group<T, R>): void {
    if (group.timer) clearTimeout(group.timer);
    group.timer = undefined;
    group.due = true;
    this.pump();
  }

  /** Takes the ticket's waiting jobs out of every group and rejects it. */
  private cancel(ticket: Ticket<R>, reason: unknown): void {
    if (ticket.settled) return;
    for (const [key, g] of this.groups) {
      const kept = g.jobs.filter((j) => j.ticket !== ticket);
      this.waiting -= g.jobs.length - kept.length;
      g.jobs = kept;
      if (kept.length === 0) this.dropGroup(key, g);
    }
    ticket.settled = true;
    ticket.reject(reason);
  }

  private dropGroup(key: string, g: Group<T, R>): void {
    if (g.timer) clearTimeout(g.timer);
    this.groups.delete(key);
  }

  private pump(): void {
    if (this.running) return;
    // Of the groups that are due, the one whose first item came first goes first: Map keeps insertion
    // order, and a group is created by the first item its lane queues after it was last emptied.
    const next = [...this.groups.entries()].find(([, g]) => g.due);
    if (!next) return;
    const [key, group] = next;
    const jobs = group.jobs.splice(0, this.options.maxBatch);
    this.waiting -= jobs.length;
    if (group.jobs.length === 0) this.dropGroup(key, group);
    this.running = this.runBatch(group.lane, jobs).finally(() => {
      this.running = undefined;
      this.pump();
    });
  }

  private async runBatch(lane: Lane<T, R>, jobs: Job<T, R>[]): Promise<void> {
    const t0 = performance.now();
    let results: R[];
    try {
      results = await lane.run(jobs.map((j) => j.item));
      if (results.length !== jobs.length) throw new Error(`internal: lane ${lane.name} gave ${results.length} results for ${jobs.length} items`);
    } catch (err) {
      for (const j of jobs) {
        if (!j.ticket.settled) {
          j.ticket.settled = true;
          j.ticket.reject(err);
        }
      }
      return;
    } finally {
      const seconds = (performance.now() - t0) / 1000;
      this.lastBatchSeconds = seconds;
      this.options.onBatch?.(lane.name, jobs.length, seconds);
    }
    jobs.forEach((j, i) => {
      const t = j.ticket;
      if (t.settled) return;
      t.results[j.position] = results[i]!;
      if (--t.left === 0) {
        t.settled = true;
        t.resolve(t.results);
      }
    });
  }
}
