import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nowMs, sleep } from './clock.ts';
import { processCpuMs } from './cpu.ts';

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../bin/holdline.js');
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

/**
 * The service as the benches run it: no per-token rate limit (the default, 100 requests/s,
 * would measure the limiter), no reaper (as for the in-process worker), on loopback without
 * tokens.
 */
export const BENCH_SERVICE_ENV = {
  RATE_LIMIT_PER_SECOND: '0',
  REAPER_ENABLED: 'false',
  POOL_MAX: '10',
} as const;

/** A holdline service run by a bench in a child process. */
export interface BenchService {
  /** http://127.0.0.1:<port> */
  url: string;
  /** The service's process id (bin/holdline.js runs the service in that process itself). */
  pid: number;
  /**
   * The service process's resident set size (VmRSS in /proc/<pid>/status), in bytes;
   * undefined where /proc is missing (not Linux) or the process is gone.
   */
  residentBytes(): Promise<number | undefined>;
  /**
   * CPU time the service process has used so far (user + system, all threads), in ms, from
   * /proc/<pid>/stat; undefined where /proc is missing or the process is gone.
   */
  cpuMs(): Promise<number | undefined>;
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
  const child = spawn(process.execPath, [...profilerArgs(), BIN, 'serve'], {
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
  const pid = child.pid;
  if (pid === undefined) throw new Error('holdline serve did not start');
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
  return {
    url,
    pid,
    residentBytes: () => residentBytes(pid),
    cpuMs: () => processCpuMs(pid),
    stop,
  };
}

/**
 * `--cpu-prof` for the service when BENCH_PROFILE_DIR is set: each service a bench starts
 * writes a V8 CPU profile there when it stops (open it in Chrome DevTools or speedscope).
 * How the profile summaries in docs/performance.md were made.
 */
function profilerArgs(): string[] {
  const dir = process.env.BENCH_PROFILE_DIR;
  return dir === undefined || dir === '' ? [] : ['--cpu-prof', `--cpu-prof-dir=${dir}`];
}

/** VmRSS of a process from /proc/<pid>/status (reported in kB, i.e. KiB), in bytes. */
async function residentBytes(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kib = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1];
    return kib === undefined ? undefined : Number(kib) * 1024;
  } catch {
    return undefined;
  }
}

/**
 * Reads a service's RSS every `intervalMs` and keeps the largest reading, so that a window's
 * figure is its peak rather than one reading at its end: V8's heap swings by tens of MiB
 * between major collections, and a single reading lands anywhere in that swing.
 */
export class ResidentPeakSampler {
  private peak: number | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly service: Pick<BenchService, 'residentBytes'>,
    intervalMs: number,
  ) {
    this.timer = setInterval(() => void this.sample(), intervalMs);
  }

  /** The largest reading since the last call (a final reading included); then starts over. */
  async takePeak(): Promise<number | undefined> {
    await this.sample();
    const peak = this.peak;
    this.peak = undefined;
    return peak;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async sample(): Promise<void> {
    const bytes = await this.service.residentBytes();
    if (bytes !== undefined) this.peak = Math.max(this.peak ?? 0, bytes);
  }
}
