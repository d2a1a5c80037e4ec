import { sql } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DequeueMeter,
  QueueEngine,
  createQueue,
  getMessage,
  receive,
  send,
  sendBatch,
} from '../../src/queue/operations.ts';
import type { Message } from '../../src/queue/operations.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';

let t: TestDatabase;
let engine: QueueEngine;

beforeAll(async () => {
  t = await createTestDatabase();
  engine = new QueueEngine({ db: t.db, logger: pino({ level: 'silent' }) });
});
afterAll(async () => {
  await engine?.stop();
  await t?.drop();
});

async function sendAll(queue: string, count: number): Promise<Message[]> {
  return sendBatch(t.db, {
    queue,
    messages: Array.from({ length: count }, (_, i) => ({ payload: { i } })),
  });
}

/** Inserts a ready message whose run_at lies `ageSeconds` in the past (a factory). */
async function insertReadyMessage(queue: string, ageSeconds: number): Promise<void> {
  await sql`
    INSERT INTO holdline.messages (queue, payload, run_at, created_at)
    VALUES (${queue}, '"old"'::jsonb, now() - make_interval(secs => ${ageSeconds}),
            now() - make_interval(secs => ${ageSeconds}))`.execute(t.db);
}

/** Records `deliveries` for `queue` in the minute starting at `minute` (a factory). */
async function insertDequeueCount(queue: string, minute: Date, deliveries: number): Promise<void> {
  await t.db.insertInto('holdline.dequeue_counts').values({ queue, minute, deliveries }).execute();
}

/** The start of the database's current minute. */
async function currentMinute(): Promise<Date> {
  const { rows } = await sql<{ minute: Date }>`
    SELECT date_trunc('minute', now()) AS minute`.execute(t.db);
  return rows[0]!.minute;
}

const plusSeconds = (date: Date, seconds: number): Date =>
  new Date(date.getTime() + seconds * 1000);

describe('queue stats', () => {
  it('counts ready, delayed, leased and total messages of one queue', async () => {
    const queue = 'stats-counts';
    await createQueue(t.db, { name: queue });
    await createQueue(t.db, { name: 'stats-counts-other' });
    await sendAll(queue, 3);
    await sendBatch(t.db, {
      queue,
      messages: [
        { payload: 'd1', delaySeconds: 3600 },
        { payload: 'd2', delaySeconds: 60 },
      ],
    });
    await receive(t.db, { queue });
    await sendAll('stats-counts-other', 4);

    expect(await engine.queueStats(queue)).toMatchObject({
      queue,
      ready: 2,
      delayed: 2,
      leased: 1,
      total: 5,
    });

    const { rows } = await sql<{ ready: string; delayed: string; leased: string; total: string }>`
      SELECT ready, delayed, leased, total FROM holdline.queue_stats WHERE queue = ${queue}`.execute(
      t.db,
    );
    expect(rows.map((r) => Object.values(r).map(Number))).toEqual([[2, 2, 1, 5]]);
  });

  it('reports zeros and no oldest age for an empty queue, and nothing for a missing one', async () => {
    await createQueue(t.db, { name: 'stats-empty' });
    expect(await engine.queueStats('stats-empty')).toEqual({
      queue: 'stats-empty',
      ready: 0,
      delayed: 0,
      leased: 0,
      total: 0,
      oldestReadyAgeSeconds: null,
    });
    expect(await engine.queueStats('stats-missing')).toBeUndefined();
  });

  it('reports how long the longest-waiting ready message has been ready', async () => {
    const queue = 'stats-oldest';
    await createQueue(t.db, { name: queue });
    await insertReadyMessage(queue, 600);
    await insertReadyMessage(queue, 30);
    await send(t.db, { queue, message: { payload: 'later', delaySeconds: 3600 } });

    const stats = await engine.queueStats(queue);
    expect(stats).toMatchObject({ ready: 2, delayed: 1, total: 3 });
    expect(stats!.oldestReadyAgeSeconds).toBeGreaterThanOrEqual(600);
    expect(stats!.oldestReadyAgeSeconds).toBeLessThan(630);

    const { rows } = await sql<{ oldest_ready_age: number }>`
      SELECT oldest_ready_age FROM holdline.queue_stats WHERE queue = ${queue}`.execute(t.db);
    expect(rows[0]!.oldest_ready_age).toBeGreaterThanOrEqual(600);
  });

  it('leaves leased and delayed messages out of the oldest ready age', async () => {
    const queue = 'stats-oldest-leased';
    await createQueue(t.db, { name: queue });
    await insertReadyMessage(queue, 900);
    await receive(t.db, { queue }); // leases the 900 s old one
    await send(t.db, { queue, message: { payload: 'later', delaySeconds: 60 } });
    expect(await engine.queueStats(queue)).toMatchObject({
      ready: 0,
      delayed: 1,
      leased: 1,
      oldestReadyAgeSeconds: null,
    });
  });

  it('lists the stats of every queue by name', async () => {
    await createQueue(t.db, { name: 'stats-all-b' });
    await createQueue(t.db, { name: 'stats-all-a' });
    await sendAll('stats-all-b', 2);
    const all = await engine.allQueueStats();
    const names = all.map((s) => s.queue);
    expect(names).toEqual([...names].sort());
    expect(all.find((s) => s.queue === 'stats-all-a')).toMatchObject({ total: 0 });
    expect(all.find((s) => s.queue === 'stats-all-b')).toMatchObject({ ready: 2, total: 2 });
  });
});

describe('message position', () => {
  it('reports 0 for the next message and counts the ready messages ahead in delivery order', async () => {
    const queue = 'stats-position';
    await createQueue(t.db, { name: queue });
    await createQueue(t.db, { name: 'stats-position-other' });
    const [m1, m2, m3] = await sendAll(queue, 3);
    await sendAll('stats-position-other', 5); // other queues never count

    const position = async (m: Message): Promise<number | null> =>
      (await engine.getMessage(m.id))!.position;
    expect([await position(m1!), await position(m2!), await position(m3!)]).toEqual([0, 1, 2]);

    const urgent = await send(t.db, { queue, message: { payload: 'urgent', priority: 5 } });
    expect(await position(urgent)).toBe(0);
    expect([await position(m1!), await position(m3!)]).toEqual([1, 3]);

    const [leased] = await receive(t.db, { queue });
    expect(leased!.message.id).toBe(urgent.id);
    expect(await engine.getMessage(urgent.id)).toMatchObject({
      state: 'LEASED',
      position: null,
      estimatedWaitSeconds: null,
    });
    expect(await position(m1!)).toBe(0);
  });

  it('ranks an earlier runAt ahead among equal priorities, and gives delayed messages no position', async () => {
    const queue = 'stats-position-run-at';
    await createQueue(t.db, { name: queue });
    const sentFirst = await send(t.db, { queue, message: { payload: 'now' } });
    const backdated = await send(t.db, {
      queue,
      message: { payload: 'backdated', runAt: new Date(Date.now() - 60_000) },
    });
    const delayed = await send(t.db, { queue, message: { payload: 'later', delaySeconds: 600 } });

    expect((await engine.getMessage(backdated.id))!.position).toBe(0);
    expect((await engine.getMessage(sentFirst.id))!.position).toBe(1);
    expect(await engine.getMessage(delayed.id)).toMatchObject({
      state: 'DELAYED',
      position: null,
      estimatedWaitSeconds: null,
    });
  });

  it('returns nothing for an id that does not exist', async () => {
    expect(await engine.getMessage('987654321')).toBeUndefined();
  });
});

describe('estimated wait', () => {
  it('divides (position + 1) by the deliveries per second of the last five minutes', async () => {
    const queue = 'stats-estimate';
    await createQueue(t.db, { name: queue });
    await createQueue(t.db, { name: 'stats-estimate-other' });
    const sent = await sendAll(queue, 3);
    const base = await currentMinute();
    // 120 deliveries over the two minutes before `now`: one per second.
    const now = plusSeconds(base, 120);
    await insertDequeueCount(queue, base, 60);
    await insertDequeueCount(queue, plusSeconds(base, 60), 60);
    // Outside the window, and another queue's: both ignored.
    await insertDequeueCount(queue, plusSeconds(base, -600), 100_000);
    await insertDequeueCount('stats-estimate-other', base, 100_000);

    const estimates = [];
    for (const m of sent) {
      const found = await getMessage(t.db, { id: m.id, now });
      estimates.push([found!.position, found!.estimatedWaitSeconds]);
    }
    expect(estimates).toEqual([
      [0, 1],
      [1, 2],
      [2, 3],
    ]);
  });

  it('spreads deliveries counted in the current minute over at least a minute', async () => {
    const queue = 'stats-estimate-burst';
    await createQueue(t.db, { name: queue });
    const [only] = await sendAll(queue, 1);
    const { rows } = await sql<{ now: Date; minute: Date }>`
      SELECT now() AS now, date_trunc('minute', now()) AS minute`.execute(t.db);
    const { now, minute } = rows[0]!;
    // 30 deliveries in the minute now is in, however little of it has passed.
    await insertDequeueCount(queue, minute, 30);
    // (+1 ms: a Date drops the microseconds, and the message must be ready at `now`.)
    const found = await getMessage(t.db, { id: only!.id, now: plusSeconds(now, 0.001) });
    expect(found).toMatchObject({ position: 0, estimatedWaitSeconds: 2 });
  });

  it('reports no estimate, but a position, when the queue has no recent dequeues', async () => {
    const queue = 'stats-estimate-none';
    await createQueue(t.db, { name: queue });
    const [first, second] = await sendAll(queue, 2);
    expect(await engine.getMessage(second!.id)).toMatchObject({
      position: 1,
      estimatedWaitSeconds: null,
    });

    const base = await currentMinute();
    await insertDequeueCount(queue, plusSeconds(base, -3600), 500); // an hour ago: too old
    expect(await engine.getMessage(first!.id)).toMatchObject({
      position: 0,
      estimatedWaitSeconds: null,
    });
  });

  it('estimates from the counts a DequeueMeter flushes', async () => {
    const queue = 'stats-estimate-meter';
    await createQueue(t.db, { name: queue });
    const [message] = await sendAll(queue, 1);
    const errors: unknown[] = [];
    const meter = new DequeueMeter(t.db, 60_000, (error) => errors.push(error));
    meter.record(queue, 40);
    await meter.flush();
    meter.record(queue, 20);
    await meter.stop();
    expect(errors).toEqual([]);

    const { rows } = await sql<{ minute: Date; deliveries: string }>`
      SELECT minute, deliveries FROM holdline.dequeue_counts WHERE queue = ${queue}`.execute(t.db);
    expect(rows.map((r) => r.deliveries)).toEqual(['60']);
    // A clock inside the counted minute and after the send: 60 deliveries in under a minute
    // count as 60 per minute, so the next message waits about one second.
    const minute = rows[0]!.minute;
    // (+1 ms: a Date drops the microseconds of run_at.)
    const now = new Date(Math.max(minute.getTime(), message!.runAt.getTime() + 1));
    const found = await getMessage(t.db, { id: message!.id, now });
    expect(found).toMatchObject({ position: 0, estimatedWaitSeconds: 1 });
  });
});
