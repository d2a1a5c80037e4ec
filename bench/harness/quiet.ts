import { readFile } from 'node:fs/promises';
import { nowMs, sleep } from './clock.ts';

/** What {@link waitForQuietMachine} found. */
export interface QuietCheck {
  /** Idle share of all CPUs over the last window, 0 to 1; null where /proc/stat is missing. */
  idle: number | null;
  /** How long it waited for the machine to calm down. */
  waitedMs: number;
  /** False when the machine stayed busy until the timeout (the run went ahead anyway). */
  quiet: boolean;
}

/** Linux counts /proc/stat times in clock ticks of 1/100 s (USER_HZ on every common build). */
const MS_PER_CLOCK_TICK = 10;

/** CPU time of the whole machine so far, all CPUs summed, in ms. */
export interface MachineCpu {
  total: number;
  /** Idle and waiting for I/O. */
  idle: number;
}

/** Total and idle (idle + iowait) CPU time of all CPUs, from the first line of /proc/stat. */
export async function machineCpu(): Promise<MachineCpu | undefined> {
  try {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n', 1)[0]!;
    const fields = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { total: total * MS_PER_CLOCK_TICK, idle: idle * MS_PER_CLOCK_TICK };
  } catch {
    return undefined;
  }
}

/**
 * Waits until the CPUs were at least `minIdle` idle over one `windowMs` window, so a run does
 * not start in the middle of someone else's burst (a compiler, a test suite) on a shared
 * machine. Gives up after `timeoutMs` and reports it. Linux only; elsewhere returns at once.
 */
export async function waitForQuietMachine(options: {
  minIdle: number;
  windowMs: number;
  timeoutMs: number;
}): Promise<QuietCheck> {
  const startedAt = nowMs();
  for (;;) {
    const before = await machineCpu();
    if (before === undefined) return { idle: null, waitedMs: 0, quiet: true };
    await sleep(options.windowMs);
    const after = (await machineCpu())!;
    const total = after.total - before.total;
    const idle = total > 0 ? (after.idle - before.idle) / total : 1;
    const waitedMs = nowMs() - startedAt;
    if (idle >= options.minIdle) return { idle, waitedMs, quiet: true };
    if (waitedMs >= options.timeoutMs) return { idle, waitedMs, quiet: false };
  }
}

/**
 * The share of the machine's CPU capacity, 0 to 1, that went to something other than `ownMs`
 * (this benchmark's own CPU) between two readings: other processes sharing the machine, and
 * PostgreSQL's background processes. Null without /proc/stat.
 */
export function otherCpuShare(
  before: MachineCpu | undefined,
  after: MachineCpu | undefined,
  ownMs: number,
): number | null {
  if (before === undefined || after === undefined) return null;
  const capacity = after.total - before.total;
  if (capacity <= 0) return null;
  const busy = capacity - (after.idle - before.idle);
  return Math.max(0, busy - ownMs) / capacity;
}
