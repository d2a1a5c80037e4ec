import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  bindQueue,
  createQueue,
  listBindings,
  publish,
  unbindQueue,
} from '../../src/queue/operations.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.drop();
});
// Bindings are global to the database: every test starts with none, so a '#' bound by one
// test cannot route another test's publishes.
beforeEach(async () => {
  await t.db.deleteFrom('holdline.topic_bindings').execute();
});

/** Creates `queue` and binds it to each pattern. */
async function boundQueue(queue: string, ...patterns: string[]): Promise<void> {
  await createQueue(t.db, { name: queue });
  for (const pattern of patterns) await bindQueue(t.db, { queue, pattern });
}

/** The queues a publish to `topic` lands in, in the order publish returned them. */
async function routedTo(topic: string): Promise<string[]> {
  const copies = await publish(t.db, { topic, message: { payload: { topic } } });
  return copies.map((m) => m.queue);
}

async function countMessages(queues: readonly string[]): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM holdline.messages WHERE queue = ANY(${queues}::text[])`.execute(
    t.db,
  );
  return rows[0]!.n;
}

describe('topic routing', () => {
  it("routes 'orders.*' to topics of exactly one more word", async () => {
    await boundQueue('route-star', 'orders.*');
    expect(await routedTo('orders.created')).toEqual(['route-star']);
    expect(await routedTo('orders.a')).toEqual(['route-star']);
    expect(await routedTo('orders.a.b')).toEqual([]);
    expect(await routedTo('orders')).toEqual([]);
    expect(await routedTo('users.created')).toEqual([]);
    expect(await countMessages(['route-star'])).toBe(2);
  });

  it("routes 'orders.#' to orders and any number of words below it", async () => {
    await boundQueue('route-hash', 'orders.#');
    expect(await routedTo('orders')).toEqual(['route-hash']);
    expect(await routedTo('orders.a')).toEqual(['route-hash']);
    expect(await routedTo('orders.a.b')).toEqual(['route-hash']);
    expect(await routedTo('ordersx')).toEqual([]);
    expect(await routedTo('users.orders')).toEqual([]);
  });

  it("routes every topic to a queue bound to '#'", async () => {
    await boundQueue('route-all', '#');
    for (const topic of ['a', 'orders.created', 'x.y.z.w', 'with-dash_and_underscore.1']) {
      expect(await routedTo(topic)).toEqual(['route-all']);
    }
  });

  it("routes '*.created' to a created event of any single-word source", async () => {
    await boundQueue('route-any-created', '*.created');
    expect(await routedTo('orders.created')).toEqual(['route-any-created']);
    expect(await routedTo('users.created')).toEqual(['route-any-created']);
    expect(await routedTo('created')).toEqual([]);
    expect(await routedTo('orders.eu.created')).toEqual([]);
    expect(await routedTo('orders.updated')).toEqual([]);
  });

  it('routes a literal pattern to that exact topic only', async () => {
    await boundQueue('route-literal', 'orders.created');
    expect(await routedTo('orders.created')).toEqual(['route-literal']);
    expect(await routedTo('orders.created.eu')).toEqual([]);
    expect(await routedTo('orders.createdx')).toEqual([]);
    expect(await routedTo('Orders.created')).toEqual([]);
    expect(await routedTo('ordersXcreated')).toEqual([]);
  });

  it('copies one message into exactly the bound queues that match, in queue-name order', async () => {
    await boundQueue('route-fan-c', 'orders.*');
    await boundQueue('route-fan-a', 'orders.#');
    await boundQueue('route-fan-b', 'users.*');
    await boundQueue('route-fan-d', 'orders.created', '*.created'); // two matches, one copy

    const copies = await publish(t.db, {
      topic: 'orders.created',
      message: { payload: { order: 7 }, headers: { source: 'test' }, priority: 3 },
    });

    expect(copies.map((m) => m.queue)).toEqual(['route-fan-a', 'route-fan-c', 'route-fan-d']);
    expect(new Set(copies.map((m) => m.id)).size).toBe(3);
    for (const copy of copies) {
      expect(copy).toMatchObject({
        payload: { order: 7 },
        headers: { source: 'test' },
        priority: 3,
        state: 'READY',
      });
    }
    const { rows } = await sql<{ queue: string; n: number }>`
      SELECT queue, count(*)::int AS n FROM holdline.messages
      WHERE queue LIKE 'route-fan-%' GROUP BY queue ORDER BY queue`.execute(t.db);
    expect(rows).toEqual([
      { queue: 'route-fan-a', n: 1 },
      { queue: 'route-fan-c', n: 1 },
      { queue: 'route-fan-d', n: 1 },
    ]);
  });

  it('returns no messages and writes nothing for a topic no pattern matches', async () => {
    await boundQueue('route-unroutable', 'orders.*');
    const before = await totalMessages();
    await expect(
      publish(t.db, { topic: 'nobody.listens.here', message: { payload: 1 } }),
    ).resolves.toEqual([]);
    expect(await totalMessages()).toBe(before);
  });

  it('returns the new ids from SELECT holdline.publish(...) in queue-name order', async () => {
    await boundQueue('route-sql-b', 'billing.#');
    await boundQueue('route-sql-a', 'billing.paid');
    const { rows } = await sql<{ ids: string[] }>`
      SELECT holdline.publish('billing.paid', '{"amount": 10}'::jsonb) AS ids`.execute(t.db);
    const ids = rows[0]!.ids;
    expect(ids).toHaveLength(2);

    const { rows: stored } = await sql<{ id: string; queue: string; payload: unknown }>`
      SELECT id, queue, payload FROM holdline.messages
      WHERE id = ANY(${ids}::bigint[]) ORDER BY queue`.execute(t.db);
    expect(stored).toEqual([
      { id: ids[0], queue: 'route-sql-a', payload: { amount: 10 } },
      { id: ids[1], queue: 'route-sql-b', payload: { amount: 10 } },
    ]);

    const { rows: none } = await sql<{ ids: string[] }>`
      SELECT holdline.publish('nothing.bound.here', '1'::jsonb) AS ids`.execute(t.db);
    expect(none[0]!.ids).toEqual([]);
  });

  it('keeps one binding when the same pattern is bound twice', async () => {
    await boundQueue('route-twice', 'orders.*', 'orders.*');
    await bindQueue(t.db, { queue: 'route-twice', pattern: 'orders.*' });
    expect(await listBindings(t.db, { queue: 'route-twice' })).toEqual(['orders.*']);
    const { rows } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM holdline.topic_bindings WHERE queue = 'route-twice'`.execute(
      t.db,
    );
    expect(rows[0]!.n).toBe(1);
    expect(await routedTo('orders.created')).toEqual(['route-twice']);
  });

  it('stops routing to a queue once its binding is removed', async () => {
    await boundQueue('route-unbind', 'orders.*');
    expect(await unbindQueue(t.db, { queue: 'route-unbind', pattern: 'orders.*' })).toBe(true);
    expect(await unbindQueue(t.db, { queue: 'route-unbind', pattern: 'orders.*' })).toBe(false);
    expect(await routedTo('orders.created')).toEqual([]);
  });

  it('writes no copy anywhere when one bound queue refuses the message', async () => {
    await boundQueue('route-atomic-a', 'big.*');
    await createQueue(t.db, { name: 'route-atomic-b', config: { maxPayloadBytes: 10 } });
    await bindQueue(t.db, { queue: 'route-atomic-b', pattern: 'big.*' });
    await expect(
      publish(t.db, { topic: 'big.one', message: { payload: 'x'.repeat(100) } }),
    ).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    expect(await countMessages(['route-atomic-a', 'route-atomic-b'])).toBe(0);
  });
});

describe('routing input validation', () => {
  const queue = 'route-bad-input';
  beforeAll(async () => {
    await createQueue(t.db, { name: queue });
  });

  it.each([
    '',
    '.orders',
    'orders.',
    'orders..created',
    'orders.*x',
    'orders.#x',
    'order s',
    'orders.%',
    "x'; drop table holdline.messages; --",
    'a'.repeat(256),
  ])('refuses to bind the pattern %j with BAD_USER_INPUT and binds nothing', async (pattern) => {
    await expect(bindQueue(t.db, { queue, pattern })).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
    });
    expect(await listBindings(t.db, { queue })).toEqual([]);
  });

  it.each(['', 'orders.*', 'orders.#', '#', 'a..b', '.a', 'a.', 'a b', 'a'.repeat(256)])(
    'refuses to publish to the topic %j with BAD_USER_INPUT (HL400 in SQL) and writes nothing',
    async (topic) => {
      // Bound to everything: a topic that slipped through would land here.
      await bindQueue(t.db, { queue, pattern: '#' });
      const before = await totalMessages();
      await expect(publish(t.db, { topic, message: { payload: 1 } })).rejects.toMatchObject({
        code: 'BAD_USER_INPUT',
      });
      await expect(
        sql`SELECT holdline.publish(${topic}, '1'::jsonb)`.execute(t.db),
      ).rejects.toMatchObject({ code: 'HL400' });
      expect(await totalMessages()).toBe(before);
    },
  );

  it('refuses to bind a queue that does not exist with QUEUE_NOT_FOUND', async () => {
    await expect(
      bindQueue(t.db, { queue: 'route-missing', pattern: 'orders.*' }),
    ).rejects.toMatchObject({ code: 'QUEUE_NOT_FOUND' });
    const { rows } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM holdline.topic_bindings`.execute(t.db);
    expect(rows[0]!.n).toBe(0);
  });
});

async function totalMessages(): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM holdline.messages`.execute(t.db);
  return rows[0]!.n;
}
