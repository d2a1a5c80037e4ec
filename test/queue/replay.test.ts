import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  QueueError,
  ack,
  ackBatch,
  cancelReplay,
  configureQueue,
  deleteQueue,
  getReplayJob,
  listReplayJobs,
  nack,
  queueStats,
  receive,
  startRedrive,
  startReplay,
} from '../../src/queue/operations.ts';
import type { Executor, Message, ReplayJob, ReplayParams } from '../../src/queue/operations.ts';
import { Reaper } from '../../src/reaper/reaper.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { databaseNow, makeQueue, sendMessages, silentLogger } from '../helpers/factories.ts';

let t: TestDatabase;
/** Batches of 7: every replay below takes several. */
let runner: Reaper;
/** The archived messages of 'orders', in send order. */
let originals: Message[];

const DAY = 86_400;

beforeAll(async () => {
  t = await createTestDatabase();
  runner = new Reaper({
    db: t.db,
    connectionString: t.url,
    logger: silentLogger(),
    replayBatchSize: 7,
  });
  await makeQueue(t.db, 'orders', { archiveSeconds: DAY });
  originals = await sendMessages(t.db, 'orders', 30, (i) => ({
    payload: { i, kind: i % 3 === 0 ? 'refund' : 'sale' },
    headers: i % 2 === 0 ? { region: 'eu' } : null,
    groupKey: i < 4 ? 'g1' : null,
  }));
  // Acked one by one from last to first: ack order is the reverse of send order (the group's
  // messages come one per receive, after the rest).
  for (;;) {
    const deliveries = await receive(t.db, { queue: 'orders', max: 30 });
    if (deliveries.length === 0) break;
    for (const delivery of deliveries.reverse()) await ack(t.db, { receipt: delivery.receipt });
  }
});
afterAll(async () => {
  await t.drop();
});

/** Runs the leader's replay passes until `job` has ended; returns it. */
async function runToEnd(job: ReplayJob): Promise<ReplayJob> {
  for (let pass = 0; pass < 100; pass++) {
    const now = await getReplayJob(t.db, { id: job.id });
    if (now!.state !== 'RUNNING') return now!;
    await runner.runReplays();
  }
  throw new Error(`replay job ${job.id} did not end`);
}

/** Receives everything ready in `queue` (leases it), in delivery order. */
async function receiveAll(db: Executor, queue: string): Promise<Message[]> {
  const all: Message[] = [];
  for (;;) {
    const deliveries = await receive(db, { queue, max: 1000 });
    if (deliveries.length === 0) return all;
    all.push(...deliveries.map((d) => d.message));
  }
}

async function jobCount(): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM holdline.replay_jobs`.execute(t.db);
  return rows[0]!.n;
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

describe('replay', () => {
  it('re-enqueues archived messages in their original send order, with new ids naming the originals', async () => {
    await makeQueue(t.db, 'orders.copy');
    const job = await startReplay(t.db, { queue: 'orders', into: 'orders.copy' });
    expect(job).toMatchObject({ state: 'RUNNING', matched: 30, replayed: 0, into: 'orders.copy' });
    expect(await runToEnd(job)).toMatchObject({ state: 'DONE', matched: 30, replayed: 30 });

    // The group's messages come one at a time: the rest first, then the group, each in order.
    const copies: Message[] = [];
    for (;;) {
      const deliveries = await receive(t.db, { queue: 'orders.copy', max: 1000 });
      if (deliveries.length === 0) break;
      copies.push(...deliveries.map((d) => d.message));
      await ackBatch(t.db, { receipts: deliveries.map((d) => d.receipt) });
    }
    const byOriginal = new Map(copies.map((c) => [c.headers?.['holdline-original-id'], c]));
    expect([...byOriginal.keys()].sort()).toEqual(originals.map((m) => m.id).sort());
    const copyIds = originals.map((m) => BigInt(byOriginal.get(m.id)!.id));
    // New ids, drawn in the originals' send order.
    expect(copyIds.every((id, k) => k === 0 || id > copyIds[k - 1]!)).toBe(true);
    expect(copyIds[0]! > BigInt(originals.at(-1)!.id)).toBe(true);
    for (const original of originals) {
      const copy = byOriginal.get(original.id)!;
      expect(copy.payload).toEqual(original.payload);
      expect(copy.groupKey).toBe(original.groupKey);
      expect(copy.headers).toEqual({
        ...(original.headers ?? {}),
        'holdline-original-id': original.id,
      });
      expect(copy.attempts).toBe(1);
    }
  });

  it('replays into the queue itself by default, never its own copies acked meanwhile', async () => {
    await makeQueue(t.db, 'self', { archiveSeconds: DAY });
    await sendMessages(t.db, 'self', 20);
    const first = await receive(t.db, { queue: 'self', max: 20 });
    await ackBatch(t.db, { receipts: first.map((d) => d.receipt) });

    const job = await startReplay(t.db, { queue: 'self' });
    expect(job.into).toBe('self');
    // Consumers ack the copies as they come: they land in the same archive, after the job's end.
    for (let pass = 0; pass < 20; pass++) {
      await runner.runReplays();
      const copies = await receive(t.db, { queue: 'self', max: 1000 });
      if (copies.length > 0) await ackBatch(t.db, { receipts: copies.map((d) => d.receipt) });
      if ((await getReplayJob(t.db, { id: job.id }))!.state !== 'RUNNING') break;
    }
    expect(await getReplayJob(t.db, { id: job.id })).toMatchObject({ state: 'DONE', replayed: 20 });
    const { rows } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM holdline.message_archive WHERE queue = 'self'`.execute(t.db);
    expect(rows[0]!.n).toBe(40);
  });

  it('takes only messages matching the filter and the send-time range', async () => {
    await makeQueue(t.db, 'refunds');
    const job = await startReplay(t.db, {
      queue: 'orders',
      into: 'refunds',
      filter: { payload: { kind: 'refund' }, headers: { region: 'eu' } },
      from: originals[0]!.createdAt,
      to: new Date(Date.now() + 60_000),
    });
    expect(job.matched).toBe(5);
    await runToEnd(job);
    const copies = await receiveAll(t.db, 'refunds');
    expect(copies.map((m) => (m.payload as { i: number }).i).sort((a, b) => a - b)).toEqual([
      0, 6, 12, 18, 24,
    ]);
    const none = await startReplay(t.db, {
      queue: 'orders',
      into: 'refunds',
      to: originals[0]!.createdAt,
    });
    expect(none).toMatchObject({ state: 'DONE', matched: 0, replayed: 0 });
  });

  it('runs from plain SQL: start_replay, then replay_batch until the job is done', async () => {
    await makeQueue(t.db, 'sql.copy');
    const { rows: archived } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM holdline.archived_messages WHERE queue = 'orders'`.execute(
      t.db,
    );
    expect(archived[0]!.n).toBe(30);
    const { rows: started } = await sql<{ id: string; matched: string }>`
      SELECT id::text, matched FROM holdline.start_replay('orders', 'sql.copy',
        p_payload_filter => '{"kind": "refund"}')`.execute(t.db);
    let state = 'running';
    for (let batch = 0; state === 'running'; batch++) {
      expect(batch).toBeLessThan(10);
      const { rows } = await sql<{ state: string }>`
        SELECT state FROM holdline.replay_batch(${started[0]!.id}::bigint, 4)`.execute(t.db);
      state = rows[0]!.state;
    }
    expect(state).toBe('done');
    expect((await queueStats(t.db, { queue: 'sql.copy' }))!.total).toBe(
      Number(started[0]!.matched),
    );
    expect(Number(started[0]!.matched)).toBe(10);
  });

  it('only counts on a dry run', async () => {
    await makeQueue(t.db, 'dry');
    const job = await startReplay(t.db, {
      queue: 'orders',
      into: 'dry',
      filter: { payload: { kind: 'sale' } },
      dryRun: true,
    });
    expect(job).toMatchObject({ state: 'DONE', dryRun: true, matched: 20, replayed: 0 });
    expect(job.finishedAt).not.toBeNull();
    await runner.runReplays();
    expect(await receiveAll(t.db, 'dry')).toEqual([]);
  });

  it('stops a cancelled job after the batch in flight; what it enqueued stays', async () => {
    await makeQueue(t.db, 'cancelled');
    const job = await startReplay(t.db, { queue: 'orders', into: 'cancelled' });
    const now = await databaseNow(t.db);
    await runner.runReplays(now);
    const cancelled = await cancelReplay(t.db, { id: job.id });
    expect(cancelled).toMatchObject({ state: 'CANCELLED', replayed: 7 });
    await runner.runReplays();
    expect(await getReplayJob(t.db, { id: job.id })).toMatchObject({
      state: 'CANCELLED',
      replayed: 7,
    });
    expect((await queueStats(t.db, { queue: 'cancelled' }))!.total).toBe(7);
    // Cancelling an ended job changes nothing.
    expect(await cancelReplay(t.db, { id: job.id })).toMatchObject({ state: 'CANCELLED' });
    expect(await cancelReplay(t.db, { id: '999999' })).toBeUndefined();
  });

  it('keeps to ratePerSecond: a tenth of a second per batch, the next due when the rate allows', async () => {
    await makeQueue(t.db, 'slow');
    const job = await startReplay(t.db, { queue: 'orders', into: 'slow', ratePerSecond: 20 });
    const now = await databaseNow(t.db);
    expect(await runner.runReplays(now)).toBe(1);
    expect((await getReplayJob(t.db, { id: job.id }))!.replayed).toBe(2);
    // Two copies at 20 a second: the next batch is due 100 ms later, not before.
    expect(await runner.runReplays(new Date(now.getTime() + 99))).toBe(0);
    expect(await runner.runReplays(new Date(now.getTime() + 100))).toBe(1);
    expect((await getReplayJob(t.db, { id: job.id }))!.replayed).toBe(4);
    await cancelReplay(t.db, { id: job.id });
  });

  it('fails a job whose target queue is deleted or too small for a message', async () => {
    await makeQueue(t.db, 'doomed');
    const gone = await startReplay(t.db, { queue: 'orders', into: 'doomed' });
    await deleteQueue(t.db, { name: 'doomed' });
    await runner.runReplays();
    expect(await getReplayJob(t.db, { id: gone.id })).toMatchObject({
      state: 'FAILED',
      replayed: 0,
      lastError: 'queue "doomed" no longer exists',
    });

    await makeQueue(t.db, 'tiny', { maxPayloadBytes: 10 });
    const large = await startReplay(t.db, { queue: 'orders', into: 'tiny' });
    await runner.runReplays();
    const failed = await getReplayJob(t.db, { id: large.id });
    expect(failed).toMatchObject({ state: 'FAILED', replayed: 0 });
    expect(failed!.lastError).toContain(`archived message ${originals[0]!.id}`);
    expect(await receiveAll(t.db, 'tiny')).toEqual([]);
  });

  it('lists a queue’s jobs newest first', async () => {
    const jobs = await listReplayJobs(t.db, { queue: 'orders' });
    expect(jobs.length).toBeGreaterThan(3);
    expect(jobs.map((j) => Number(j.id))).toEqual(
      jobs.map((j) => Number(j.id)).sort((a, b) => b - a),
    );
    expect(await listReplayJobs(t.db, { queue: 'nobody' })).toEqual([]);
  });

  it('refuses bad input and missing queues, recording no job', async () => {
    const before = await jobCount();
    const now = new Date();
    const bad: ReplayParams[] = [
      { queue: 'orders', from: now, to: new Date(now.getTime() - 1) },
      { queue: 'orders', filter: { payload: [1] as never } },
      { queue: 'orders', filter: 'x' as never },
      { queue: 'orders', ratePerSecond: 0 },
      { queue: 'orders', ratePerSecond: -5 },
      { queue: 'orders', ratePerSecond: Number.POSITIVE_INFINITY },
      { queue: 'orders', into: 'not a name' },
      { queue: 'orders', dryRun: 'yes' as never },
    ];
    for (const params of bad) {
      expect(await codeOf(startReplay(t.db, params)), JSON.stringify(params)).toBe(
        'BAD_USER_INPUT',
      );
    }
    expect(await codeOf(startReplay(t.db, { queue: 'missing' }))).toBe('QUEUE_NOT_FOUND');
    expect(await codeOf(startReplay(t.db, { queue: 'orders', into: 'missing' }))).toBe(
      'QUEUE_NOT_FOUND',
    );
    expect(await codeOf(getReplayJob(t.db, { id: 'one' }))).toBe('BAD_USER_INPUT');
    expect(await jobCount()).toBe(before);
  });

  it("reads nothing past the source queue's archiveSeconds", async () => {
    await makeQueue(t.db, 'expiring', { archiveSeconds: DAY });
    await sendMessages(t.db, 'expiring', 3);
    await ackBatch(t.db, {
      receipts: (await receive(t.db, { queue: 'expiring', max: 3 })).map((d) => d.receipt),
    });
    await configureQueue(t.db, { name: 'expiring', config: { archiveSeconds: 60 } });
    await sql`UPDATE holdline.queues SET created_at = created_at - interval '1 day'
              WHERE name = 'expiring'`.execute(t.db);
    expect((await startReplay(t.db, { queue: 'expiring', dryRun: true })).matched).toBe(3);
    await sql`UPDATE holdline.message_archive SET acked_at = acked_at - interval '1 hour'
              WHERE queue = 'expiring'`.execute(t.db);
    expect((await startReplay(t.db, { queue: 'expiring', dryRun: true })).matched).toBe(0);
  });
});

describe('redrive as a job', () => {
  beforeAll(async () => {
    await makeQueue(t.db, 'dl', { maxAttempts: 1 });
    await sendMessages(t.db, 'dl', 10, (i) => ({ payload: { i, bad: i % 2 === 0 } }));
    for (const delivery of await receive(t.db, { queue: 'dl', max: 10 })) {
      await nack(t.db, { receipt: delivery.receipt, error: 'failed' });
    }
  });

  it('moves back the dead letters matching a filter, at most max, in id order', async () => {
    const dry = await startRedrive(t.db, {
      queue: 'dl',
      filter: { payload: { bad: true } },
      dryRun: true,
    });
    expect(dry).toMatchObject({ kind: 'REDRIVE', state: 'DONE', matched: 5, replayed: 0 });

    const job = await startRedrive(t.db, {
      queue: 'dl',
      filter: { payload: { bad: true } },
      max: 3,
    });
    expect(job).toMatchObject({
      kind: 'REDRIVE',
      state: 'RUNNING',
      matched: 3,
      max: 3,
      into: 'dl',
    });
    expect(await runToEnd(job)).toMatchObject({ state: 'DONE', replayed: 3 });
    const back = await receiveAll(t.db, 'dl');
    expect(back.map((m) => (m.payload as { i: number }).i)).toEqual([0, 2, 4]);
    expect(back.every((m) => m.attempts === 1 && m.originQueue === null)).toBe(true);
    expect((await queueStats(t.db, { queue: 'dl.dlq' }))!.total).toBe(7);
  });

  it('refuses bad input and a missing queue, recording no job', async () => {
    const before = await jobCount();
    for (const params of [
      { queue: 'dl', max: 0 },
      { queue: 'dl', ratePerSecond: 0 },
      { queue: 'dl', filter: { headers: 'x' as never } },
    ]) {
      expect(await codeOf(startRedrive(t.db, params)), JSON.stringify(params)).toBe(
        'BAD_USER_INPUT',
      );
    }
    expect(await codeOf(startRedrive(t.db, { queue: 'nope' }))).toBe('QUEUE_NOT_FOUND');
    expect(await jobCount()).toBe(before);
  });
});
