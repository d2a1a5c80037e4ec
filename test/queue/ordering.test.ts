import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ack, createQueue, nack, receive, send, sendBatch } from '../../src/queue/operations.ts';
import type { Delivery } from '../../src/queue/operations.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.drop();
});

const payloads = (deliveries: readonly Delivery[]): unknown[] =>
  deliveries.map((d) => d.message.payload);

async function countMessages(queue: string): Promise<number> {
  const { rows } = await sql<{
    n: number;
  }>`SELECT count(*)::int AS n FROM holdline.messages WHERE queue = ${queue}`.execute(t.db);
  return rows[0]!.n;
}

describe('group FIFO', () => {
  it('delivers one message of a group at a time, in send order, without blocking other groups', async () => {
    const queue = 'order-groups';
    await createQueue(t.db, { name: queue });
    await sendBatch(t.db, {
      queue,
      messages: [
        { payload: 'a1', groupKey: 'a' },
        { payload: 'a2', groupKey: 'a' },
        { payload: 'b1', groupKey: 'b' },
        { payload: 'a3', groupKey: 'a' },
        { payload: 'b2', groupKey: 'b' },
        { payload: 'free', groupKey: null },
      ],
    });

    const [a1] = await receive(t.db, { queue, max: 1 });
    expect(a1?.message.payload).toBe('a1');

    // While a1 is leased: the heads of other groups and ungrouped messages, never a2.
    const others = await receive(t.db, { queue, max: 10 });
    expect(payloads(others)).toEqual(['b1', 'free']);
    expect(await receive(t.db, { queue, max: 10 })).toEqual([]);

    await ack(t.db, { receipt: a1!.receipt });
    expect(payloads(await receive(t.db, { queue, max: 10 }))).toEqual(['a2']);

    const b1 = others[0]!;
    await ack(t.db, { receipt: b1.receipt });
    expect(payloads(await receive(t.db, { queue, max: 10 }))).toEqual(['b2']);
  });

  it('keeps send order within a group even against a later message of higher priority', async () => {
    const queue = 'order-group-priority';
    await createQueue(t.db, { name: queue });
    await send(t.db, { queue, message: { payload: 'first', groupKey: 'g', priority: 0 } });
    await send(t.db, { queue, message: { payload: 'urgent', groupKey: 'g', priority: 100 } });

    const [first] = await receive(t.db, { queue, max: 10 });
    expect(first?.message.payload).toBe('first');
    await ack(t.db, { receipt: first!.receipt });
    expect(payloads(await receive(t.db, { queue, max: 10 }))).toEqual(['urgent']);
  });

  it('holds back a group behind its delayed head', async () => {
    const queue = 'order-group-delayed-head';
    await createQueue(t.db, { name: queue });
    await send(t.db, { queue, message: { payload: 'later', groupKey: 'g', delaySeconds: 3600 } });
    await send(t.db, { queue, message: { payload: 'ready', groupKey: 'g' } });
    await send(t.db, { queue, message: { payload: 'other', groupKey: 'h' } });

    expect(payloads(await receive(t.db, { queue, max: 10 }))).toEqual(['other']);
    const inAnHour = new Date(Date.now() + 3_601_000);
    expect(
      payloads(
        await receive(t.db, { queue, max: 10, now: inAnHour, visibilityTimeoutSeconds: 60 }),
      ),
    ).toEqual(['later']);
  });

  it('redelivers a nacked group head before the rest of its group', async () => {
    const queue = 'order-group-nack';
    await createQueue(t.db, { name: queue, config: { maxAttempts: 10 } });
    await send(t.db, { queue, message: { payload: 'g1', groupKey: 'g' } });
    await send(t.db, { queue, message: { payload: 'g2', groupKey: 'g' } });

    const [first] = await receive(t.db, { queue });
    await nack(t.db, { receipt: first!.receipt, delaySeconds: 0, error: 'try again' });
    const [again] = await receive(t.db, { queue, max: 10 });
    expect(again?.message).toMatchObject({ payload: 'g1', attempts: 2 });
    expect(await receive(t.db, { queue, max: 10 })).toEqual([]);
  });

  it('never has two messages of a group in flight under concurrent consumers, and keeps each group in order', async () => {
    const queue = 'order-group-concurrent';
    const groups = 6;
    const perGroup = 8;
    await createQueue(t.db, { name: queue });
    await sendBatch(t.db, {
      queue,
      messages: Array.from({ length: groups * perGroup }, (_, i) => ({
        payload: { group: i % groups, seq: Math.floor(i / groups) },
        groupKey: `g${i % groups}`,
      })),
    });

    const inFlight = new Set<number>();
    const violations: string[] = [];
    const seen = new Map<number, number[]>();
    let done = 0;
    const consumer = async (): Promise<void> => {
      let idle = 0;
      while (done < groups * perGroup && idle < 200) {
        const deliveries = await receive(t.db, { queue, max: 3 });
        if (deliveries.length === 0) {
          idle += 1;
          continue;
        }
        idle = 0;
        for (const d of deliveries) {
          const { group, seq } = d.message.payload as { group: number; seq: number };
          if (inFlight.has(group))
            violations.push(`group ${group} had two in flight at seq ${seq}`);
          inFlight.add(group);
          seen.set(group, [...(seen.get(group) ?? []), seq]);
        }
        for (const d of deliveries) {
          // Cleared before the ack commits: the next of the group cannot be leased before it.
          inFlight.delete((d.message.payload as { group: number }).group);
          await ack(t.db, { receipt: d.receipt });
          done += 1;
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, consumer));

    expect(violations).toEqual([]);
    expect(done).toBe(groups * perGroup);
    for (let g = 0; g < groups; g += 1) {
      expect(seen.get(g)).toEqual(Array.from({ length: perGroup }, (_, i) => i));
    }
    expect(await countMessages(queue)).toBe(0);
  });
});

describe('dedup', () => {
  it('returns the live message for a repeated dedupKey instead of inserting a second one', async () => {
    const queue = 'order-dedup';
    await createQueue(t.db, { name: queue });
    const first = await send(t.db, { queue, message: { payload: 'original', dedupKey: 'k1' } });
    const repeat = await send(t.db, { queue, message: { payload: 'retry', dedupKey: 'k1' } });

    expect(repeat.id).toBe(first.id);
    expect(repeat.payload).toBe('original');
    expect(await countMessages(queue)).toBe(1);

    // Also while it is leased: a leased message is still live.
    const [delivery] = await receive(t.db, { queue });
    const whileLeased = await send(t.db, { queue, message: { payload: 'again', dedupKey: 'k1' } });
    expect(whileLeased).toMatchObject({ id: first.id, state: 'LEASED' });
    expect(await countMessages(queue)).toBe(1);

    // Once acked the key is free again.
    await ack(t.db, { receipt: delivery!.receipt });
    const fresh = await send(t.db, { queue, message: { payload: 'new', dedupKey: 'k1' } });
    expect(fresh.id).not.toBe(first.id);
    expect(fresh.payload).toBe('new');
    expect(await countMessages(queue)).toBe(1);
  });

  it('returns the same id from SELECT holdline.send(...) for a repeated dedup key', async () => {
    const queue = 'order-dedup-sql';
    await createQueue(t.db, { name: queue });
    const sendSql = async (payload: string): Promise<string> => {
      const { rows } = await sql<{ id: string }>`
        SELECT holdline.send(${queue}, to_jsonb(${payload}::text), dedup_key => 'same') AS id`.execute(
        t.db,
      );
      return rows[0]!.id;
    };
    const first = await sendSql('one');
    expect(await sendSql('two')).toBe(first);
    expect(await countMessages(queue)).toBe(1);
  });

  it('scopes dedup keys to their queue', async () => {
    await createQueue(t.db, { name: 'order-dedup-scope-a' });
    await createQueue(t.db, { name: 'order-dedup-scope-b' });
    const a = await send(t.db, {
      queue: 'order-dedup-scope-a',
      message: { payload: 1, dedupKey: 'shared' },
    });
    const b = await send(t.db, {
      queue: 'order-dedup-scope-b',
      message: { payload: 2, dedupKey: 'shared' },
    });
    expect(b.id).not.toBe(a.id);
    expect(b.queue).toBe('order-dedup-scope-b');
  });

  it('collapses repeated dedup keys inside one sendBatch onto the first message', async () => {
    const queue = 'order-dedup-batch';
    await createQueue(t.db, { name: queue });
    const sent = await sendBatch(t.db, {
      queue,
      messages: [
        { payload: 'x1', dedupKey: 'x' },
        { payload: 'y1', dedupKey: 'y' },
        { payload: 'x2', dedupKey: 'x' },
        { payload: 'plain' },
        { payload: 'y2', dedupKey: 'y' },
      ],
    });

    expect(sent).toHaveLength(5);
    expect(sent.map((m) => m.payload)).toEqual(['x1', 'y1', 'x1', 'plain', 'y1']);
    expect(sent[2]!.id).toBe(sent[0]!.id);
    expect(sent[4]!.id).toBe(sent[1]!.id);
    expect(new Set(sent.map((m) => m.id)).size).toBe(3);
    expect(await countMessages(queue)).toBe(3);
  });

  it('frees the dedup key of a message that is dead-lettered', async () => {
    const queue = 'order-dedup-dead';
    await createQueue(t.db, { name: queue, config: { maxAttempts: 1 } });
    const first = await send(t.db, { queue, message: { payload: 'doomed', dedupKey: 'k' } });
    const [delivery] = await receive(t.db, { queue });
    expect(await nack(t.db, { receipt: delivery!.receipt, error: 'boom' })).toMatchObject({
      outcome: 'dead_lettered',
    });

    const second = await send(t.db, { queue, message: { payload: 'next', dedupKey: 'k' } });
    expect(second.id).not.toBe(first.id);
    expect(await countMessages(queue)).toBe(1);
    expect(await countMessages(`${queue}.dlq`)).toBe(1);
  });
});
