// Helpers of the HTTP API tests: a started server, requests over real sockets, Prometheus lines.
import net from 'node:net';
import { createServer, type Img2PromptServer } from '../../src/server/app.js';
import type { ServerOptions } from '../../src/server/options.js';

export interface StartedServer {
  server: Img2PromptServer;
  url: string;
  port: number;
}

/** createServer on 127.0.0.1 and a free port, ready (models loaded) and listening. */
export async function startServer(options: ServerOptions): Promise<StartedServer> {
  const server = createServer({ port: 0, ...options });
  await server.ready;
  const { url, port } = await server.listen();
  return { server, url, port };
}

/** POSTs image bytes as the body. */
export function postImage(url: string, bytes: Uint8Array, type = 'image/png', headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': type, ...headers }, body: new Uint8Array(bytes) });
}

/** POSTs images as the file parts of a multipart body, with optional plain fields. */
export function postMultipart(url: string, files: { name: string; data: Uint8Array; type?: string }[], fields: Record<string, string> = {}): Promise<Response> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  for (const f of files) form.append('image', new Blob([new Uint8Array(f.data)], { type: f.type ?? 'image/png' }), f.name);
  return fetch(url, { method: 'POST', body: form });
}

export function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

/** The value of the Prometheus sample `name{labels}` in `text` (labels in the order written), or 0 when absent. */
export function metricValue(text: string, sample: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

/**
 * Opens a raw connection to `port`, writes `head` and then `body`, and destroys the socket: a client
 * that goes away before its answer. Resolves once the socket is closed.
 */
export function abandonRequest(port: number, head: string, body: Uint8Array, afterMs = 0): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(head);
      socket.write(body);
      setTimeout(() => socket.destroy(), afterMs);
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve());
  });
}

/** A PNG whose header claims `width` × `height` pixels, followed by a token IDAT: refused on its size before any decoding. */
export function hugePngHeader(width: number, height: number): Uint8Array {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf: Buffer) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return new Uint8Array(Buffer.concat([signature, chunk('IHDR', ihdr), chunk('IDAT', Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])), chunk('IEND', Buffer.alloc(0))]));
}

/**
 * Sends `head` and then `body` in `chunk`-byte pieces, one every `everyMs`: a slow client. Resolves
 * with the status line of the answer.
 */
export function slowRequest(port: number, head: string, body: Uint8Array, chunk: number, everyMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let answer = '';
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(head);
      let sent = 0;
      const timer = setInterval(() => {
        if (sent >= body.length) return clearInterval(timer);
        socket.write(body.subarray(sent, sent + chunk));
        sent += chunk;
      }, everyMs);
    });
    socket.on('data', (d: Buffer) => {
      answer += d.toString('latin1');
      if (answer.includes('\r\n')) {
        socket.destroy();
        resolve(answer.split('\r\n')[0]!);
      }
    });
    socket.on('error', reject);
  });
}
