/**
 * The server's Prometheus metrics, written in the text exposition format (version 0.0.4) by hand: a
 * few counters and histograms do not need a client library. Requests by route and status, request
 * latency, engine batch sizes, the queue depth, and images served per second.
 */

/** Upper bounds of the latency buckets, seconds. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Upper bounds of the batch-size buckets, images. */
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];
/** The images-per-second gauge averages over this window. */
const RATE_WINDOW_S = 60;

/** A label set written as `{a="x",b="y"}` (values escaped as the format asks). */
function labelText(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

class Histogram {
  private readonly series = new Map<string, { labels: Record<string, string>; counts: number[]; sum: number; count: number }>();

  constructor(readonly bounds: readonly number[]) {}

  observe(labels: Record<string, string>, value: number): void {
    const key = labelText(labels);
    let s = this.series.get(key);
    if (!s) {
      s = { labels, counts: new Array<number>(this.bounds.length).fill(0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    this.bounds.forEach((b, i) => {
      if (value <= b) s.counts[i]!++;
    });
    s.sum += value;
    s.count++;
  }

  lines(name: string): string[] {
    const out: string[] = [];
    for (const s of this.series.values()) {
      this.bounds.forEach((b, i) => out.push(`${name}_bucket${labelText({ ...s.labels, le: String(b) })} ${s.counts[i]}`));
      out.push(`${name}_bucket${labelText({ ...s.labels, le: '+Inf' })} ${s.count}`);
      out.push(`${name}_sum${labelText(s.labels)} ${s.sum}`);
      out.push(`${name}_count${labelText(s.labels)} ${s.count}`);
    }
    return out;
  }
}

export class ServerMetrics {
  private readonly requests = new Map<string, { labels: Record<string, string>; value: number }>();
  private readonly latency = new Histogram(LATENCY_BUCKETS);
  private readonly batches = new Histogram(BATCH_BUCKETS);
  private imagesTotal = 0;
  /** [time ms, images] of recent batches, for the rate gauge. */
  private recent: [number, number][] = [];

  constructor(private readonly queueDepth: () => number) {}

  /** One answered request; `route` is the route pattern (not the URL, so query strings add no series). */
  request(method: string, route: string, status: number, seconds: number): void {
    const labels = { method, route, status: String(status) };
    const key = labelText(labels);
    const c = this.requests.get(key) ?? { labels, value: 0 };
    c.value++;
    this.requests.set(key, c);
    this.latency.observe({ method, route }, seconds);
  }

  /** One engine run over `size` images on `lane`. */
  batch(lane: string, size: number): void {
    this.batches.observe({ lane }, size);
    this.imagesTotal += size;
    const now = Date.now();
    this.recent.push([now, size]);
    this.recent = this.recent.filter(([t]) => now - t <= RATE_WINDOW_S * 1000);
  }

  /** The exposition text for GET /metrics. */
  text(): string {
    const now = Date.now();
    const inWindow = this.recent.filter(([t]) => now - t <= RATE_WINDOW_S * 1000).reduce((n, [, k]) => n + k, 0);
    const lines = [
      '# HELP img2prompt_http_requests_total HTTP requests answered, by method, route and status.',
      '# TYPE img2prompt_http_requests_total counter',
      ...[...this.requests.values()].map((c) => `img2prompt_http_requests_total${labelText(c.labels)} ${c.value}`),
      '# HELP img2prompt_http_request_duration_seconds Time from a request arriving to its answer.',
      '# TYPE img2prompt_http_request_duration_seconds histogram',
      ...this.latency.lines('img2prompt_http_request_duration_seconds'),
      '# HELP img2prompt_batch_size Images per engine run (cross-request batches), by lane.',
      '# TYPE img2prompt_batch_size histogram',
      ...this.batches.lines('img2prompt_batch_size'),
      '# HELP img2prompt_queue_depth Images waiting for an engine run.',
      '# TYPE img2prompt_queue_depth gauge',
      `img2prompt_queue_depth ${this.queueDepth()}`,
      '# HELP img2prompt_images_total Images that went through an engine.',
      '# TYPE img2prompt_images_total counter',
      `img2prompt_images_total ${this.imagesTotal}`,
      `# HELP img2prompt_images_per_second Images through the engines per second, over the last ${RATE_WINDOW_S} s.`,
      '# TYPE img2prompt_images_per_second gauge',
      `img2prompt_images_per_second ${inWindow / RATE_WINDOW_S}`,
    ];
    return lines.join('\n') + '\n';
  }
}
