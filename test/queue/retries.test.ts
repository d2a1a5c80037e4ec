import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeadLettersView } from '../../src/queue/sql/tables.ts';
import {
  ack,
  getQueue,
  nack,
  queueStats,
  receive,
  redrive,
  send,
} from '../../src/queue/operations.ts';
import type { Delivery, Message } from '../../src/queue/operations.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import {
  databaseNow,
  idleReaper,
  makeQueue,
  makeQueueWithMessages,
  markLeasedAndExpired,
  messageRow,
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

/** Timestamps come back from PostgreSQL in microseconds and are cut to milliseconds. */
const CLOCK_SLACK_SECONDS = 0.001;

/** A message's row from the holdline.dead_letters view, or undefined. */
async function deadLetter(id: string): Promise<DeadLettersView | undefined> {
  const { rows } = await sql<DeadLettersView>`
    SELECT * FROM holdline.dead_letters WHERE id = ${id}::bigint
  `.execute(t.db);
  return rows[0];
}

/** Receives the one message of `queue` as of `now`; fails the test when there is none. */
async function receiveOne(queue: string, now: Date): Promise<Delivery> {
  const deliveries = await receive(t.db, { queue, now });
  expect(deliveries).toHaveLength(1);
  return deliveries[0]!;
}

/** When the message becomes deliverable again, plus a millisecond (see CLOCK_SLACK_SECONDS). */
async function dueAt(id: string): Promise<Date> {
  const row = await messageRow(t.db, id);
  expect(row?.lease_token).toBeNull();
  return new Date(row!.run_at.getTime() + 1);
}

/** Seconds from `from` to the message's run_at. */
async function delayFrom(id: string, from: Date): Promise<number> {
  const row = await messageRow(t.db, id);
  return (row!.run_at.getTime() - from.getTime()) / 1000;
}

describe('nack backoff', () => {
  it('grows exponentially with jitter and is capped at backoffMaxSeconds', async () => {
    const queue = 'retry-backoff';
    const initial = 2;
    const max = 20;
    const {
      messages: [message],
    } = await makeQueueWithMessages(t.db, queue, 1, {
      maxAttempts: 10,
      backoffInitialSeconds: initial,
      backoffMaxSeconds: max,
    });
    let clock = await databaseNow(t.db);
    for (let attempts = 1; attempts <= 9; attempts += 1) {
      const delivery = await receiveOne(queue, clock);
      expect(delivery.message.attempts).toBe(attempts);
      const nacked = await nack(t.db, {
        receipt: delivery.receipt,
        error: `failure ${attempts}`,
        now: clock,
      });
      expect(nacked.outcome).toBe('retried');

      const d = Math.min(max, initial * 2 ** (attempts - 1));
      const delay = await delayFrom(message!.id, clock);
      expect(delay).toBeGreaterThanOrEqual(d / 2 - CLOCK_SLACK_SECONDS);
      expect(delay).toBeLessThanOrEqual(d);
      expect((await messageRow(t.db, message!.id))?.last_error).toBe(`failure ${attempts}`);

      // Not deliverable while the backoff runs; deliverable once it has passed.
      const due = await dueAt(message!.id);
      expect(await receive(t.db, { queue, now: secondsAfter(due, -0.1) })).toEqual([]);
      clock = due;
    }
  });

  it('spreads the retries of messages that failed together (jitter)', async () => {
    const queue = 'retry-jitter';
    await makeQueueWithMessages(t.db, queue, 20, {
      backoffInitialSeconds: 100,
      backoffMaxSeconds: 100,
    });
    const now = await databaseNow(t.db);
    const deliveries = await receive(t.db, { queue, max: 20, now });
    for (const d of deliveries) await nack(t.db, { receipt: d.receipt, now });
    const delays = await Promise.all(deliveries.map((d) => delayFrom(d.message.id, now)));
    for (const delay of delays) {
      expect(delay).toBeGreaterThanOrEqual(50 - CLOCK_SLACK_SECONDS);
      expect(delay).toBeLessThanOrEqual(100);
    }
    expect(new Set(delays).size).toBeGreaterThan(1);
  });

  it('retries after exactly the delaySeconds a nack names, instead of the backoff', async () => {
    const queue = 'retry-explicit-delay';
    const {
      messages: [message],
    } = await makeQueueWithMessages(t.db, queue, 1, {
      backoffInitialSeconds: 1,
      backoffMaxSeconds: 1,
    });
    const now = await databaseNow(t.db);
    const first = await receiveOne(queue, now);
    expect((await nack(t.db, { receipt: first.receipt, delaySeconds: 120, now })).outcome).toBe(
      'retried',
    );
    expect((await messageRow(t.db, message!.id))?.run_at.getTime()).toBe(
      secondsAfter(now, 120).getTime(),
    );
    expect(await receive(t.db, { queue, now: secondsAfter(now, 119.9) })).toEqual([]);
    const second = await receiveOne(queue, secondsAfter(now, 120));
    expect(second.message.attempts).toBe(2);

    // delaySeconds 0: deliverable again at once.
    const later = secondsAfter(now, 120);
    await nack(t.db, { receipt: second.receipt, delaySeconds: 0, now: later });
    expect((await receiveOne(queue, later)).message.attempts).toBe(3);
  });

  it('rejects a delaySeconds out of range with BAD_USER_INPUT and keeps the lease', async () => {
    const queue = 'retry-bad-delay';
    const {
      messages: [message],
    } = await makeQueueWithMessages(t.db, queue, 1);
    const [delivery] = await receive(t.db, { queue });
    const before = await messageRow(t.db, message!.id);
    for (const delaySeconds of [-1, 1.5, 31_536_001]) {
      await expect(nack(t.db, { receipt: delivery!.receipt, delaySeconds })).rejects.toMatchObject({
        code: 'BAD_USER_INPUT',
      });
    }
    expect(await messageRow(t.db, message!.id)).toEqual(before);
    await ack(t.db, { receipt: delivery!.receipt });
  });
});

describe('dead-lettering on nack', () => {
  it('moves the message to <queue>.dlq at the maxAttempts-th failure, keeping origin and error', async () => {
    const queue = 'retry-dlq';
    const dlq = 'retry-dlq.dlq';
    const {
      messages: [message],
    } = await makeQueueWithMessages(t.db, queue, 1, { maxAttempts: 3 });
    expect(await getQueue(t.db, { name: dlq })).toBeUndefined();

    let clock = await databaseNow(t.db);
    const outcomes: string[] = [];
    for (let attempts = 1; attempts <= 3; attempts += 1) {
      const delivery = await receiveOne(queue, clock);
      expect(delivery.message.attempts).toBe(attempts);
      const nacked = await nack(t.db, {
        receipt: delivery.receipt,
        error: `failure ${attempts}`,
        now: clock,
      });
      outcomes.push(nacked.outcome);
      if (nacked.outcome === 'retried') clock = await dueAt(message!.id);
    }
    expect(outcomes).toEqual(['retried', 'retried', 'dead_lettered']);

    // Created on demand, as a normal queue.
    expect(await getQueue(t.db, { name: dlq })).toMatchObject({
      name: dlq,
      paused: false,
      config: { deadLetterQueue: null },
    });
    expect(await deadLetter(message!.id)).toMatchObject({
      queue: dlq,
      origin_queue: queue,
      attempts: 3,
      last_error: 'failure 3',
      payload: { i: 0 },
    });
    expect(await receive(t.db, { queue, now: secondsAfter(clock, 86_400) })).toEqual([]);
    expect(await queueStats(t.db, { queue })).toMatchObject({ total: 0 });

    const [fromDlq] = await receive(t.db, { queue: dlq, now: clock });
    expect(fromDlq?.message).toMatchObject({
      id: message!.id,
      queue: dlq,
      originQueue: queue,
      lastError: 'failure 3',
      payload: { i: 0 },
    });
    expect(fromDlq?.message.deadLetteredAt).toBeInstanceOf(Date);
    expect(fromDlq!.message.deadLetteredAt!.getTime()).toBeGreaterThanOrEqual(
      fromDlq!.message.createdAt.getTime(),
    );
    await ack(t.db, { receipt: fromDlq!.receipt });
    expect(await deadLetter(message!.id)).toBeUndefined();
  });

  it('dead-letters at maxAttempts even when the nack names a delay', async () => {
    const queue = 'retry-dlq-explicit-delay';
    const {
      messages: [message],
    } = await makeQueueWithMessages(t.db, queue, 1, { maxAttempts: 1 });
    const [delivery] = await receive(t.db, { queue });
    const nacked = await nack(t.db, { receipt: delivery!.receipt, delaySeconds: 60 });
    expect(nacked.outcome).toBe('dead_lettered');
    expect(await deadLetter(message!.id)).toMatchObject({
      queue: `${queue}.dlq`,
      origin_queue: queue,
    });
  });

  it('uses the dead-letter queue the config names', async () => {
    const queue = 'retry-custom-dlq';
    const {
      messages: [message],
    } = await makeQueueWithMessages(t.db, queue, 1, {
      maxAttempts: 1,
      deadLetterQueue: 'retry-graveyard',
    });
    const [delivery] = await receive(t.db, { queue });
    await nack(t.db, { receipt: delivery!.receipt, error: 'no' });
    expect(await deadLetter(message!.id)).toMatchObject({
      queue: 'retry-graveyard',
      origin_queue: queue,
      last_error: 'no',
    });
    expect(await getQueue(t.db, { name: `${queue}.dlq` })).toBeUndefined();
  });

  it('frees the dead letter’s dedup key for a new message to the origin queue', async () => {
    const queue = 'retry-dlq-dedup';
    await makeQueue(t.db, queue, { maxAttempts: 1 });
    const first = await send(t.db, { queue, message: { payload: 1, dedupKey: 'k' } });
    const [delivery] = await receive(t.db, { queue });
    await nack(t.db, { receipt: delivery!.receipt });
    const second = await send(t.db, { queue, message: { payload: 2, dedupKey: 'k' } });
    expect(second.id).not.toBe(first.id);
  });
});

describe('redrive', () => {
  /** Sends `count` messages to a queue with maxAttempts 1 and fails each once. */
  async function deadLettered(queue: string, count: number): Promise<Message[]> {
    await makeQueue(t.db, queue, { maxAttempts: 1 });
    const messages = await sendMessages(t.db, queue, count);
    const deliveries = await receive(t.db, { queue, max: count });
    for (const d of deliveries) {
      expect((await nack(t.db, { receipt: d.receipt, error: 'boom' })).outcome).toBe(
        'dead_lettered',
      );
    }
    return messages;
  }

  it('moves dead letters back to their origin queue, ready, with attempts reset', async () => {
    const queue = 'redrive-basic';
    const [message] = await deadLettered(queue, 1);
    expect(await redrive(t.db, { queue })).toBe(1);

    expect(await deadLetter(message!.id)).toBeUndefined();
    expect(await messageRow(t.db, message!.id)).toMatchObject({
      queue,
      origin_queue: null,
      dead_lettered_at: null,
      attempts: 0,
      lease_token: null,
    });
    expect(await queueStats(t.db, { queue: `${queue}.dlq` })).toMatchObject({ total: 0 });
    const [delivery] = await receive(t.db, { queue });
    expect(delivery?.message).toMatchObject({ id: message!.id, attempts: 1, payload: { i: 0 } });
    expect(await redrive(t.db, { queue })).toBe(0);
  });

  it('moves at most max dead letters, oldest first', async () => {
    const queue = 'redrive-max';
    const messages = await deadLettered(queue, 3);
    expect(await redrive(t.db, { queue, max: 2 })).toBe(2);
    const back = await receive(t.db, { queue, max: 10 });
    expect(back.map((d) => d.message.id)).toEqual(messages.slice(0, 2).map((m) => m.id));
    expect(await redrive(t.db, { queue, max: 2 })).toBe(1);
  });

  it('leaves a dead letter alone while a consumer of the dead-letter queue holds it', async () => {
    const queue = 'redrive-leased';
    const messages = await deadLettered(queue, 2);
    const [held] = await receive(t.db, { queue: `${queue}.dlq` });
    expect(await redrive(t.db, { queue })).toBe(1);
    const other = messages.find((m) => m.id !== held!.message.id)!;
    expect((await messageRow(t.db, other.id))?.queue).toBe(queue);
    expect((await messageRow(t.db, held!.message.id))?.queue).toBe(`${queue}.dlq`);
    await ack(t.db, { receipt: held!.receipt });
  });

  it('fails with QUEUE_NOT_FOUND for a missing origin queue', async () => {
    await expect(redrive(t.db, { queue: 'redrive-no-such-queue' })).rejects.toMatchObject({
      code: 'QUEUE_NOT_FOUND',
    });
  });
});

describe('expired leases', () => {
  it('requeues an expired lease with backoff and redelivers it with attempts incremented', async () => {
    const queue = 'retry-expired';
    const {
      messages: [message],
    } = await makeQueueWithMessages(t.db, queue, 1, {
      visibilityTimeoutSeconds: 30,
      maxAttempts: 5,
      backoffInitialSeconds: 10,
      backoffMaxSeconds: 100,
    });
    const start = await databaseNow(t.db);
    const first = await receiveOne(queue, start);
    expect(first.message.attempts).toBe(1);

    const reaper = idleReaper(t);
    expect(
      (await reaper.reapExpiredLeases(secondsAfter(start, 29))).filter((r) => r.queue === queue),
    ).toEqual([]);
    const reapedAt = secondsAfter(start, 31);
    expect(await reaper.reapExpiredLeases(reapedAt)).toContainEqual({
      queue,
      deadLetterQueue: null,
      messages: 1,
    });
    expect(await messageRow(t.db, message!.id)).toMatchObject({
      lease_token: null,
      lease_expires_at: null,
      attempts: 1,
      last_error: 'lease expired',
    });
    const delay = await delayFrom(message!.id, reapedAt);
    expect(delay).toBeGreaterThanOrEqual(5 - CLOCK_SLACK_SECONDS);
    expect(delay).toBeLessThanOrEqual(10);
    expect(await receive(t.db, { queue, now: secondsAfter(reapedAt, 4.9) })).toEqual([]);

    const second = await receiveOne(queue, await dueAt(message!.id));
    expect(second.message).toMatchObject({ id: message!.id, attempts: 2 });
    expect(second.receipt).not.toBe(first.receipt);
  });

  it('dead-letters a message whose lease expires on its maxAttempts-th delivery', async () => {
    const queue = 'retry-expired-dlq';
    const {
      messages: [message],
    } = await makeQueueWithMessages(t.db, queue, 1, { maxAttempts: 2 });
    const reaper = idleReaper(t);
    let clock = await databaseNow(t.db);
    for (let attempts = 1; attempts <= 2; attempts += 1) {
      const delivery = await receiveOne(queue, clock);
      expect(delivery.message.attempts).toBe(attempts);
      clock = secondsAfter(delivery.leaseExpiresAt, 1);
      const reaped = await reaper.reapExpiredLeases(clock);
      expect(reaped).toContainEqual({
        queue,
        deadLetterQueue: attempts === 2 ? `${queue}.dlq` : null,
        messages: 1,
      });
      if (attempts === 1) clock = await dueAt(message!.id);
    }
    expect(await deadLetter(message!.id)).toMatchObject({
      queue: `${queue}.dlq`,
      origin_queue: queue,
      attempts: 2,
      last_error: 'lease expired',
    });
  });

  it('dead-letters a message found leased and expired 10 minutes ago at maxAttempts', async () => {
    const queue = 'retry-expired-factory';
    const {
      messages: [exhausted, retried],
    } = await makeQueueWithMessages(t.db, queue, 2, { maxAttempts: 3 });
    await markLeasedAndExpired(t.db, exhausted!.id, { attempts: 3 });
    await markLeasedAndExpired(t.db, retried!.id, { attempts: 2 });

    const reaped = await idleReaper(t).reapExpiredLeases();
    expect(reaped).toContainEqual({ queue, deadLetterQueue: `${queue}.dlq`, messages: 1 });
    expect(reaped).toContainEqual({ queue, deadLetterQueue: null, messages: 1 });
    expect(await deadLetter(exhausted!.id)).toMatchObject({ queue: `${queue}.dlq`, attempts: 3 });
    expect(await messageRow(t.db, retried!.id)).toMatchObject({
      queue,
      lease_token: null,
      attempts: 2,
      last_error: 'lease expired',
    });
  });
});

describe('a queue without a dead-letter queue', () => {
  it('keeps retrying past maxAttempts, by nack and by expired lease', async () => {
    const queue = 'retry-no-dlq';
    const {
      messages: [message],
    } = await makeQueueWithMessages(t.db, queue, 1, {
      maxAttempts: 2,
      deadLetterQueue: null,
      backoffInitialSeconds: 1,
      backoffMaxSeconds: 4,
    });
    let clock = await databaseNow(t.db);
    for (let attempts = 1; attempts <= 5; attempts += 1) {
      const delivery = await receiveOne(queue, clock);
      expect(delivery.message.attempts).toBe(attempts);
      const nacked = await nack(t.db, { receipt: delivery.receipt, error: 'again', now: clock });
      expect(nacked.outcome).toBe('retried');
      clock = await dueAt(message!.id);
    }
    const sixth = await receiveOne(queue, clock);
    expect(sixth.message.attempts).toBe(6);
    expect(
      await idleReaper(t).reapExpiredLeases(secondsAfter(sixth.leaseExpiresAt, 1)),
    ).toContainEqual({ queue, deadLetterQueue: null, messages: 1 });

    expect(await messageRow(t.db, message!.id)).toMatchObject({
      queue,
      origin_queue: null,
      lease_token: null,
      attempts: 6,
    });
    expect(await deadLetter(message!.id)).toBeUndefined();
    expect(await getQueue(t.db, { name: `${queue}.dlq` })).toBeUndefined();
  });
});
