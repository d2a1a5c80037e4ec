import { sql } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueueEngine } from '../../src/queue/operations.ts';
import type { QueueHistoryCounts, QueueHistoryPoint } from '../../src/queue/operations.ts';
import type { Reaper } from '../../src/reaper/reaper.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { idleReaper, markLeasedAndExpired } from '../helpers/factories.ts';
import { databaseSnapshot, startService } from './harness.ts';
import type { GraphQLService } from './harness.ts';

let t: TestDatabase;
let api: GraphQLService;
let reaper: Reaper;
beforeAll(async () => {
  t = await createTestDatabase();
  api = await startService(t);
  reaper = idleReaper(t);
});
afterAll(async () => {
  await reaper.stop();
  await api.stop();
  await t.drop();
});

/** A point as JSON: the contract's, with `at` as text. */
type Point = Omit<QueueHistoryPoint, 'at'> & { at: string };

const HISTORY = `query ($queue: String!, $from: DateTime!, $to: DateTime!, $step: Int) {
  queueHistory(queue: $queue, from: $from, to: $to, step: $step) {
    at sent delivered acked nacked deadLettered leaseExpired depth oldestReadyAgeSeconds
    deliveryLatencyP50Seconds deliveryLatencyP95Seconds deliveryLatencyP99Seconds
  }
}`;

/** The last 10 minutes and the next one, per minute. */
async function recentHistory(queue: string): Promise<Point[]> {
  const now = Date.now();
  const data = await api.ok<{ queueHistory: Point[] }>(HISTORY, {
    queue,
    from: new Date(now - 10 * 60_000).toISOString(),
    to: new Date(now + 60_000).toISOString(),
  });
  return data.queueHistory;
}

type Counter = keyof QueueHistoryCounts;

function total(points: Point[], counter: Counter): number {
  return points.reduce((sum, p) => sum + p[counter], 0);
}

function totals(points: Point[]): Record<Counter, number> {
  const counters: Counter[] = [
    'sent',
    'delivered',
    'acked',
    'nacked',
    'deadLettered',
    'leaseExpired',
  ];
  return Object.fromEntries(counters.map((c) => [c, total(points, c)])) as Record<Counter, number>;
}

async function createQueue(name: string, config: Record<string, unknown> = {}): Promise<void> {
  await api.ok(
    `mutation ($n: String!, $c: QueueConfigInput) { createQueue(name: $n, config: $c) { name } }`,
    {
      n: name,
      c: config,
    },
  );
}

describe('the stats history', () => {
  it('adds what the engine counted, across two flushes and two instances', async () => {
    await createQueue('hist-counts', { maxAttempts: 2, deadLetterQueue: 'hist-counts.dlq' });
    const { engine } = api;
    await engine.sendBatch('hist-counts', [{ payload: 1 }, { payload: 2 }, { payload: 3 }]);
    const first = await engine.receive({ queue: 'hist-counts', max: 2 });
    await engine.ack(first[0]!.receipt);
    await engine.nack(first[1]!.receipt, { delaySeconds: 0 });
    await engine.flushHistory();
    expect(totals(await recentHistory('hist-counts'))).toEqual({
      sent: 3,
      delivered: 2,
      acked: 1,
      nacked: 1,
      deadLettered: 0,
      leaseExpired: 0,
    });

    // A second instance's counts land in the same rows and add up.
    const other = new QueueEngine({ db: t.db, logger: pino({ level: 'silent' }) });
    try {
      await other.send('hist-counts', { payload: 4 });
      const again = await other.receive({ queue: 'hist-counts', max: 3 });
      expect(again).toHaveLength(3);
      const retried = again.find((d) => d.message.attempts === 2)!;
      await other.nack(retried.receipt, { error: 'twice' }); // its second failure: dead-lettered
      await other.ackBatch(again.filter((d) => d !== retried).map((d) => d.receipt));
      await other.flushHistory();
    } finally {
      await other.stop();
    }
    await engine.send('hist-counts', { payload: 5 });
    await engine.flushHistory();

    const points = await recentHistory('hist-counts');
    expect(totals(points)).toEqual({
      sent: 5,
      delivered: 5,
      acked: 3,
      nacked: 2,
      deadLettered: 1,
      leaseExpired: 0,
    });
    const withDeliveries = points.filter((p) => p.delivered > 0);
    for (const p of withDeliveries) {
      expect(p.deliveryLatencyP50Seconds).toBeGreaterThanOrEqual(0);
      expect(p.deliveryLatencyP99Seconds).toBeGreaterThanOrEqual(p.deliveryLatencyP50Seconds!);
    }
    expect(
      points.filter((p) => p.delivered === 0).every((p) => p.deliveryLatencyP50Seconds === null),
    ).toBe(true);
  });

  it('keeps counts it could not write, and adds them at the next flush', async () => {
    await createQueue('hist-retry-write');
    const meter = new QueueEngine({ db: t.db, logger: pino({ level: 'silent' }) });
    try {
      await meter.sendBatch('hist-retry-write', [{ payload: 1 }, { payload: 2 }]);
      await sql`ALTER TABLE holdline.queue_history RENAME TO queue_history_away`.execute(t.db);
      try {
        await meter.flushHistory(); // fails: the table is not there
      } finally {
        await sql`ALTER TABLE holdline.queue_history_away RENAME TO queue_history`.execute(t.db);
      }
      expect(total(await recentHistory('hist-retry-write'), 'sent')).toBe(0);
      await meter.send('hist-retry-write', { payload: 3 });
      await meter.flushHistory();
      expect(total(await recentHistory('hist-retry-write'), 'sent')).toBe(3);
    } finally {
      await meter.stop();
    }
  });

  it('measures delivery latency from runAt: a message due 20 s ago is 20 s late', async () => {
    await createQueue('hist-latency');
    await api.engine.send('hist-latency', {
      payload: 'late',
      runAt: new Date(Date.now() - 20_000),
    });
    await api.engine.receive({ queue: 'hist-latency' });
    await api.engine.flushHistory();
    const [point] = (await recentHistory('hist-latency')).filter((p) => p.delivered > 0);
    // The histogram's buckets are 41% wide: 20 s lies in (16.8 s, 23.7 s].
    expect(point?.deliveryLatencyP50Seconds).toBeGreaterThan(16);
    expect(point?.deliveryLatencyP50Seconds).toBeLessThan(24);
  });

  it("counts the leases the leader's reaper took back, and the dead letters among them", async () => {
    await createQueue('hist-expired', { maxAttempts: 3 });
    const sent = await api.engine.sendBatch('hist-expired', [{ payload: 'a' }, { payload: 'b' }]);
    await markLeasedAndExpired(t.db, sent[0]!.id, { attempts: 1 });
    await markLeasedAndExpired(t.db, sent[1]!.id, { attempts: 3 });
    await reaper.reapExpiredLeases();
    await reaper.keepHistory();
    expect(totals(await recentHistory('hist-expired'))).toMatchObject({
      leaseExpired: 2,
      deadLettered: 1,
    });
  });

  it("samples the depth and oldest ready age into the minute's point", async () => {
    await createQueue('hist-depth');
    await api.engine.sendBatch('hist-depth', [
      { payload: 1, runAt: new Date(Date.now() - 30_000) },
      { payload: 2 },
      { payload: 3, delaySeconds: 600 },
    ]);
    await api.engine.receive({ queue: 'hist-depth' });
    const { sampled } = await reaper.keepHistory();
    expect(sampled).toBeGreaterThanOrEqual(1);
    const sampledPoints = (await recentHistory('hist-depth')).filter((p) => p.depth !== null);
    expect(sampledPoints).toHaveLength(1);
    // One leased, one ready, one delayed; the ready one was sent a moment ago.
    expect(sampledPoints[0]!.depth).toBe(3);
    expect(sampledPoints[0]!.oldestReadyAgeSeconds).toBeGreaterThanOrEqual(0);
    expect(sampledPoints[0]!.oldestReadyAgeSeconds).toBeLessThan(25);
  });

  it('answers every point of the range, aligned to the step since the epoch', async () => {
    await createQueue('hist-points');
    const data = await api.ok<{ queueHistory: Point[] }>(HISTORY, {
      queue: 'hist-points',
      from: '2030-01-01T00:07:00Z',
      to: '2030-01-01T01:00:00Z',
      step: 900,
    });
    expect(data.queueHistory.map((p) => p.at)).toEqual([
      '2030-01-01T00:00:00.000Z',
      '2030-01-01T00:15:00.000Z',
      '2030-01-01T00:30:00.000Z',
      '2030-01-01T00:45:00.000Z',
    ]);
    expect(data.queueHistory[0]).toMatchObject({
      sent: 0,
      depth: null,
      deliveryLatencyP50Seconds: null,
    });
  });

  it('sums the minutes of a wider step, and takes the depth of its last sample', async () => {
    await createQueue('hist-step');
    await sql`
      INSERT INTO holdline.queue_history
        (queue, minute, sent, acked, depth, oldest_ready_age, sampled_at, delivery_latency_buckets)
      VALUES
        ('hist-step', '2030-02-01T10:00:00Z', 5, 1, 40, 2.5, '2030-02-01T10:00:30Z', '{0,2,0}'),
        ('hist-step', '2030-02-01T10:01:00Z', 7, 2, 30, 1.5, '2030-02-01T10:01:30Z', '{0,0,2}'),
        ('hist-step', '2030-02-01T10:02:00Z', 1, 0, NULL, NULL, NULL, NULL)
    `.execute(t.db);
    const data = await api.ok<{ queueHistory: Point[] }>(HISTORY, {
      queue: 'hist-step',
      from: '2030-02-01T10:00:00Z',
      to: '2030-02-01T10:05:00Z',
      step: 300,
    });
    expect(data.queueHistory).toHaveLength(1);
    expect(data.queueHistory[0]).toMatchObject({
      sent: 13,
      acked: 3,
      depth: 30,
      oldestReadyAgeSeconds: 1.5,
    });
    // Two deliveries in bucket 1 (0.1–0.141 ms), two in bucket 2 (0.141–0.2 ms): the median
    // is the top of bucket 1.
    expect(data.queueHistory[0]!.deliveryLatencyP50Seconds).toBeCloseTo(0.0001 * Math.SQRT2, 8);
  });
});

describe('retention', () => {
  it('the leader deletes minutes older than 7 days and keeps the rest', async () => {
    await createQueue('hist-retention');
    await sql`
      INSERT INTO holdline.queue_history (queue, minute, sent)
      VALUES ('hist-retention', date_trunc('minute', now()) - interval '8 days', 1),
             ('hist-retention', date_trunc('minute', now()) - interval '7 days 1 minute', 2),
             ('hist-retention', date_trunc('minute', now()) - interval '6 days', 3)
    `.execute(t.db);
    const { deleted } = await reaper.keepHistory();
    expect(deleted).toBeGreaterThanOrEqual(2);
    const { rows } = await sql<{ sent: string }>`
      SELECT sent FROM holdline.queue_history
      WHERE queue = 'hist-retention' AND minute < now() - interval '1 day' ORDER BY minute
    `.execute(t.db);
    expect(rows.map((r) => Number(r.sent))).toEqual([3]);
  });

  it('is deleted with its queue', async () => {
    await createQueue('hist-deleted');
    await api.engine.send('hist-deleted', { payload: 1 });
    await api.engine.flushHistory();
    await api.ok(`mutation { deleteQueue(name: "hist-deleted") }`);
    const { rows } = await sql<{ n: number }>`
      SELECT count(*)::integer AS n FROM holdline.queue_history WHERE queue = 'hist-deleted'
    `.execute(t.db);
    expect(rows[0]!.n).toBe(0);
  });
});

describe('an engine with the history off', () => {
  it('writes nothing to it', async () => {
    await createQueue('hist-off');
    const off = new QueueEngine({ db: t.db, logger: pino({ level: 'silent' }), history: false });
    try {
      await off.send('hist-off', { payload: 1 });
      await off.receive({ queue: 'hist-off' });
      await off.flushHistory();
    } finally {
      await off.stop();
    }
    expect(totals(await recentHistory('hist-off'))).toMatchObject({ sent: 0, delivered: 0 });
  });
});

describe('queueHistory validation', () => {
  beforeAll(async () => {
    await createQueue('hist-bad');
  });

  it.each([
    ['a reversed range', { from: '2030-01-02T00:00:00Z', to: '2030-01-01T00:00:00Z' }],
    ['an empty range', { from: '2030-01-01T00:00:00Z', to: '2030-01-01T00:00:00Z' }],
    ['a step that is not whole minutes', { step: 90 }],
    ['a step under a minute', { step: 30 }],
    ['a step over a day', { step: 172_800 }],
    ['more than 10080 points', { from: '2030-01-01T00:00:00Z', to: '2030-01-15T00:00:00Z' }],
  ])('refuses %s with BAD_USER_INPUT, changing nothing', async (_what, variables) => {
    const before = await databaseSnapshot(t);
    expect(
      await api.errorCode(HISTORY, {
        queue: 'hist-bad',
        from: '2030-01-01T00:00:00Z',
        to: '2030-01-01T01:00:00Z',
        ...variables,
      }),
    ).toBe('BAD_USER_INPUT');
    expect(await databaseSnapshot(t)).toBe(before);
  });

  it('answers QUEUE_NOT_FOUND for a queue nobody created', async () => {
    expect(
      await api.errorCode(HISTORY, {
        queue: 'hist-nobody',
        from: '2030-01-01T00:00:00Z',
        to: '2030-01-01T01:00:00Z',
      }),
    ).toBe('QUEUE_NOT_FOUND');
  });
});
