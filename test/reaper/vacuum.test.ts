import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ackBatch, receive } from '../../src/queue/operations.ts';
import { Reaper } from '../../src/reaper/reaper.ts';
import { vacuumMessagesIfBehind } from '../../src/reaper/vacuum.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { makeQueue, sendMessages, silentLogger } from '../helpers/factories.ts';
import { pollUntil } from '../helpers/notifications.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

/**
 * The statistics PostgreSQL keeps for queue `queue`'s partition of holdline.messages
 * (migrations/0040), read in a new transaction.
 */
async function messageTableStats(queue: string): Promise<{ deadTuples: number; vacuums: number }> {
  const { rows } = await sql<{ dead: string; vacuums: string }>`
    SELECT s.n_dead_tup AS dead, s.vacuum_count AS vacuums
    FROM holdline.message_partitions p
    JOIN pg_stat_user_tables s ON s.schemaname = 'holdline' AND s.relname = p.table_name
    WHERE p.queue = ${queue}
  `.execute(t.db);
  return { deadTuples: Number(rows[0]!.dead), vacuums: Number(rows[0]!.vacuums) };
}

/** Sends, leases and acks `count` messages: two dead row versions each. */
async function churn(queue: string, count: number): Promise<void> {
  await makeQueue(t.db, queue);
  // This file's database is its own: autovacuum must not clean up before the reaper does
  // (it is off on some servers and on in others).
  const { rows } = await sql<{ table_name: string }>`
    SELECT table_name FROM holdline.message_partitions WHERE queue = ${queue}
  `.execute(t.db);
  await sql`ALTER TABLE ${sql.table(`holdline.${rows[0]!.table_name}`)}
            SET (autovacuum_enabled = false)`.execute(t.db);
  await sendMessages(t.db, queue, count);
  for (;;) {
    const deliveries = await receive(t.db, { queue, max: 1000 });
    if (deliveries.length === 0) return;
    await ackBatch(t.db, { receipts: deliveries.map((d) => d.receipt) });
  }
}

describe('vacuum of holdline.messages', () => {
  it('does nothing below the threshold, and vacuums once dead rows reach it', async () => {
    await churn('vacuum-churn', 1_500);
    // Backends report their counts to the statistics within about a second of committing.
    await pollUntil(
      'dead rows in the statistics',
      async () => (await messageTableStats('vacuum-churn')).deadTuples >= 2_000,
      10_000,
    );
    const before = await messageTableStats('vacuum-churn');

    expect(await vacuumMessagesIfBehind(t.db, 1_000_000)).toEqual({
      deadTuples: before.deadTuples,
      vacuumed: false,
    });
    expect((await messageTableStats('vacuum-churn')).vacuums).toBe(before.vacuums);

    expect(await vacuumMessagesIfBehind(t.db, 1_000)).toEqual({
      deadTuples: before.deadTuples,
      vacuumed: true,
    });
    const after = await messageTableStats('vacuum-churn');
    expect(after.vacuums).toBe(before.vacuums + 1);
    expect(after.deadTuples).toBeLessThan(1_000);
  });

  it('is run by the leading reaper in the background of its passes', async () => {
    await churn('vacuum-reaper', 1_500);
    await pollUntil(
      'dead rows in the statistics',
      async () => (await messageTableStats('vacuum-reaper')).deadTuples >= 2_000,
      10_000,
    );
    const before = await messageTableStats('vacuum-reaper');
    const reaper = new Reaper({
      db: t.db,
      connectionString: t.url,
      logger: silentLogger(),
      intervalMs: 50,
      vacuumCheckIntervalMs: 50,
      vacuumDeadTuples: 1_000,
    });
    const vacuumed = new Promise<number>((resolve) => reaper.once('vacuumed', resolve));
    reaper.start();
    try {
      expect(await vacuumed).toBeGreaterThanOrEqual(2_000);
    } finally {
      await reaper.stop();
    }
    expect((await messageTableStats('vacuum-reaper')).vacuums).toBeGreaterThan(before.vacuums);
  });
});
