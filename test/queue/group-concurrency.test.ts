/**
 * Per-group concurrency (queue setting groupMaxInFlight): at most N messages of one group in
 * flight, its first N in send order; other groups unaffected; unset, groups stay one at a
 * time in send order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, createPool } from '../../src/db/pool.ts';
import { ack, configureQueue, getMessage, receive, sendBatch } from '../../src/queue/operations.ts';
import type { Delivery } from '../../src/queue/operations.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { makeQueue } from '../helpers/factories.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

function payloads(deliveries: Delivery[]): unknown[] {
  return deliveries.map((d) => d.message.payload);
}

describe('groupMaxInFlight', () => {
  it("leases a group's first N messages at once, the next as one is acked, other groups freely", async () => {
    const queue = 'group-n';
    await makeQueue(t.db, queue, { groupMaxInFlight: 2 });
    await sendBatch(t.db, {
      queue,
      messages: [
        ...['a1', 'a2', 'a3', 'a4'].map((p) => ({ payload: p, groupKey: 'a' })),
        ...['b1', 'b2'].map((p) => ({ payload: p, groupKey: 'b' })),
        { payload: 'free' },
      ],
    });
    const first = await receive(t.db, { queue, max: 10 });
    expect(payloads(first)).toEqual(['a1', 'a2', 'b1', 'b2', 'free']);
    expect(await receive(t.db, { queue, max: 10 })).toEqual([]);
    const a3 = (await getMessage(t.db, { id: String(BigInt(first[1]!.message.id) + 1n) }))!;
    expect(a3).toMatchObject({ payload: 'a3', waitingReason: 'GROUP_HEAD_IN_FLIGHT' });
    await ack(t.db, { receipt: first[0]!.receipt });
    expect(payloads(await receive(t.db, { queue, max: 10 }))).toEqual(['a3']);
  });

  it('never lets 8 concurrent receivers hold more than N of a group', async () => {
    const queue = 'group-race';
    await makeQueue(t.db, queue, { groupMaxInFlight: 3 });
    await sendBatch(t.db, {
      queue,
      messages: Array.from({ length: 60 }, (_, i) => ({ payload: i, groupKey: `g${i % 2}` })),
    });
    const pools = Array.from({ length: 8 }, () =>
      createDatabase(createPool({ connectionString: t.url, max: 1 })),
    );
    try {
      const leased = (await Promise.all(pools.map((db) => receive(db, { queue, max: 10 })))).flat();
      const perGroup = new Map<string, number>();
      for (const d of leased) {
        perGroup.set(d.message.groupKey!, (perGroup.get(d.message.groupKey!) ?? 0) + 1);
      }
      expect([...perGroup.values()]).toEqual([3, 3]);
    } finally {
      await Promise.all(pools.map((db) => db.destroy()));
    }
  });

  it('keeps groups one at a time in send order when unset, and after it is removed', async () => {
    const queue = 'group-default';
    await makeQueue(t.db, queue, { groupMaxInFlight: 5 });
    await configureQueue(t.db, { name: queue, config: { groupMaxInFlight: null } });
    await sendBatch(t.db, {
      queue,
      messages: ['x1', 'x2', 'x3'].map((p) => ({ payload: p, groupKey: 'x' })),
    });
    expect(payloads(await receive(t.db, { queue, max: 10 }))).toEqual(['x1']);
    await expect(
      configureQueue(t.db, { name: queue, config: { groupMaxInFlight: 0 } }),
    ).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    await expect(
      configureQueue(t.db, { name: queue, config: { groupMaxInFlight: 10_001 } }),
    ).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
  });
});
