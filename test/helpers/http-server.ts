import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** What one request to a route does instead of answering normally. */
export type FailureStep =
  /** Send the headers and this many body bytes, then cut the connection. */
  | { drop: number }
  /** Answer with this status and a short text body. */
  | { status: number };

export interface RouteOptions {
  body: Uint8Array;
  /** Answer every request with this status (e.g. 404) instead of the body. */
  status?: number;
  /** Pretend Range is unsupported: always 200 with the whole body, no Accept-Ranges. */
  ignoreRange?: boolean;
  /** Failures for the first requests, in order; later requests are answered normally. */
  plan?: FailureStep[];
  /** Answer 302 to this path (like the hub's redirect of LFS files to its CDN). */
  redirectTo?: string;
  /** Wait this many ms before answering at all (a server too slow for the client's timeout). */
  delayMs?: number;
}

export interface RecordedRequest {
  path: string;
  range: string | undefined;
  status: number;
  /** Body bytes actually sent. */
  sent: number;
}

export interface FixtureServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  requests: RecordedRequest[];
  /** Add or replace the route for a URL path (e.g. `/org/repo/resolve/main/config.json`). */
  route(path: string, options: RouteOptions): void;
  requestsFor(path: string): RecordedRequest[];
  close(): Promise<void>;
}

/** A local HTTP file server on 127.0.0.1 (random port) with Range support and scripted failures. */
export async function startFixtureServer(): Promise<FixtureServer> {
  const routes = new Map<string, RouteOptions & { served: number }>();
  const requests: RecordedRequest[] = [];

  const server = http.createServer((req, res) => {
    const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const range = req.headers.range;
    const record: RecordedRequest = { path: urlPath, range, status: 0, sent: 0 };
    requests.push(record);
    const finish = (status: number, headers: Record<string, string | number>, body?: Uint8Array) => {
      record.status = status;
      record.sent = body?.length ?? 0;
      res.writeHead(status, headers);
      res.end(body);
    };

    const route = routes.get(urlPath);
    if (!route) return finish(404, { 'content-type': 'text/plain' }, Buffer.from('no such file'));
    if (route.delayMs) {
      const timer = setTimeout(() => answer(route), route.delayMs);
      // A client that gave up must not leave the timer to write on a dead socket.
      res.on('close', () => clearTimeout(timer));
      return;
    }
    answer(route);

    function answer(route: RouteOptions & { served: number }): void {
      const step = route.plan?.[route.served];
      route.served++;
      if (route.redirectTo) return finish(302, { location: route.redirectTo, 'content-length': 0 });
      const status = step && 'status' in step ? step.status : route.status;
      if (status !== undefined) return finish(status, { 'content-type': 'text/plain' }, Buffer.from(`status ${status}`));

      const body = route.body;
      let start = 0;
      let code = 200;
      const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream' };
      if (!route.ignoreRange) headers['accept-ranges'] = 'bytes';
      const m = range && !route.ignoreRange ? /^bytes=(\d+)-(\d*)$/.exec(range) : null;
      let end = body.length; // exclusive
      if (m) {
        start = Number(m[1]);
        if (m[2] !== '') end = Math.min(body.length, Number(m[2]) + 1);
        if (start >= body.length || start >= end) {
          return finish(416, { 'content-range': `bytes */${body.length}`, 'content-length': 0 });
        }
        code = 206;
        headers['content-range'] = `bytes ${start}-${end - 1}/${body.length}`;
      }
      const payload = body.subarray(start, end);
      headers['content-length'] = payload.length;

      if (step && 'drop' in step) {
        record.status = code;
        record.sent = Math.min(step.drop, payload.length);
        res.writeHead(code, headers);
        // Cut the connection a moment after the bytes are handed over: a client's fetch stream drops
        // chunks it has queued but not yet read when the socket dies, which would make tests flaky.
        res.write(payload.subarray(0, record.sent), () => setTimeout(() => req.socket.destroy(), 30));
        return;
      }
      finish(code, headers, payload);
    }
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    route(path, options) {
      routes.set(path, { ...options, served: 0 });
    },
    requestsFor(path) {
      return requests.filter((r) => r.path === path);
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}
