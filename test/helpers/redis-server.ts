import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** Debian's redis-server: the distributed tests need a real one and fail (not skip) without it. */
export function redisServerPath(): string {
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim();
  if (found !== '') return found;
  if (fs.existsSync('/usr/bin/redis-server')) return '/usr/bin/redis-server';
  throw new Error('redis-server is not installed: `apt-get install redis-server` (.ci/run installs it when missing)');
}

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setTimeout(500);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d) => {
      socket.destroy();
      resolve(String(d).startsWith('+PONG'));
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/**
 * A redis-server on 127.0.0.1 that the test owns: data (and the append-only file) in `dir`, so a
 * restart on the same port and folder finds what was written before it was killed.
 */
export class TestRedis {
  private child: ChildProcess | undefined;

  private constructor(readonly port: number, readonly dir: string) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(dir: string): Promise<TestRedis> {
    fs.mkdirSync(dir, { recursive: true });
    const redis = new TestRedis(await freePort(), dir);
    await redis.launch();
    return redis;
  }

  /** Starts redis-server (again) and waits until it answers. appendfsync always: a SIGKILL loses no acknowledged write. */
  async launch(): Promise<void> {
    const args = [
      '--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '',
      '--appendonly', 'yes', '--appendfsync', 'always', '--protected-mode', 'no', '--daemonize', 'no', '--loglevel', 'warning',
    ];
    const child = spawn(redisServerPath(), args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += String(d)));
    for (let i = 0; i < 200; i++) {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}: ${stderr}`);
      if (await answersPing(this.port)) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`redis-server on port ${this.port} did not answer within 10 s: ${stderr}`);
  }

  /** SIGKILL: no shutdown save, the append-only file is all that survives. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null) return;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await gone;
  }

  async stop(): Promise<void> {
    await this.kill();
  }

  /** The append-only files redis-server wrote (Redis 7 keeps them in a folder). */
  appendOnlyFiles(): string[] {
    const folder = path.join(this.dir, 'appendonlydir');
    return fs.existsSync(folder) ? fs.readdirSync(folder) : [];
  }
}
