/**
 * The migrator on a database that is not fresh: one migrated before a lower-numbered
 * migration landed (numbers are handed to parallel branches in ranges) takes that migration
 * on its next start instead of refusing to.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Migrator } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { createDatabase, createPool } from '../../src/db/pool.ts';
import {
  MIGRATIONS_DIR,
  SqlFileMigrationProvider,
  migrateToLatest,
  pendingMigrations,
} from '../../src/db/migrator.ts';
import { databaseUrl } from '../helpers/database-url.ts';

/** The migration that landed in a range below one already on main. */
const LANDED_LATER = '0026_create_flow_stripes';

const serverUrl = inject('serverUrl');
const name = `holdline_test_${randomBytes(6).toString('hex')}`;
let olderDir: string;

async function onServer(query: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(query);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  await onServer(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  // The shipped migrations as they were before LANDED_LATER: every other file, 0030 included.
  olderDir = await mkdtemp(path.join(tmpdir(), 'holdline-migrations-'));
  for (const file of await readdir(MIGRATIONS_DIR)) {
    if (!file.startsWith(LANDED_LATER)) {
      await copyFile(path.join(MIGRATIONS_DIR, file), path.join(olderDir, file));
    }
  }
});
afterAll(async () => {
  await rm(olderDir, { recursive: true, force: true });
  await onServer(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
});

describe('migrateToLatest on a database migrated before a lower number landed', () => {
  it('applies the lower-numbered migration, and only it', async () => {
    const db = createDatabase(createPool({ connectionString: databaseUrl(serverUrl, name) }));
    try {
      const older = new Migrator({
        db,
        provider: new SqlFileMigrationProvider(olderDir),
        migrationTableSchema: 'holdline',
        migrationTableName: 'migrations',
        migrationLockTableName: 'migrations_lock',
      });
      const { error, results } = await older.migrateToLatest();
      expect(error).toBeUndefined();
      expect(results?.map((r) => r.migrationName)).toContain('0030_create_queue_history');
      expect(await pendingMigrations(db)).toEqual([LANDED_LATER]);

      expect(await migrateToLatest(db)).toEqual([LANDED_LATER]);
      expect(await pendingMigrations(db)).toEqual([]);
    } finally {
      await db.destroy();
    }
  });
});
