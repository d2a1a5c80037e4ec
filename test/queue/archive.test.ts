import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  QueueError,
  ack,
  ackBatch,
  ackEach,
  configureQueue,
  decodeReceipt,
  deleteQueue,
  getQueue,
  listArchivedMessages,
  nack,
  purgeQueue,
  receive,
} from '../../src/queue/operations.ts';
import type { Executor, ListArchivedMessagesParams } from '../../src/queue/operations.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { makeQueue, sendMessages } from '../helpers/factories.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

const DAY = 86_400;

interface ArchiveRow {
  id: string;
  queue: string;
  payload: unknown;
  headers: Record<string, unknown> | null;
  priority: number;
  attempts: number;
  group_key: string | null;
  sent_at: Date;
  acked_at: Date;
}

/** Every row of the archive table for `queue` (retention not applied), by id. */
async function archiveRows(db: Executor, queue: string): Promise<ArchiveRow[]> {
  const { rows } = await sql<ArchiveRow>`
    SELECT id::text AS id, queue, payload, headers, priority, attempts, group_key, sent_at, acked_at
    FROM holdline.message_archive WHERE queue = ${queue} ORDER BY id
  `.execute(db);
  return rows;
}

/** Receives and acks every message of `queue`, `max` per receive, with ackBatch. */
async function drain(db: Executor, queue: string, max = 100): Promise<number> {
  let acked = 0;
  for (;;) {
    const deliveries = await receive(db, { queue, max });
    if (deliveries.length === 0) return acked;
    acked += (await ackBatch(db, { receipts: deliveries.map((d) => d.receipt) })).length;
  }
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof QueueError) return error.code;
    throw error;
  }
  throw new Error('expected a QueueError');
}

describe('archive on ack', () => {
  // First in the file: no queue archives yet, so acks take the path without the archive.
  it('deletes an acked message without archiving anything while no queue archives', async () => {
    await makeQueue(t.db, 'plain');
    await sendMessages(t.db, 'plain', 3);
    expect(await drain(t.db, 'plain')).toBe(3);
    const { rows } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM holdline.message_archive`.execute(t.db);
    expect(rows[0]!.n).toBe(0);
  });

  it("moves an acked message into the archive in the ack's own statement, every field kept", async () => {
    await makeQueue(t.db, 'kept', { archiveSeconds: DAY });
    const [sent] = await sendMessages(t.db, 'kept', 1, () => ({
      payload: { order: 7 },
      headers: { source: 'web' },
      priority: 3,
      groupKey: 'customer-1',
    }));
    const [first] = await receive(t.db, { queue: 'kept', max: 1 });
    await nack(t.db, { receipt: first!.receipt, delaySeconds: 0 });
    const [second] = await receive(t.db, { queue: 'kept', max: 1 });
    await ack(t.db, { receipt: second!.receipt });

    const rows = await archiveRows(t.db, 'kept');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      id: sent!.id,
      queue: 'kept',
      payload: { order: 7 },
      headers: { source: 'web' },
      priority: 3,
      attempts: 2,
      group_key: 'customer-1',
    });
    expect(rows[0]!.sent_at.getTime()).toBe(sent!.createdAt.getTime());
    expect(rows[0]!.acked_at.getTime()).toBeGreaterThanOrEqual(sent!.createdAt.getTime());
    const { rows: live } = await sql`SELECT 1 FROM holdline.messages WHERE queue = 'kept'`.execute(
      t.db,
    );
    expect(live).toHaveLength(0);
  });

  it('archives through ackBatch and through the scoped ack, and not a stale receipt', async () => {
    await makeQueue(t.db, 'batched', { archiveSeconds: DAY });
    await sendMessages(t.db, 'batched', 5);
    const deliveries = await receive(t.db, { queue: 'batched', max: 5 });
    await ackBatch(t.db, { receipts: deliveries.slice(0, 3).map((d) => d.receipt) });
    const scoped = await ackEach(t.db, {
      receipts: deliveries.slice(3).map((d) => decodeReceipt(d.receipt)),
      queuePatterns: ['batch%'],
    });
    expect(scoped.every((a) => a?.queue === 'batched')).toBe(true);
    // Acked already: the second ack changes nothing and archives nothing twice.
    await expect(ack(t.db, { receipt: deliveries[0]!.receipt })).rejects.toMatchObject({
      code: 'LEASE_LOST',
    });
    const rows = await archiveRows(t.db, 'batched');
    expect(rows.map((r) => r.id)).toEqual(deliveries.map((d) => d.message.id));
  });

  it("does not archive the acks of a queue whose archive is off while another's is on", async () => {
    await makeQueue(t.db, 'off-beside');
    await sendMessages(t.db, 'off-beside', 4);
    expect(await drain(t.db, 'off-beside')).toBe(4);
    expect(await archiveRows(t.db, 'off-beside')).toEqual([]);
  });

  it('does not archive dead letters or purged messages', async () => {
    await makeQueue(t.db, 'dying', { archiveSeconds: DAY, maxAttempts: 1 });
    await sendMessages(t.db, 'dying', 3);
    const [delivery] = await receive(t.db, { queue: 'dying', max: 1 });
    expect((await nack(t.db, { receipt: delivery!.receipt, error: 'boom' })).outcome).toBe(
      'dead_lettered',
    );
    expect(await purgeQueue(t.db, { name: 'dying' })).toBe(2);
    expect(await archiveRows(t.db, 'dying')).toEqual([]);
    expect(await archiveRows(t.db, 'dying.dlq')).toEqual([]);
  });

  it('takes archiveSeconds from 0 to one year in createQueue and configureQueue', async () => {
    const created = await makeQueue(t.db, 'configured', { archiveSeconds: 3600 });
    expect(created.config.archiveSeconds).toBe(3600);
    expect((await makeQueue(t.db, 'defaulted')).config.archiveSeconds).toBe(0);
    await configureQueue(t.db, { name: 'configured', config: { archiveSeconds: 0 } });
    expect((await getQueue(t.db, { name: 'configured' }))!.config.archiveSeconds).toBe(0);
    for (const archiveSeconds of [-1, 31_536_001, 1.5]) {
      expect(
        await codeOf(configureQueue(t.db, { name: 'configured', config: { archiveSeconds } })),
      ).toBe('BAD_USER_INPUT');
      expect(await codeOf(makeQueue(t.db, `bad-${archiveSeconds}`, { archiveSeconds }))).toBe(
        'BAD_USER_INPUT',
      );
    }
    expect((await getQueue(t.db, { name: 'configured' }))!.config.archiveSeconds).toBe(0);
  });
});

describe('archivedMessages', () => {
  beforeAll(async () => {
    await makeQueue(t.db, 'browse', { archiveSeconds: DAY });
    await sendMessages(t.db, 'browse', 25, (i) => ({
      payload: { i, region: i % 2 === 0 ? 'eu' : 'us', items: [{ sku: `s${i % 3}` }] },
      headers: i % 5 === 0 ? { tenant: 'acme' } : null,
    }));
    await drain(t.db, 'browse', 7);
  });

  it('pages the archive in send order, each page after the cursor of the last', async () => {
    const seen: number[] = [];
    let after: string | null = null;
    for (let pages = 0; ; pages++) {
      expect(pages).toBeLessThan(10);
      const page = await listArchivedMessages(t.db, { queue: 'browse', first: 10, after });
      seen.push(...page.messages.map((m) => (m.payload as { i: number }).i));
      if (!page.hasNextPage) break;
      after = page.endCursor;
    }
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => i));
  });

  it('filters by JSON containment on payload and headers', async () => {
    const eu = await listArchivedMessages(t.db, {
      queue: 'browse',
      filter: { payload: { region: 'eu', items: [{ sku: 's0' }] } },
      first: 100,
    });
    expect(eu.messages.map((m) => (m.payload as { i: number }).i)).toEqual([0, 6, 12, 18, 24]);
    const acme = await listArchivedMessages(t.db, {
      queue: 'browse',
      filter: { headers: { tenant: 'acme' }, payload: { region: 'us' } },
    });
    expect(acme.messages.map((m) => (m.payload as { i: number }).i)).toEqual([5, 15]);
  });

  it('bounds the send time: from inclusive, to exclusive', async () => {
    const all = (await listArchivedMessages(t.db, { queue: 'browse', first: 100 })).messages;
    const sentAt = all[0]!.sentAt;
    const from = await listArchivedMessages(t.db, { queue: 'browse', from: sentAt, first: 100 });
    expect(from.messages).toHaveLength(25);
    const before = await listArchivedMessages(t.db, { queue: 'browse', to: sentAt });
    expect(before.messages).toHaveLength(0);
    const later = await listArchivedMessages(t.db, {
      queue: 'browse',
      from: new Date(Date.now() + 60_000),
    });
    expect(later).toEqual({ messages: [], endCursor: null, hasNextPage: false });
  });

  it("hides messages acked longer ago than the queue's archiveSeconds", async () => {
    await makeQueue(t.db, 'short', { archiveSeconds: 60 });
    await sendMessages(t.db, 'short', 2);
    await drain(t.db, 'short');
    // The first was acked two minutes ago (in a queue created an hour ago), as far as the
    // archive can tell.
    await sql`UPDATE holdline.queues SET created_at = created_at - interval '1 hour'
              WHERE name = 'short'`.execute(t.db);
    await sql`
      UPDATE holdline.message_archive SET acked_at = acked_at - interval '2 minutes'
      WHERE queue = 'short' AND id = (SELECT min(id) FROM holdline.message_archive WHERE queue = 'short')
    `.execute(t.db);
    const page = await listArchivedMessages(t.db, { queue: 'short' });
    expect(page.messages).toHaveLength(1);
    const { rows } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM holdline.archived_messages WHERE queue = 'short'`.execute(
      t.db,
    );
    expect(rows[0]!.n).toBe(1);
  });

  it('shows a queue created again under a deleted one’s name none of the old archive', async () => {
    await makeQueue(t.db, 'reborn', { archiveSeconds: DAY });
    await sendMessages(t.db, 'reborn', 2);
    await drain(t.db, 'reborn');
    expect((await listArchivedMessages(t.db, { queue: 'reborn' })).messages).toHaveLength(2);
    await deleteQueue(t.db, { name: 'reborn' });
    await makeQueue(t.db, 'reborn', { archiveSeconds: DAY });
    expect((await listArchivedMessages(t.db, { queue: 'reborn' })).messages).toEqual([]);
  });

  it('refuses bad input with BAD_USER_INPUT and a missing queue with QUEUE_NOT_FOUND', async () => {
    const now = new Date();
    const bad: ListArchivedMessagesParams[] = [
      { queue: 'browse', from: now, to: new Date(now.getTime() - 1) },
      { queue: 'browse', filter: { payload: [1, 2] as never } },
      { queue: 'browse', filter: { headers: 'acme' as never } },
      { queue: 'browse', filter: 'x' as never },
      { queue: 'browse', first: 0 },
      { queue: 'browse', first: 1001 },
      { queue: 'browse', after: 'abc' },
      { queue: 'no such queue!' },
      { queue: 'browse', from: new Date(Number.NaN) },
    ];
    for (const params of bad) {
      expect(await codeOf(listArchivedMessages(t.db, params)), JSON.stringify(params)).toBe(
        'BAD_USER_INPUT',
      );
    }
    expect(await codeOf(listArchivedMessages(t.db, { queue: 'missing' }))).toBe('QUEUE_NOT_FOUND');
  });
});
