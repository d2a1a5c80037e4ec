import { readFile } from 'node:fs/promises';
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { Database } from '../../src/db/database.ts';

/** Linux reports process times in clock ticks of 1/100 s (USER_HZ on every common build). */
const MS_PER_CLOCK_TICK = 10;

/** CPU time of this Node process (user + system, all threads), in milliseconds. */
export function clientCpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/**
 * CPU time (user + system, all threads, ms) a process on this machine has used so far, from
 * /proc/<pid>/stat; undefined where /proc is missing (not Linux) or the process is gone.
 */
export async function processCpuMs(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Field 2, the command name, is in parentheses and may hold spaces: count after it.
    // utime and stime, fields 14 and 15 of the line, are then the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * MS_PER_CLOCK_TICK;
  } catch {
    return undefined;
  }
}

/** CPU time (user + system, ms) used so far by each backend, by pid. */
export type BackendCpu = ReadonlyMap<number, number>;

/**
 * CPU time of the backends of `applicationName` on the current database, read from
 * /proc/<pid>/stat through pg_read_file. Undefined when that is not possible (not a
 * superuser, not Linux, server in another pid namespace): measurements then go without it.
 * Resolution: one clock tick (10 ms) per backend.
 */
export async function backendCpu(
  db: Kysely<Database>,
  applicationName: string,
): Promise<BackendCpu | undefined> {
  try {
    // Fields 14 and 15 of /proc/<pid>/stat are utime and stime; field 2, the command name,
    // is "(postgres)" and holds no space.
    const { rows } = await sql<{ pid: number; ticks: string }>`
      SELECT s.pid, (split_part(s.stat, ' ', 14)::bigint + split_part(s.stat, ' ', 15)::bigint)::text AS ticks
      FROM (SELECT a.pid, pg_read_file('/proc/' || a.pid || '/stat') AS stat
            FROM pg_stat_activity a
            WHERE a.datname = current_database() AND a.application_name = ${applicationName}) s
    `.execute(db);
    return new Map(rows.map((r) => [r.pid, Number(r.ticks) * MS_PER_CLOCK_TICK]));
  } catch {
    return undefined;
  }
}

/**
 * CPU ms the backends used between two readings, summed over the backends present in both
 * (a backend of an earlier pool still exiting at the first reading is left out).
 */
export function backendCpuDeltaMs(
  before: BackendCpu | undefined,
  after: BackendCpu | undefined,
): number | undefined {
  if (before === undefined || after === undefined) return undefined;
  let total = 0;
  for (const [pid, ms] of after) {
    const start = before.get(pid);
    if (start !== undefined) total += ms - start;
  }
  return total;
}
