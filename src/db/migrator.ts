import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { Migrator, sql } from 'kysely';
import type { Kysely, Migration, MigrationProvider, MigrationResultSet } from 'kysely';
import { PACKAGE_ROOT } from '../package-files.ts';
import type { Database } from './database.ts';

/** The folder of numbered .sql migrations shipped with the package. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('migrations/', PACKAGE_ROOT));

const MIGRATION_FILE = /^\d{4}_[a-z0-9_]+\.sql$/;

/**
 * Reads `NNNN_name.sql` files as kysely migrations. Each file runs as one multi-statement
 * query (no parameters, so pg sends it with the simple protocol) inside the migrator's
 * transaction. Migrations are forward-only: there is no `down`.
 */
export class SqlFileMigrationProvider implements MigrationProvider {
  private loaded: Promise<Record<string, Migration>> | undefined;

  constructor(private readonly dir: string = MIGRATIONS_DIR) {}

  /** Reads the folder once per provider: the files ship with the code and do not change. */
  getMigrations(): Promise<Record<string, Migration>> {
    this.loaded ??= this.read();
    this.loaded.catch(() => (this.loaded = undefined));
    return this.loaded;
  }

  private async read(): Promise<Record<string, Migration>> {
    const files = (await readdir(this.dir)).filter((f) => MIGRATION_FILE.test(f)).sort();
    const migrations: Record<string, Migration> = {};
    for (const file of files) {
      const text = await readFile(path.join(this.dir, file), 'utf8');
      migrations[file.replace(/\.sql$/, '')] = {
        up: async (db) => {
          await sql.raw(text).execute(db);
        },
      };
    }
    return migrations;
  }
}

/** Thrown when a migration fails; `cause` is the database error. */
export class MigrationError extends Error {
  override name = 'MigrationError';
}

/** The shipped migrations; shared so that /readyz, polled often, reads the files once. */
const shippedMigrations = new SqlFileMigrationProvider();

function migratorFor(db: Kysely<Database>): Migrator {
  return new Migrator({
    db,
    provider: shippedMigrations,
    migrationTableSchema: 'holdline',
    migrationTableName: 'migrations',
    migrationLockTableName: 'migrations_lock',
  });
}

/**
 * Applies every pending migration, each in its own transaction. Safe when several
 * processes start at once: kysely serialises them on an advisory lock, and the later ones
 * find nothing to do. Returns the names applied now (empty when up to date).
 */
export async function migrateToLatest(db: Kysely<Database>): Promise<string[]> {
  const { error, results }: MigrationResultSet = await migratorFor(db).migrateToLatest();
  if (error !== undefined) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new MigrationError(`migration ${failed} failed`, { cause: error });
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** Names of migrations not applied yet: empty means the schema is current. */
export async function pendingMigrations(db: Kysely<Database>): Promise<string[]> {
  const migrations = await migratorFor(db).getMigrations();
  return migrations.filter((m) => m.executedAt === undefined).map((m) => m.name);
}
