import { randomBytes } from 'node:crypto';
import { Migrator, sql } from 'kysely';
import type { Kysely } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { SqlFileMigrationProvider, migrateToLatest } from '../../src/db/migrator.ts';
import { createDatabase, createPool } from '../../src/db/pool.ts';
import { ack, ackBatch, extendLease, nack, receive, send } from '../../src/queue/operations.ts';
import { databaseUrl } from '../helpers/database-url.ts';

/** The last migration before holdline.messages was partitioned by queue (0040). */
const BEFORE_PARTITIONS = '0032_create_ack_wakes_capped';

const serverUrl = inject('serverUrl');
const name = `holdline_test_migrate_${randomBytes(6).toString('hex')}`;
let db: Kysely<Database>;

async function admin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  await admin(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  db = createDatabase(createPool({ connectionString: databaseUrl(serverUrl, name), max: 4 }));
  const migrator = new Migrator({
    db,
    provider: new SqlFileMigrationProvider(),
    migrationTableSchema: 'holdline',
    migrationTableName: 'migrations',
    migrationLockTableName: 'migrations_lock',
  });
  const { error } = await migrator.migrateTo(BEFORE_PARTITIONS);
  if (error !== undefined)
    throw new Error(`migrating to ${BEFORE_PARTITIONS} failed`, { cause: error });
});

afterAll(async () => {
  await db?.destroy();
  await admin(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
});

interface Leased {
  id: string;
  lease_token: string;
  lease_expires_at: Date;
  attempts: number;
}

/** Leases up to `max` messages of `queue` with the SQL API as it was before 0040. */
async function leaseBefore(queue: string, max: number): Promise<Leased[]> {
  const { rows } = await sql<Leased>`
    SELECT id::text AS id, lease_token::text AS lease_token, lease_expires_at, attempts
    FROM holdline.receive(${queue}, ${max}::integer, 300)
  `.execute(db);
  return rows;
}

describe('migration 0040: holdline.messages partitioned by queue', () => {
  it('moves a populated database and honours the receipts issued before it', async () => {
    // A populated installation as 0032 left it: leased, ready, delayed and dead messages.
    await sql`
      INSERT INTO holdline.queues (name, dead_letter_queue, max_attempts)
      VALUES ('mig-orders', 'mig-orders.dlq', 1), ('mig-other', NULL, 5)
    `.execute(db);
    await sql`
      SELECT holdline.send('mig-orders', jsonb_build_object('n', g)) FROM generate_series(1, 6) g
    `.execute(db);
    await sql`SELECT holdline.send('mig-other', '{"n": 1}'::jsonb, 600)`.execute(db);
    await sql`SELECT holdline.send('mig-other', '{"n": 2}'::jsonb, 0, 0, 'dedup-1')`.execute(db);
    const leased = await leaseBefore('mig-orders', 5);
    expect(leased).toHaveLength(5);
    // One dies into the dead-letter queue (max_attempts 1), made by 0032's nack.
    const dying = leased[4]!;
    await sql`SELECT * FROM holdline.nack(${dying.id}::bigint, ${dying.lease_token}::uuid)`.execute(
      db,
    );
    const { rows: before } = await sql<{ id: string; queue: string; lease_token: string | null }>`
      SELECT id::text AS id, queue, lease_token::text AS lease_token, lease_expires_at, attempts,
             origin_queue, dedup_key
      FROM holdline.messages ORDER BY id
    `.execute(db);
    const { rows: lastIdBefore } = await sql<{ max: string }>`
      SELECT max(id)::text AS max FROM holdline.messages
    `.execute(db);

    expect(await migrateToLatest(db)).toContain('0040_create_message_partitions');

    // Every row is where it was, with its id, lease, expiry, attempts and dead-letter fields.
    const { rows: after } = await sql<{ id: string; queue: string; lease_token: string | null }>`
      SELECT id::text AS id, queue, lease_token::text AS lease_token, lease_expires_at, attempts,
             origin_queue, dedup_key
      FROM holdline.messages ORDER BY id
    `.execute(db);
    expect(after).toEqual(before);
    const { rows: partitions } = await sql<{ queue: string }>`
      SELECT queue FROM holdline.message_partitions ORDER BY queue
    `.execute(db);
    expect(partitions.map((p) => p.queue)).toEqual(['mig-orders', 'mig-orders.dlq', 'mig-other']);
    const { rows: inTheirPartitions } = await sql<{ n: number }>`
      SELECT count(*)::int AS n
      FROM holdline.messages m
      JOIN holdline.message_partitions p ON p.queue = m.queue
      WHERE m.tableoid = ('holdline.' || p.table_name)::regclass
    `.execute(db);
    expect(inTheirPartitions[0]!.n).toBe(after.length);

    // Receipts issued before the migration: ack one, ack two in a batch, extend and nack one.
    const receipt = (m: Leased): string => `${m.id}.${m.lease_token}`;
    expect(await ack(db, { receipt: receipt(leased[0]!) })).toMatchObject({ queue: 'mig-orders' });
    expect(
      await ackBatch(db, { receipts: [receipt(leased[1]!), receipt(leased[2]!)] }),
    ).toHaveLength(2);
    const extended = await extendLease(db, { receipt: receipt(leased[3]!), seconds: 60 });
    expect(extended.message.id).toBe(leased[3]!.id);
    expect(await nack(db, { receipt: receipt(leased[3]!), delaySeconds: 0 })).toMatchObject({
      outcome: 'dead_lettered',
    });
    // A receipt whose lease ended before the migration stays refused.
    await expect(ack(db, { receipt: receipt(dying) })).rejects.toMatchObject({
      code: 'LEASE_LOST',
    });

    // Sends continue the same id sequence; the dedup key still holds; leases are new-style.
    const sent = await send(db, { queue: 'mig-orders', message: { payload: { n: 7 } } });
    expect(BigInt(sent.id)).toBeGreaterThan(BigInt(lastIdBefore[0]!.max));
    const again = await send(db, {
      queue: 'mig-other',
      message: { payload: { n: 3 }, dedupKey: 'dedup-1' },
    });
    expect(again.payload).toEqual({ n: 2 });
    const fresh = await receive(db, { queue: 'mig-orders', max: 10 });
    expect(fresh.map((d) => d.message.id)).toEqual([
      ...before.filter((m) => m.queue === 'mig-orders' && m.lease_token === null).map((m) => m.id),
      sent.id,
    ]);
    expect(await ackBatch(db, { receipts: fresh.map((d) => d.receipt) })).toHaveLength(
      fresh.length,
    );
    const { rows: dead } = await sql<{ id: string }>`
      SELECT id::text AS id FROM holdline.dead_letters WHERE origin_queue = 'mig-orders' ORDER BY id
    `.execute(db);
    expect(dead.map((d) => d.id)).toEqual([leased[3]!.id, dying.id]);
  });
});
