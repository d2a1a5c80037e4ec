import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import pg from 'pg';
import { inject } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { createDatabase, createPool } from '../../src/db/pool.ts';
import { databaseUrl } from './database-url.ts';

/** A fresh database cloned from the migrated template, for one test file. */
export interface TestDatabase {
  name: string;
  url: string;
  pool: pg.Pool;
  db: Kysely<Database>;
  /** A new connection of its own, for tests that need separate sessions. */
  connect(): Promise<pg.Client>;
  /** Closes the pool and drops the database (forcing out any connection left open). */
  drop(): Promise<void>;
}

/** Clones the template database; call in beforeAll and drop() in afterAll. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const serverUrl = inject('serverUrl');
  const template = inject('templateDatabase');
  const name = `holdline_test_${randomBytes(6).toString('hex')}`;
  await admin(serverUrl, (c) =>
    c.query(
      `CREATE DATABASE ${pg.escapeIdentifier(name)} TEMPLATE ${pg.escapeIdentifier(template)}`,
    ),
  );
  const url = databaseUrl(serverUrl, name);
  const pool = createPool({ connectionString: url, max: 20 });
  const db = createDatabase(pool);
  return {
    name,
    url,
    pool,
    db,
    async connect() {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      return client;
    },
    async drop() {
      await db.destroy();
      await admin(serverUrl, (c) =>
        c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`),
      );
    },
  };
}

async function admin(url: string, run: (client: pg.Client) => Promise<unknown>): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await run(client);
  } finally {
    await client.end();
  }
}
