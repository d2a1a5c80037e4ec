import pino from 'pino';
import { createApp } from '../../src/server/app.ts';
import type { App } from '../../src/server/app.ts';
import { loadConfig } from '../../src/server/config.ts';
import type { TestDatabase } from './database.ts';

/**
 * The whole service (createApp: pool, listener, engine, reaper, GraphQL, HTTP) in this
 * process, on a free port of 127.0.0.1, over the test database. `env` sets configuration
 * variables as the service reads them. Stop it with app.stop() before dropping the database.
 */
export async function startTestApp(
  t: TestDatabase,
  env: Record<string, string> = {},
): Promise<App> {
  const config = { ...loadConfig({ PORT: '0', ...env }), databaseUrl: t.url };
  const app = createApp({
    config,
    logger: pino({ level: 'silent' }),
    databaseUrl: t.url,
    listenDatabaseUrl: t.url,
  });
  await app.start();
  return app;
}
