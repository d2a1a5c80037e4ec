import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nowMs, sleep } from './clock.ts';

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../bin/holdline.js');
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

/** A holdline service run by a bench in a child process. */
export interface BenchService {
  /** http://127.0.0.1:<port> */
  url: string;
  /** SIGTERM, then SIGKILL when it has not exited within STOP_TIMEOUT_MS. */
  stop(): Promise<void>;
}

/** A TCP port free on 127.0.0.1 right now. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/**
 * Starts `holdline serve` (bin/holdline.js) on 127.0.0.1 against `databaseUrl` in a child
 * process of its own, as a deployment runs it, and resolves once /readyz answers 200. `env`
 * adds or overrides settings (e.g. RATE_LIMIT_PER_SECOND=0 for a throughput run). The child
 * is killed when this process exits, whatever happens.
 */
export async function startService(
  databaseUrl: string,
  env: Record<string, string>,
): Promise<BenchService> {
  const port = await freePort();
  const child = spawn(process.execPath, [BIN, 'serve'], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      HOST: '127.0.0.1',
      PORT: String(port),
      MIGRATE_ON_START: 'false',
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const exited = once(child, 'exit');
  const url = `http://127.0.0.1:${port}`;

  const stop = async (): Promise<void> => {
    process.off('exit', killOnExit);
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  const deadline = nowMs() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`holdline serve exited with ${child.exitCode} before it was ready`);
    }
    try {
      const response = await fetch(`${url}/readyz`);
      if (response.ok) break;
    } catch {
      // Not listening yet.
    }
    if (nowMs() >= deadline) {
      await stop();
      throw new Error(`holdline serve not ready within ${READY_TIMEOUT_MS} ms`);
    }
    await sleep(50);
  }
  return { url, stop };
}
