import os from 'node:os';
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { Database } from '../../src/db/database.ts';

/** What a result depends on, printed beside it. */
export interface MachineFacts {
  cpus: number;
  cpuModel: string;
  totalMemoryBytes: number;
  os: string;
  node: string;
  postgres: string;
  synchronousCommit: string;
  fsync: string;
}

/** Facts about this machine and the PostgreSQL server behind `db`. */
export async function machineFacts(db: Kysely<Database>): Promise<MachineFacts> {
  const setting = async (name: string): Promise<string> => {
    const { rows } = await sql<{ value: string }>`
      SELECT current_setting(${name}) AS value
    `.execute(db);
    return rows[0]!.value;
  };
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    totalMemoryBytes: os.totalmem(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    // current_setting('server_version') is what SHOW server_version prints.
    postgres: await setting('server_version'),
    synchronousCommit: await setting('synchronous_commit'),
    fsync: await setting('fsync'),
  };
}

/** One line for a README or a table caption. */
export function describeMachine(facts: MachineFacts): string {
  const gib = (facts.totalMemoryBytes / 2 ** 30).toFixed(1);
  return (
    `${facts.cpus} CPUs (${facts.cpuModel}), ${gib} GiB RAM, ${facts.os}, Node ${facts.node}, ` +
    `PostgreSQL ${facts.postgres} (synchronous_commit=${facts.synchronousCommit}, fsync=${facts.fsync})`
  );
}
