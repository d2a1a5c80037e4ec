import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Debian's HAProxy (package haproxy); .ci/run installs it. */
export const HAPROXY_BINARY = '/usr/sbin/haproxy';

/** An HAProxy of its own in front of service instances. */
export interface HaProxy {
  /** http://127.0.0.1:port */
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts HAProxy on `port`, balancing HTTP round-robin over the services on `backendPorts`
 * of 127.0.0.1, each health-checked on /healthz every 200 ms (out after one failure, back
 * after one success); requests that cannot connect are sent to another instance; WebSocket
 * and SSE streams stay open for an hour. Waits until it answers.
 */
export async function startHaProxy(options: {
  port: number;
  backendPorts: readonly number[];
}): Promise<HaProxy> {
  const folder = await mkdtemp(join(tmpdir(), 'holdline-haproxy-'));
  const config = join(folder, 'haproxy.cfg');
  await writeFile(
    config,
    [
      'global',
      '  maxconn 2000',
      'defaults',
      '  mode http',
      '  timeout connect 1s',
      '  timeout client 60s',
      '  timeout server 60s',
      '  timeout tunnel 1h',
      '  retries 2',
      '  option redispatch',
      'frontend holdline',
      `  bind 127.0.0.1:${options.port}`,
      '  default_backend services',
      'backend services',
      '  balance roundrobin',
      '  option httpchk GET /healthz',
      '  default-server inter 200ms fall 1 rise 1',
      ...options.backendPorts.map((port, i) => `  server s${i} 127.0.0.1:${port} check`),
      '',
    ].join('\n'),
  );
  const child = spawn(HAPROXY_BINARY, ['-db', '-f', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${options.port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const answered = await fetch(`${url}/healthz`).then(
      (response) => response.ok,
      () => false,
    );
    if (answered) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      await rm(folder, { recursive: true, force: true });
      throw new Error(`HAProxy did not answer on ${url}: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      await rm(folder, { recursive: true, force: true });
    },
  };
}
