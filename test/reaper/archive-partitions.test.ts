import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ackBatch, receive } from '../../src/queue/operations.ts';
import { QueueMaintenance } from '../../src/queue/operations.ts';
import type { Executor } from '../../src/queue/operations.ts';
import type { Reaper } from '../../src/reaper/reaper.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { idleReaper, makeQueue, sendMessages } from '../helpers/factories.ts';

let t: TestDatabase;
let reaper: Reaper;
beforeAll(async () => {
  t = await createTestDatabase();
  reaper = idleReaper(t);
  // Reads dead row versions from the pages themselves, not from lagging statistics.
  await sql`CREATE EXTENSION IF NOT EXISTS pgstattuple`.execute(t.db);
});
afterAll(async () => {
  await t.drop();
});

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** Midnight UTC of the day `days` after today's. */
function utcDay(days: number): Date {
  const now = new Date();
  return new Date(
    Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) + days * DAY_MS,
  );
}

/** The archive's partitions (the default one included), with rows and dead row versions. */
async function partitions(db: Executor): Promise<{ name: string; rows: number; dead: number }[]> {
  const { rows } = await sql<{ name: string; rows: number; dead: number }>`
    SELECT c.relname AS name, s.tuple_count::int AS rows, s.dead_tuple_count::int AS dead
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL pgstattuple(c.oid) s
    WHERE i.inhparent = 'holdline.message_archive'::regclass
    ORDER BY c.relname
  `.execute(db);
  return rows;
}

/** Inserts `count` archived rows of `queue` acked at `ackedAt`: a day's acks without a day. */
async function archiveAt(db: Executor, queue: string, ackedAt: Date, count: number): Promise<void> {
  await sql`
    INSERT INTO holdline.message_archive (id, queue, payload, priority, attempts, sent_at, acked_at)
    SELECT nextval('holdline.messages_id_seq'), ${queue}, jsonb_build_object('n', g), 0, 1,
           ${ackedAt}::timestamptz, ${ackedAt}::timestamptz
    FROM generate_series(1, ${count}::int) g
  `.execute(db);
}

describe('archive partitions', () => {
  it('creates day partitions ahead and moves acks that waited in the default partition', async () => {
    await makeQueue(t.db, 'early', { archiveSeconds: 86_400 });
    await sendMessages(t.db, 'early', 3);
    const deliveries = await receive(t.db, { queue: 'early', max: 3 });
    await ackBatch(t.db, { receipts: deliveries.map((d) => d.receipt) });
    // No partition yet: the acks waited in the default partition rather than failing.
    expect((await partitions(t.db)).map((p) => [p.name, p.rows])).toEqual([
      ['message_archive_default', 3],
    ]);

    const change = await reaper.maintainArchive();
    const day = (d: number): string =>
      `message_archive_${utcDay(d).toISOString().slice(0, 10).replaceAll('-', '')}`;
    expect(change).toEqual({ created: [day(0), day(1), day(2)], dropped: [] });
    const after = await partitions(t.db);
    expect(after.find((p) => p.name === day(0))?.rows).toBe(3);
    expect(after.find((p) => p.name === 'message_archive_default')?.rows).toBe(0);
    // A second pass has nothing to do.
    expect(await reaper.maintainArchive()).toEqual({ created: [], dropped: [] });
    // The move out of the default partition is the one DELETE the archive ever sees (only
    // after the leader was away); vacuum clears it, as autovacuum would, so that the next
    // test starts from an archive without dead tuples.
    await sql`VACUUM holdline.message_archive_default`.execute(t.db);
  });

  it('drops whole partitions past retention: after two simulated days, no dead tuples', async () => {
    await makeQueue(t.db, 'hourly', { archiveSeconds: 3600 });
    // Start past the partitions of the test above, at midnight UTC: the clock moves, nobody sleeps.
    const start = utcDay(10);
    let mostPartitions = 0;
    const dropped: string[] = [];
    for (let hour = 0; hour < 48; hour++) {
      const now = new Date(start.getTime() + hour * HOUR_MS);
      dropped.push(...(await reaper.maintainArchive(now)).dropped);
      await archiveAt(t.db, 'hourly', now, 50);
      mostPartitions = Math.max(mostPartitions, (await partitions(t.db)).length);
    }
    const end = new Date(start.getTime() + 49 * HOUR_MS);
    dropped.push(...(await reaper.maintainArchive(end)).dropped);

    const day = (d: number): string =>
      `message_archive_${new Date(start.getTime() + d * DAY_MS).toISOString().slice(0, 10).replaceAll('-', '')}`;
    // The days of the test above went first (their queue keeps a day), then both simulated days.
    expect(dropped.slice(-2)).toEqual([day(0), day(1)]);
    const left = await partitions(t.db);
    expect(left.map((p) => p.name).sort()).toEqual(
      ['message_archive_default', day(2), day(3), day(4)].sort(),
    );
    expect(left.every((p) => p.rows === 0 && p.dead === 0)).toBe(true);
    // Today and two days ahead, plus the default partition, plus the day just ended while its
    // hour of retention runs: the archive never grows with time.
    expect(mostPartitions).toBeLessThanOrEqual(5);
  });

  it('keeps a partition while any queue with rows in it retains them, and hides the rest', async () => {
    await makeQueue(t.db, 'brief', { archiveSeconds: 3600 });
    await makeQueue(t.db, 'lasting', { archiveSeconds: 3 * 86_400 });
    const start = utcDay(20);
    await reaper.maintainArchive(start);
    await archiveAt(t.db, 'brief', new Date(start.getTime() + HOUR_MS), 5);
    await archiveAt(t.db, 'lasting', new Date(start.getTime() + HOUR_MS), 5);
    const name = `message_archive_${start.toISOString().slice(0, 10).replaceAll('-', '')}`;

    // Two days on, 'brief' has expired but 'lasting' has not: the partition stays.
    expect(
      (await reaper.maintainArchive(new Date(start.getTime() + 2 * DAY_MS))).dropped,
    ).not.toContain(name);
    // Four days on (a day's partition plus three days of retention), it goes whole.
    expect(
      (await reaper.maintainArchive(new Date(start.getTime() + 4 * DAY_MS))).dropped,
    ).toContain(name);
  });

  it('makes partitions a minute wide when asked, and a new width waits for the old ranges', async () => {
    const maintenance = new QueueMaintenance(t.db);
    const start = utcDay(40);
    const stamp = (minutes: number): string =>
      `message_archive_${new Date(start.getTime() + minutes * 60_000)
        .toISOString()
        .slice(0, 19)
        .replace(/[-:]/g, '')
        .replace('T', '_')}`;
    expect(await maintenance.createArchivePartitions(2, 60, start)).toEqual([
      stamp(0),
      stamp(1),
      stamp(2),
    ]);
    // Back to days: the day that overlaps those minutes is skipped, the next two are made.
    const days = await maintenance.createArchivePartitions(2, 86_400, start);
    expect(days).toHaveLength(2);
    expect(days).not.toContain(
      `message_archive_${start.toISOString().slice(0, 10).replaceAll('-', '')}`,
    );
    // Nothing retains them: the minutes go as soon as they end.
    const dropped = await maintenance.dropExpiredArchivePartitions(
      new Date(start.getTime() + 3 * 60_000),
    );
    expect(dropped).toEqual(expect.arrayContaining([stamp(0), stamp(1), stamp(2)]));
    await expect(maintenance.createArchivePartitions(2, 59, start)).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
    });
  });
});
