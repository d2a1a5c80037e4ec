import type { Logger } from 'pino';
import { migrateToLatest } from '../db/migrator.ts';
import { createDatabase, createPool } from '../db/pool.ts';
import { createApp } from './app.ts';
import type { App } from './app.ts';
import { loadConfig } from './config.ts';
import type { Config } from './config.ts';
import { resolveDatabase } from './database.ts';
import type { DatabaseTarget } from './database.ts';
import { createLogger } from './logger.ts';

/** A running service and how to stop it. */
export interface RunningService {
  app: App;
  database: DatabaseTarget;
  /** The service's logger, made from its configuration. */
  logger: Logger;
  stop(): Promise<void>;
}

/**
 * Starts the service with `config` (default: read from the environment): the database
 * (DATABASE_URL or an embedded PostgreSQL), pending migrations unless MIGRATE_ON_START=false,
 * then the app.
 */
export async function serve(config: Config = loadConfig()): Promise<RunningService> {
  const logger = createLogger(config);
  const database = await resolveDatabase(config, logger);
  try {
    if (config.migrateOnStart) await migrate(database.url, logger);
    const app = createApp({
      config,
      logger,
      databaseUrl: database.url,
      listenDatabaseUrl: database.listenUrl,
    });
    await app.start();
    logger.info(
      { url: `${app.url()}/graphql`, embeddedDatabase: database.embedded },
      'holdline listening',
    );
    return {
      app,
      database,
      logger,
      async stop() {
        await app.stop();
        await database.release();
      },
    };
  } catch (error) {
    await database.release();
    throw error;
  }
}

/** Applies pending migrations on `url`, logging what it applied. */
export async function migrate(url: string, logger: Logger): Promise<string[]> {
  const db = createDatabase(createPool({ connectionString: url, max: 1 }));
  try {
    const applied = await migrateToLatest(db);
    logger.info({ applied }, applied.length > 0 ? 'migrations applied' : 'schema up to date');
    return applied;
  } finally {
    await db.destroy();
  }
}

/**
 * Stops the service on SIGTERM or SIGINT, within config.shutdownTimeoutMs plus a margin; a
 * second signal, or running out of time, exits at once with status 1.
 */
export function stopOnSignals(
  service: RunningService,
  config: Pick<Config, 'shutdownTimeoutMs'>,
  logger: Logger,
): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'signal received');
    const deadline = setTimeout(() => {
      logger.error('shutdown took too long: exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs + 2_000);
    deadline.unref();
    service.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
