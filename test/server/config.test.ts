import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/server/config.ts';

describe('loadConfig', () => {
  it('gives every setting its documented default when nothing is set', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      databaseUrl: undefined,
      host: '127.0.0.1',
      port: 4000,
      logLevel: 'info',
      migrateOnStart: true,
      embeddedDataDir: '.holdline-data',
      embeddedPort: 5433,
      poolMax: 10,
      preparedStatements: true,
      pollIntervalMs: 1000,
      reaperEnabled: true,
      shutdownTimeoutMs: 10_000,
      heapGrowthPercent: 50,
    });
  });

  it("takes HEAP_GROWTH_PERCENT=0 as V8's own heap growth", () => {
    expect(loadConfig({ HEAP_GROWTH_PERCENT: '0' }).heapGrowthPercent).toBe(0);
    expect(loadConfig({ HEAP_GROWTH_PERCENT: '25' }).heapGrowthPercent).toBe(25);
  });

  it('turns prepared statements off with PREPARED_STATEMENTS=false (PgBouncer < 1.21)', () => {
    expect(loadConfig({ PREPARED_STATEMENTS: 'false' }).preparedStatements).toBe(false);
  });

  it('uses DATABASE_URL for LISTEN unless LISTEN_DATABASE_URL is set', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://a@h/db' }).listenDatabaseUrl).toBe(
      'postgres://a@h/db',
    );
    expect(
      loadConfig({
        DATABASE_URL: 'postgres://a@pgbouncer/db',
        LISTEN_DATABASE_URL: 'postgres://a@h/db',
      }).listenDatabaseUrl,
    ).toBe('postgres://a@h/db');
  });

  it.each([
    ['PORT', 'eighty', 'PORT must be an integer'],
    ['PORT', '70000', 'PORT must be an integer from 0 to 65535'],
    ['LOG_LEVEL', 'loud', 'LOG_LEVEL must be one of'],
    ['MIGRATE_ON_START', 'maybe', 'MIGRATE_ON_START must be true or false'],
    ['DATABASE_URL', 'mysql://x@y/z', 'DATABASE_URL must be a postgres:// URL'],
    ['DATABASE_URL', 'not a url', 'DATABASE_URL must be a postgres:// URL'],
    ['POOL_MAX', '0', 'POOL_MAX must be an integer from 1'],
    ['PREPARED_STATEMENTS', 'sometimes', 'PREPARED_STATEMENTS must be true or false'],
    ['HEAP_GROWTH_PERCENT', '-5', 'HEAP_GROWTH_PERCENT must be an integer from 0'],
  ])('rejects %s=%s with a message naming the variable', (name, value, message) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(message);
  });
});
