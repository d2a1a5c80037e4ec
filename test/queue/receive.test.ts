import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, createPool } from '../../src/db/pool.ts';
import {
  ackBatch,
  queueStats,
  receive,
  send,
  sendBatch,
  setQueuePaused,
} from '../../src/queue/operations.ts';
import type { Delivery, Executor, SendInput } from '../../src/queue/operations.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import {
  databaseNow,
  makeQueue,
  makeQueueWithMessages,
  secondsAfter,
  sendMessages,
} from '../helpers/factories.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

/** Delivery order as DESIGN.md states it: priority desc, then runAt, then id. */
function inDeliveryOrder(a: Delivery, b: Delivery): number {
  const x = a.message;
  const y = b.message;
  if (x.priority !== y.priority) return y.priority - x.priority;
  if (x.runAt.getTime() !== y.runAt.getTime()) return x.runAt.getTime() - y.runAt.getTime();
  return BigInt(x.id) < BigInt(y.id) ? -1 : 1;
}

describe('receive under concurrency', () => {
  const MESSAGES = 5_000;
  const RECEIVERS = 16;

  it('delivers each of 5,000 committed messages exactly once to 16 concurrent receivers', async () => {
    const queue = 'receive-concurrent';
    const { messages } = await makeQueueWithMessages(t.db, queue, MESSAGES);
    // Each receiver has a pool of one connection: 16 sessions competing for the same rows.
    const receivers = Array.from({ length: RECEIVERS }, () =>
      createDatabase(
        createPool({ connectionString: t.url, max: 1, applicationName: 'receive-test' }),
      ),
    );
    try {
      const pids = await Promise.all(
        receivers.map(async (db) => {
          const { rows } = await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(db);
          return rows[0]!.pid;
        }),
      );
      expect(new Set(pids).size).toBe(RECEIVERS);

      let delivered = 0;
      const receiveAll = async (db: Executor, index: number): Promise<string[]> => {
        const ids: string[] = [];
        const max = 1 + (index % 8) * 3;
        let emptyInARow = 0;
        // SKIP LOCKED may return short or empty while others hold rows; stop once everything
        // was delivered or this receiver keeps finding nothing.
        while (delivered < MESSAGES && emptyInARow < 20) {
          const batch = await receive(db, { queue, max, visibilityTimeoutSeconds: 600 });
          if (batch.length === 0) {
            emptyInARow += 1;
            continue;
          }
          emptyInARow = 0;
          delivered += batch.length;
          ids.push(...batch.map((d) => d.message.id));
          // Ack every other batch, so deletes race with the receives too.
          if (ids.length % 2 === 0) {
            expect(await ackBatch(db, { receipts: batch.map((d) => d.receipt) })).toHaveLength(
              batch.length,
            );
          }
        }
        return ids;
      };
      const perReceiver = await Promise.all(receivers.map((db, i) => receiveAll(db, i)));

      const all = perReceiver.flat();
      expect(all).toHaveLength(MESSAGES);
      expect(new Set(all).size).toBe(MESSAGES);
      expect(new Set(all)).toEqual(new Set(messages.map((m) => m.id)));
      expect(perReceiver.filter((ids) => ids.length > 0).length).toBeGreaterThan(1);
      // Nothing is left deliverable: every message is either acked or still leased.
      expect(await receive(t.db, { queue, max: 1000 })).toEqual([]);
      const stats = await queueStats(t.db, { queue });
      expect(stats).toMatchObject({ ready: 0, delayed: 0 });
      expect(stats!.leased).toBe(stats!.total);
    } finally {
      await Promise.all(receivers.map((db) => db.destroy()));
    }
  });
});

describe('receive order', () => {
  /** Sent in this order (ids ascending); expected delivery order: f b d c g a e. */
  function orderFixture(base: Date): Array<SendInput & { payload: string }> {
    return [
      { payload: 'a', priority: 0, runAt: secondsAfter(base, 3) },
      { payload: 'b', priority: 5, runAt: secondsAfter(base, 2) },
      { payload: 'c', priority: 0, runAt: secondsAfter(base, 1) },
      { payload: 'd', priority: 5, runAt: secondsAfter(base, 2) },
      { payload: 'e', priority: -1, runAt: base },
      { payload: 'f', priority: 10, runAt: secondsAfter(base, 5) },
      { payload: 'g', priority: 0, runAt: secondsAfter(base, 1) },
    ];
  }

  it('delivers higher priority first, then earlier runAt, then send order', async () => {
    const queue = 'receive-order-one-by-one';
    await makeQueue(t.db, queue);
    const base = secondsAfter(await databaseNow(t.db), -60);
    await sendBatch(t.db, { queue, messages: orderFixture(base) });
    const order: unknown[] = [];
    for (;;) {
      const [delivery] = await receive(t.db, { queue, max: 1 });
      if (delivery === undefined) break;
      order.push(delivery.message.payload);
    }
    expect(order).toEqual(['f', 'b', 'd', 'c', 'g', 'a', 'e']);
  });

  it('leases the first messages in delivery order when max is smaller than the queue', async () => {
    const queue = 'receive-order-batch-subset';
    await makeQueue(t.db, queue);
    const base = secondsAfter(await databaseNow(t.db), -60);
    await sendBatch(t.db, { queue, messages: orderFixture(base) });
    const first = await receive(t.db, { queue, max: 3 });
    expect(first.map((d) => d.message.payload).sort()).toEqual(['b', 'd', 'f']);
    const rest = await receive(t.db, { queue, max: 10 });
    expect(rest.map((d) => d.message.payload).sort()).toEqual(['a', 'c', 'e', 'g']);
  });

  it('returns a batch of deliveries in delivery order', async () => {
    const queue = 'receive-order-batch';
    await makeQueue(t.db, queue);
    const base = secondsAfter(await databaseNow(t.db), -600);
    // Priorities and runAts that disagree with send order, so any other order shows.
    await sendMessages(t.db, queue, 600, (i) => ({
      payload: { i },
      priority: (i * 7) % 5,
      runAt: secondsAfter(base, (i * 13) % 11),
    }));
    const deliveries = await receive(t.db, { queue, max: 600 });
    expect(deliveries).toHaveLength(600);
    const expected = [...deliveries].sort(inDeliveryOrder);
    expect(deliveries.map((d) => d.message.id)).toEqual(expected.map((d) => d.message.id));
  });
});

describe('receive of delayed messages', () => {
  it('does not deliver a message before its delaySeconds or runAt has passed', async () => {
    const queue = 'receive-delayed';
    await makeQueue(t.db, queue);
    const before = new Date();
    const delayed = await send(t.db, { queue, message: { payload: 'delayed', delaySeconds: 60 } });
    const scheduled = await send(t.db, {
      queue,
      message: { payload: 'scheduled', runAt: secondsAfter(before, 120) },
    });
    const ready = await send(t.db, { queue, message: { payload: 'ready' } });
    expect(delayed.state).toBe('DELAYED');
    expect(scheduled.state).toBe('DELAYED');

    const now = await receive(t.db, { queue, max: 10 });
    expect(now.map((d) => d.message.id)).toEqual([ready.id]);
    expect(await receive(t.db, { queue, max: 10, now: secondsAfter(before, 59) })).toEqual([]);

    const afterDelay = await receive(t.db, { queue, max: 10, now: secondsAfter(before, 65) });
    expect(afterDelay.map((d) => d.message.id)).toEqual([delayed.id]);
    expect(await receive(t.db, { queue, max: 10, now: secondsAfter(before, 119) })).toEqual([]);

    const afterRunAt = await receive(t.db, { queue, max: 10, now: secondsAfter(before, 120) });
    expect(afterRunAt.map((d) => d.message.id)).toEqual([scheduled.id]);
  });

  it('bases the lease on the given now when looking into the future', async () => {
    const queue = 'receive-future-lease';
    await makeQueue(t.db, queue, { visibilityTimeoutSeconds: 45 });
    await send(t.db, { queue, message: { payload: 1, delaySeconds: 3600 } });
    const future = secondsAfter(new Date(), 3700);
    const [delivery] = await receive(t.db, { queue, now: future });
    expect(delivery?.leaseExpiresAt.getTime()).toBe(secondsAfter(future, 45).getTime());
  });
});

describe('receive on a paused queue', () => {
  it('delivers nothing while paused and everything once resumed', async () => {
    const queue = 'receive-paused';
    await makeQueue(t.db, queue);
    const paused = await setQueuePaused(t.db, { name: queue, paused: true });
    expect(paused.paused).toBe(true);
    const sent = await sendMessages(t.db, queue, 3);
    expect(await receive(t.db, { queue, max: 10 })).toEqual([]);
    expect(await queueStats(t.db, { queue })).toMatchObject({ ready: 3, leased: 0 });

    await setQueuePaused(t.db, { name: queue, paused: false });
    const deliveries = await receive(t.db, { queue, max: 10 });
    expect(deliveries.map((d) => d.message.id)).toEqual(sent.map((m) => m.id));
  });
});

describe('receive errors and limits', () => {
  it('fails with QUEUE_NOT_FOUND when the queue does not exist', async () => {
    await expect(receive(t.db, { queue: 'receive-no-such-queue' })).rejects.toMatchObject({
      name: 'QueueError',
      code: 'QUEUE_NOT_FOUND',
    });
  });

  it('leases at most max messages per call', async () => {
    const queue = 'receive-max';
    await makeQueueWithMessages(t.db, queue, 10);
    expect(await receive(t.db, { queue })).toHaveLength(1);
    expect(await receive(t.db, { queue, max: 3 })).toHaveLength(3);
    expect(await receive(t.db, { queue, max: 1000 })).toHaveLength(6);
    expect(await receive(t.db, { queue, max: 1000 })).toEqual([]);
  });

  it('rejects max outside 1 to 1000 with BAD_USER_INPUT and leases nothing', async () => {
    const queue = 'receive-max-bounds';
    await makeQueueWithMessages(t.db, queue, 2);
    for (const max of [0, -1, 1001, 1.5]) {
      await expect(receive(t.db, { queue, max })).rejects.toMatchObject({
        code: 'BAD_USER_INPUT',
      });
    }
    expect(await queueStats(t.db, { queue })).toMatchObject({ ready: 2, leased: 0 });
  });
});
