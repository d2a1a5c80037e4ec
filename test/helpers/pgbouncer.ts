import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { databaseUrl } from './database-url.ts';

/** Debian's PgBouncer (package pgbouncer); .ci/run installs it. */
export const PGBOUNCER_BINARY = '/usr/sbin/pgbouncer';

/** A PgBouncer of its own, in transaction mode, in front of the test server. */
export interface PgBouncer {
  /** A URL of `database` through PgBouncer. */
  url(database: string): string;
  /** Runs a command of PgBouncer's admin console (SHOW POOLS, SHOW STATS …). */
  admin<Row extends Record<string, unknown>>(command: string): Promise<Row[]>;
  stop(): Promise<void>;
}

/**
 * Starts PgBouncer on `port` in front of the PostgreSQL server of `serverUrl` (whose user
 * and host it connects with), pool_mode transaction with `poolSize` server connections per
 * database and user, and waits until it answers. Its files live in a temporary folder that
 * stop() removes. As root it runs as the postgres user (PgBouncer refuses to run as root).
 */
export async function startPgBouncer(options: {
  serverUrl: string;
  port: number;
  poolSize: number;
}): Promise<PgBouncer> {
  const server = new URL(options.serverUrl);
  const user = decodeURIComponent(server.username || 'postgres');
  const folder = await mkdtemp(join(tmpdir(), 'holdline-pgbouncer-'));
  const asRoot = process.getuid?.() === 0;
  await chmod(folder, 0o777);
  const config = join(folder, 'pgbouncer.ini');
  await writeFile(join(folder, 'users.txt'), `"${user}" ""\n`, { mode: 0o644 });
  await writeFile(
    config,
    [
      '[databases]',
      `* = host=${server.hostname} port=${server.port || '5432'} user=${user}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${options.port}`,
      "unix_socket_dir = ''",
      'auth_type = trust',
      `auth_file = ${join(folder, 'users.txt')}`,
      `admin_users = ${user}`,
      'pool_mode = transaction',
      `default_pool_size = ${options.poolSize}`,
      'max_client_conn = 500',
      // Pools of databases dropped by the tests are closed at once, not after an hour.
      'server_lifetime = 60',
      `logfile = ${join(folder, 'pgbouncer.log')}`,
      `pidfile = ${join(folder, 'pgbouncer.pid')}`,
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  const child: ChildProcess = spawn(
    PGBOUNCER_BINARY,
    asRoot ? ['-u', 'postgres', config] : [config],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const base = `postgres://${encodeURIComponent(user)}@127.0.0.1:${options.port}/pgbouncer`;

  const admin = async <Row extends Record<string, unknown>>(command: string): Promise<Row[]> => {
    const client = new pg.Client({ connectionString: base });
    await client.connect();
    try {
      // The admin console speaks the simple query protocol only: no parameters.
      return (await client.query<Row>(command)).rows;
    } finally {
      await client.end();
    }
  };

  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await admin('SHOW VERSION');
      break;
    } catch (error) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        await rm(folder, { recursive: true, force: true });
        throw new Error(`PgBouncer did not start: ${stderr}`, { cause: error });
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  return {
    url: (database) => databaseUrl(base, database),
    admin,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      await rm(folder, { recursive: true, force: true });
    },
  };
}
