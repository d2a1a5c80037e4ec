import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { onlyErrorCode, startSecureService } from '../security/harness.ts';
import type { SecureService } from '../security/harness.ts';
import { databaseSnapshot } from './harness.ts';

/** Small chunks, so that every action here spans several of them. */
const CHUNK = 3;

let t: TestDatabase;
let svc: SecureService;
let admin: string;
beforeAll(async () => {
  t = await createTestDatabase();
  svc = await startSecureService(t, { bulkChunkSize: CHUNK });
  admin = await svc.token('bulk-admin', 'admin');
});
afterAll(async () => {
  await svc.stop();
  await t.drop();
});

const DELETE = `mutation ($queue: String!, $state: MessageState, $filter: MessageFilter) {
  deleteMessages(queue: $queue, state: $state, filter: $filter)
}`;
const MOVE = `mutation ($queue: String!, $to: String!, $state: MessageState, $filter: MessageFilter) {
  moveMessages(queue: $queue, to: $to, state: $state, filter: $filter)
}`;
const RETRY = `mutation ($queue: String!, $filter: MessageFilter) {
  retryMessages(queue: $queue, filter: $filter)
}`;
const REDRIVE = `mutation ($queue: String!, $filter: MessageFilter) {
  redriveMessages(queue: $queue, filter: $filter)
}`;

interface Row {
  id: string;
  queue: string;
  payload: { i: number };
  attempts: number;
  leased: boolean;
  ready: boolean;
  dedup_key: string | null;
  origin_queue: string | null;
}

/** Every message of the given queues, by id. */
async function rows(...queues: string[]): Promise<Row[]> {
  const { rows: found } = await sql<Row>`
    SELECT m.id::text, m.queue, m.payload, m.attempts, m.lease_token IS NOT NULL AS leased,
           m.lease_token IS NULL AND m.run_at <= now() AS ready, m.dedup_key, m.origin_queue
    FROM holdline.messages m WHERE m.queue = ANY(${queues}::text[]) ORDER BY m.id
  `.execute(t.db);
  return found;
}

async function createQueue(name: string, config: Record<string, unknown> = {}): Promise<void> {
  await svc.ok(
    admin,
    `mutation ($n: String!, $c: QueueConfigInput) { createQueue(name: $n, config: $c) { name } }`,
    {
      n: name,
      c: config,
    },
  );
}

/** Sends `count` messages with payload { i, even }, committed; returns their ids. */
async function fill(
  queue: string,
  count: number,
  extra: (i: number) => Record<string, unknown> = () => ({}),
): Promise<string[]> {
  const sent = await svc.api.engine.sendBatch(
    queue,
    Array.from({ length: count }, (_, i) => ({ payload: { i, even: i % 2 === 0 }, ...extra(i) })),
  );
  return sent.map((m) => m.id);
}

/** Leases up to `count` messages of `queue` for 10 minutes; their ids, in delivery order. */
async function lease(queue: string, count: number): Promise<string[]> {
  const deliveries = await svc.api.engine.receive({
    queue,
    max: count,
    visibilityTimeoutSeconds: 600,
  });
  return deliveries.map((d) => d.message.id);
}

/** Dead-letters every message of `origin` (a queue with maxAttempts 1): received, then nacked. */
async function deadLetterAll(origin: string): Promise<void> {
  for (;;) {
    const deliveries = await svc.api.engine.receive({ queue: origin, max: 100 });
    if (deliveries.length === 0) return;
    for (const d of deliveries) await svc.api.engine.nack(d.receipt, { error: 'boom' });
  }
}

async function run(query: string, variables: Record<string, unknown>): Promise<number> {
  const data = await svc.ok<Record<string, number>>(admin, query, variables);
  return Object.values(data)[0]!;
}

describe('deleteMessages', () => {
  it('deletes exactly the matching messages across chunks, passing over leased ones', async () => {
    await createQueue('bulk-del');
    const ids = await fill('bulk-del', 20);
    const leased = await lease('bulk-del', 2); // i = 0 (even) and 1
    expect(leased).toEqual(ids.slice(0, 2));

    const deleted = await run(DELETE, { queue: 'bulk-del', filter: { payload: { even: true } } });

    expect(deleted).toBe(9);
    const left = await rows('bulk-del');
    expect(left.map((r) => r.id)).toEqual(ids.filter((_, i) => i % 2 === 1 || i === 0));
    expect(left.find((r) => r.id === ids[0])?.leased).toBe(true);
  });

  it('deletes by state alone: DELAYED leaves the ready ones', async () => {
    await createQueue('bulk-del-state');
    const ready = await fill('bulk-del-state', 4);
    await fill('bulk-del-state', 5, () => ({ delaySeconds: 600 }));
    expect(await run(DELETE, { queue: 'bulk-del-state', state: 'DELAYED' })).toBe(5);
    expect((await rows('bulk-del-state')).map((r) => r.id)).toEqual(ready);
  });

  it('passes over a message another transaction holds locked instead of waiting for it', async () => {
    await createQueue('bulk-del-locked');
    const ids = await fill('bulk-del-locked', 6);
    const other = await t.connect();
    try {
      await other.query('BEGIN');
      await other.query('SELECT id FROM holdline.messages WHERE id = $1 FOR UPDATE', [ids[2]]);
      expect(await run(DELETE, { queue: 'bulk-del-locked' })).toBe(5);
      await other.query('ROLLBACK');
    } finally {
      await other.end();
    }
    expect((await rows('bulk-del-locked')).map((r) => r.id)).toEqual([ids[2]]);
  });

  it('neither waits for a producer in an open transaction nor takes its message', async () => {
    await createQueue('bulk-del-producer');
    await fill('bulk-del-producer', 4);
    const producer = await t.connect();
    try {
      await producer.query('BEGIN');
      await producer.query(`SELECT holdline.send('bulk-del-producer', '{"late": true}')`);
      expect(await run(DELETE, { queue: 'bulk-del-producer' })).toBe(4);
      await producer.query('COMMIT');
    } finally {
      await producer.end();
    }
    expect((await rows('bulk-del-producer')).map((r) => r.payload)).toEqual([{ late: true }]);
  });

  it('refuses state LEASED, a bad filter and an unknown queue, changing nothing', async () => {
    await createQueue('bulk-del-bad');
    await fill('bulk-del-bad', 3);
    const before = await databaseSnapshot(t);
    const code = async (variables: Record<string, unknown>): Promise<string | undefined> =>
      onlyErrorCode(await svc.request(admin, DELETE, variables));
    expect(await code({ queue: 'bulk-del-bad', state: 'LEASED' })).toBe('BAD_USER_INPUT');
    expect(await code({ queue: 'bulk-del-bad', filter: { payload: 'text' } })).toBe(
      'BAD_USER_INPUT',
    );
    expect(await code({ queue: 'bulk-del-bad', filter: { headers: [1] } })).toBe('BAD_USER_INPUT');
    expect(
      await code({
        queue: 'bulk-del-bad',
        filter: { createdAfter: '2030-01-02T00:00:00Z', createdBefore: '2030-01-01T00:00:00Z' },
      }),
    ).toBe('BAD_USER_INPUT');
    expect(await code({ queue: 'bulk-del-nobody' })).toBe('QUEUE_NOT_FOUND');
    expect(await databaseSnapshot(t)).toBe(before);
  });
});

describe('moveMessages', () => {
  it('moves exactly the matching unleased messages, keeping them but their dedup key', async () => {
    await createQueue('bulk-move-from');
    await createQueue('bulk-move-to');
    const ids = await fill('bulk-move-from', 10, (i) => ({ dedupKey: `k${i}`, priority: i }));
    // Leases the highest priorities first: i = 9 (odd) and 8 (even).
    const leased = await lease('bulk-move-from', 2);
    expect(leased).toEqual([ids[9], ids[8]]);

    const moved = await run(MOVE, {
      queue: 'bulk-move-from',
      to: 'bulk-move-to',
      filter: { payload: { even: true } },
    });

    expect(moved).toBe(4);
    const target = await rows('bulk-move-to');
    expect(target.map((r) => r.id)).toEqual([ids[0], ids[2], ids[4], ids[6]]);
    expect(target.every((r) => r.dedup_key === null && r.ready && r.attempts === 0)).toBe(true);
    expect((await rows('bulk-move-from')).map((r) => r.id)).toEqual(
      ids.filter((_, i) => i % 2 === 1 || i === 8),
    );
  });

  it('refuses moving into the same queue or a missing one, changing nothing', async () => {
    await createQueue('bulk-move-bad');
    await fill('bulk-move-bad', 3);
    const before = await databaseSnapshot(t);
    const code = async (variables: Record<string, unknown>): Promise<string | undefined> =>
      onlyErrorCode(await svc.request(admin, MOVE, variables));
    expect(await code({ queue: 'bulk-move-bad', to: 'bulk-move-bad' })).toBe('BAD_USER_INPUT');
    expect(await code({ queue: 'bulk-move-bad', to: 'bulk-move-nobody' })).toBe('QUEUE_NOT_FOUND');
    expect(await code({ queue: 'bulk-move-bad', to: 'bulk-move-to', state: 'LEASED' })).toBe(
      'BAD_USER_INPUT',
    );
    expect(await databaseSnapshot(t)).toBe(before);
  });

  it('wakes a consumer long-polling the target queue', async () => {
    await createQueue('bulk-move-wake-from');
    await createQueue('bulk-move-wake-to');
    await fill('bulk-move-wake-from', 1);
    const waiting = svc.api.engine.receive({ queue: 'bulk-move-wake-to', waitSeconds: 10 });
    // The waiter registers before the move; a wake-up, not the 1 s poll, must reach it.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = Date.now();
    expect(await run(MOVE, { queue: 'bulk-move-wake-from', to: 'bulk-move-wake-to' })).toBe(1);
    expect(await waiting).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(900);
  });
});

describe('retryMessages', () => {
  it('makes matching delayed and backing-off messages ready now, keeping their attempts', async () => {
    await createQueue('bulk-retry', { backoffInitialSeconds: 600, backoffMaxSeconds: 600 });
    const ready = await fill('bulk-retry', 2);
    const delayed = await fill('bulk-retry', 4, () => ({ delaySeconds: 600 }));
    // Two ready ones delivered and nacked: now backing off for 10 minutes, attempts 1.
    const failed = await svc.api.engine.receive({ queue: 'bulk-retry', max: 2 });
    for (const d of failed) await svc.api.engine.nack(d.receipt);
    const leased = await fill('bulk-retry', 1, () => ({ delaySeconds: 0 }));
    await lease('bulk-retry', 1);

    const retried = await run(RETRY, { queue: 'bulk-retry', filter: { payload: { even: true } } });

    // even: delayed i = 0, 2 and the nacked i = 0 of the first fill (ids ready[0]).
    expect(retried).toBe(3);
    const byId = new Map((await rows('bulk-retry')).map((r) => [r.id, r]));
    expect(byId.get(ready[0]!)).toMatchObject({ ready: true, attempts: 1 });
    expect(byId.get(ready[1]!)).toMatchObject({ ready: false, attempts: 1 });
    expect(delayed.map((id) => byId.get(id)?.ready)).toEqual([true, false, true, false]);
    expect(byId.get(leased[0]!)?.leased).toBe(true);
  });
});

describe('redriveMessages', () => {
  it('moves exactly the matching dead letters back to their own origins, attempts reset', async () => {
    await createQueue('bulk-origin-a', { maxAttempts: 1, deadLetterQueue: 'bulk-shared.dlq' });
    await createQueue('bulk-origin-b', { maxAttempts: 1, deadLetterQueue: 'bulk-shared.dlq' });
    const a = await fill('bulk-origin-a', 6);
    const b = await fill('bulk-origin-b', 4);
    await deadLetterAll('bulk-origin-a');
    await deadLetterAll('bulk-origin-b');
    // One matching dead letter is being consumed from the DLQ: it stays.
    const [held] = await lease('bulk-shared.dlq', 1);
    expect(held).toBe(a[0]);

    const redriven = await run(REDRIVE, {
      queue: 'bulk-shared.dlq',
      filter: { payload: { even: true } },
    });

    expect(redriven).toBe(4); // a: i = 2, 4; b: i = 0, 2
    const back = await rows('bulk-origin-a', 'bulk-origin-b');
    expect(back.map((r) => [r.id, r.queue])).toEqual([
      [a[2], 'bulk-origin-a'],
      [a[4], 'bulk-origin-a'],
      [b[0], 'bulk-origin-b'],
      [b[2], 'bulk-origin-b'],
    ]);
    expect(back.every((r) => r.attempts === 0 && r.origin_queue === null && r.ready)).toBe(true);
    const dlq = await rows('bulk-shared.dlq');
    expect(dlq.map((r) => r.id)).toEqual([a[0], a[1], a[3], a[5], b[1], b[3]]);
  });

  it('leaves dead letters whose origin queue is gone', async () => {
    await createQueue('bulk-gone', { maxAttempts: 1 });
    await fill('bulk-gone', 2);
    await deadLetterAll('bulk-gone');
    await svc.ok(admin, `mutation { deleteQueue(name: "bulk-gone") }`);
    expect(await run(REDRIVE, { queue: 'bulk-gone.dlq' })).toBe(0);
    expect(await rows('bulk-gone.dlq')).toHaveLength(2);
  });
});

describe('scopes', () => {
  beforeAll(async () => {
    await createQueue('scoped-origin', { maxAttempts: 1, deadLetterQueue: 'scoped-dlq' });
    await createQueue('scoped-other');
    await fill('scoped-origin', 4);
    await deadLetterAll('scoped-origin');
    await fill('scoped-origin', 4, () => ({ delaySeconds: 600 }));
  });

  it('a read-only token gets FORBIDDEN from every bulk action, and nothing changes', async () => {
    const reader = await svc.token('bulk-reader', 'read:*');
    const before = await databaseSnapshot(t);
    const operations: [string, Record<string, unknown>][] = [
      [DELETE, { queue: 'scoped-origin' }],
      [MOVE, { queue: 'scoped-origin', to: 'scoped-other' }],
      [RETRY, { queue: 'scoped-origin' }],
      [REDRIVE, { queue: 'scoped-dlq' }],
    ];
    for (const [query, variables] of operations) {
      expect(onlyErrorCode(await svc.request(reader, query, variables))).toBe('FORBIDDEN');
    }
    expect(await databaseSnapshot(t)).toBe(before);
    // It may still count what an action would touch.
    const count = await svc.ok<{ messageCount: number }>(
      reader,
      `{ messageCount(queue: "scoped-dlq") }`,
    );
    expect(count.messageCount).toBe(4);
  });

  it('moving needs admin on the target too', async () => {
    const sourceAdmin = await svc.token('bulk-source-admin', 'admin:scoped-origin');
    const before = await databaseSnapshot(t);
    const result = await svc.request(sourceAdmin, MOVE, {
      queue: 'scoped-origin',
      to: 'scoped-other',
    });
    expect(onlyErrorCode(result)).toBe('FORBIDDEN');
    expect(await databaseSnapshot(t)).toBe(before);
  });

  it('redriving needs admin on the origin queues, not just on the dead-letter queue', async () => {
    const dlqAdmin = await svc.token('bulk-dlq-admin', 'admin:scoped-dlq');
    const before = await databaseSnapshot(t);
    expect(onlyErrorCode(await svc.request(dlqAdmin, REDRIVE, { queue: 'scoped-dlq' }))).toBe(
      'FORBIDDEN',
    );
    expect(await databaseSnapshot(t)).toBe(before);

    const both = await svc.token('bulk-both-admin', 'admin:scoped-dlq,admin:scoped-origin');
    const data = await svc.ok<{ redriveMessages: number }>(both, REDRIVE, { queue: 'scoped-dlq' });
    expect(data.redriveMessages).toBe(4);
  });

  it('viewer tells a token what it may do', async () => {
    const reader = await svc.token('bulk-viewer', 'read:scoped-*,receive:scoped-origin');
    const data = await svc.ok<{ viewer: unknown }>(
      reader,
      `{ viewer { authenticated scopes tokenName
                  read: allows(action: READ, queue: "scoped-dlq")
                  admin: allows(action: ADMIN, queue: "scoped-dlq")
                  receive: allows(action: RECEIVE, queue: "scoped-origin")
                  elsewhere: allows(action: READ, queue: "orders") } }`,
    );
    expect(data.viewer).toEqual({
      authenticated: true,
      scopes: ['read:scoped-*', 'receive:scoped-origin'],
      tokenName: 'bulk-viewer',
      read: true,
      admin: false,
      receive: true,
      elsewhere: false,
    });
  });
});
