import pg from 'pg';
import type { Logger } from 'pino';
import { embeddedConnectionString, startEmbeddedPostgres } from '../db/embedded-postgres.ts';
import type { Config } from './config.ts';

/** The PostgreSQL the process uses, and how to let go of it. */
export interface DatabaseTarget {
  url: string;
  /** Direct connection for LISTEN and the reaper's lock. */
  listenUrl: string;
  /** True when this process started an embedded server (stopped by release). */
  embedded: boolean;
  release(): Promise<void>;
}

/**
 * DATABASE_URL when set. Otherwise the embedded PostgreSQL in EMBEDDED_DATA_DIR: reused when
 * another Holdline process already runs it on EMBEDDED_POSTGRES_PORT (so `holdline stats`
 * works next to `npm start`), else started here, created on first use.
 */
export async function resolveDatabase(config: Config, logger: Logger): Promise<DatabaseTarget> {
  if (config.databaseUrl !== undefined) {
    return {
      url: config.databaseUrl,
      listenUrl: config.listenDatabaseUrl ?? config.databaseUrl,
      embedded: false,
      release: () => Promise.resolve(),
    };
  }
  const embeddedUrl = embeddedConnectionString(config.embeddedPort);
  if (await answers(embeddedUrl)) {
    return {
      url: embeddedUrl,
      listenUrl: embeddedUrl,
      embedded: false,
      release: () => Promise.resolve(),
    };
  }
  logger.info(
    { dataDir: config.embeddedDataDir, port: config.embeddedPort },
    'starting embedded postgresql',
  );
  const log = logger.child({ component: 'embedded-postgres' });
  const server = await startEmbeddedPostgres({
    dataDir: config.embeddedDataDir,
    relocatable: !config.embeddedDataDirGiven,
    port: config.embeddedPort,
    onLog: (line) => log.debug(line),
    onNotice: (message, fields) => log.warn(fields, message),
  });
  log.info(
    { dataDir: server.dataDir, binariesDir: server.binariesDir },
    'embedded postgresql started',
  );
  return {
    url: server.connectionString,
    listenUrl: server.connectionString,
    embedded: true,
    release: () => server.stop(),
  };
}

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.end();
    return true;
  } catch {
    return false;
  }
}
