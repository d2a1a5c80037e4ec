import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ack,
  ackBatch,
  decodeReceipt,
  extendLease,
  nack,
  queueStats,
  receive,
  send,
} from '../../src/queue/operations.ts';
import type { Delivery } from '../../src/queue/operations.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import {
  databaseNow,
  idleReaper,
  makeQueue,
  makeQueueWithMessages,
  messageRow,
  secondsAfter,
} from '../helpers/factories.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

const LEASE_LOST = { name: 'QueueError', code: 'LEASE_LOST' };
/** LEASE_LOST with the message that says what became of the message. */
const lost = (why: string) => ({ ...LEASE_LOST, message: expect.stringContaining(why) as string });
const GONE = lost("this receipt's message is gone: it was acknowledged already, or deleted");
const LEASED_AGAIN = lost('the message was delivered again under another receipt');
const WAITING = lost(
  'it expired and was reaped, or the delivery was nacked, and the message waits',
);
const DEAD_LETTER = lost('the message used up its attempts and is now a dead letter');
const BAD_USER_INPUT = { name: 'QueueError', code: 'BAD_USER_INPUT' };

/**
 * Takes a delivery's lease away and gives it to a new receive, the way it happens in
 * production: the lease expires, the reaper requeues the message (as of a `now` past the
 * expiry) and another consumer receives it once its backoff has passed.
 */
async function retakeLease(queue: string, stale: Delivery): Promise<Delivery> {
  const afterExpiry = secondsAfter(stale.leaseExpiresAt, 1);
  const reaped = await idleReaper(t).reapExpiredLeases(afterExpiry);
  expect(reaped).toContainEqual({ queue, deadLetterQueue: null, messages: 1 });
  const row = await messageRow(t.db, stale.message.id);
  expect(row?.lease_token).toBeNull();
  const [fresh] = await receive(t.db, { queue, now: secondsAfter(row!.run_at, 1) });
  expect(fresh?.message.id).toBe(stale.message.id);
  expect(fresh?.receipt).not.toBe(stale.receipt);
  return fresh!;
}

describe('ack', () => {
  it('deletes the message, and a second ack of the same receipt is LEASE_LOST', async () => {
    const queue = 'lease-ack';
    await makeQueueWithMessages(t.db, queue, 2);
    const [delivery] = await receive(t.db, { queue });
    await ack(t.db, { receipt: delivery!.receipt });
    expect(await messageRow(t.db, delivery!.message.id)).toBeUndefined();
    expect(await queueStats(t.db, { queue })).toMatchObject({ total: 1, leased: 0, ready: 1 });
    const again = await ack(t.db, { receipt: delivery!.receipt }).catch((e: unknown) => e);
    expect(again).toMatchObject(GONE);
    expect((again as Error).message).not.toMatch(/expired|reaped|re-delivered/);
  });
});

describe('fencing by receipt', () => {
  it('refuses a stale receipt after the lease is re-taken, leaving the new lease intact', async () => {
    const queue = 'lease-stale';
    await makeQueueWithMessages(t.db, queue, 1, { visibilityTimeoutSeconds: 30 });
    const [stale] = await receive(t.db, { queue });
    const fresh = await retakeLease(queue, stale!);
    const before = await messageRow(t.db, fresh.message.id);
    expect(before).toMatchObject({
      lease_token: decodeReceipt(fresh.receipt).leaseToken,
      attempts: 2,
    });

    await expect(ack(t.db, { receipt: stale!.receipt })).rejects.toMatchObject(LEASED_AGAIN);
    await expect(
      nack(t.db, { receipt: stale!.receipt, delaySeconds: 0, error: 'stale' }),
    ).rejects.toMatchObject(LEASED_AGAIN);
    await expect(
      extendLease(t.db, { receipt: stale!.receipt, seconds: 3600 }),
    ).rejects.toMatchObject(LEASED_AGAIN);
    expect(await ackBatch(t.db, { receipts: [stale!.receipt] })).toEqual([]);

    expect(await messageRow(t.db, fresh.message.id)).toEqual(before);
    await ack(t.db, { receipt: fresh.receipt });
    expect(await messageRow(t.db, fresh.message.id)).toBeUndefined();
  });

  it('fences each message of a batch on its own although the batch shares one lease token', async () => {
    const queue = 'lease-batch-token';
    await makeQueueWithMessages(t.db, queue, 3, { visibilityTimeoutSeconds: 30 });
    const batch = await receive(t.db, { queue, max: 3 });
    expect(batch).toHaveLength(3);
    const tokens = new Set(batch.map((d) => decodeReceipt(d.receipt).leaseToken));
    expect(tokens.size).toBe(1);

    // A receipt names its message: acking the first leaves the other two leased.
    await ack(t.db, { receipt: batch[0]!.receipt });
    expect(await queueStats(t.db, { queue })).toMatchObject({ total: 2, leased: 2 });

    // The second message goes back and is received again, which draws a new token: the
    // batch's receipt for it is now stale, the third message's receipt is not.
    await nack(t.db, { receipt: batch[1]!.receipt, delaySeconds: 0 });
    const [fresh] = await receive(t.db, { queue });
    expect(fresh?.message.id).toBe(batch[1]!.message.id);
    expect(decodeReceipt(fresh!.receipt).leaseToken).not.toBe([...tokens][0]);
    await expect(ack(t.db, { receipt: batch[1]!.receipt })).rejects.toMatchObject(LEASE_LOST);
    await ack(t.db, { receipt: batch[2]!.receipt });
    expect(await messageRow(t.db, fresh!.message.id)).toMatchObject({
      lease_token: decodeReceipt(fresh!.receipt).leaseToken,
    });
    expect(await messageRow(t.db, batch[2]!.message.id)).toBeUndefined();
  });

  it('refuses a receipt whose lease was reaped before anyone re-took it', async () => {
    const queue = 'lease-reaped';
    await makeQueueWithMessages(t.db, queue, 1);
    const [delivery] = await receive(t.db, { queue });
    await idleReaper(t).reapExpiredLeases(secondsAfter(delivery!.leaseExpiresAt, 1));
    const before = await messageRow(t.db, delivery!.message.id);
    expect(before?.lease_token).toBeNull();

    await expect(ack(t.db, { receipt: delivery!.receipt })).rejects.toMatchObject(WAITING);
    await expect(
      extendLease(t.db, { receipt: delivery!.receipt, seconds: 60 }),
    ).rejects.toMatchObject(WAITING);
    await expect(nack(t.db, { receipt: delivery!.receipt })).rejects.toMatchObject(WAITING);
    expect(await messageRow(t.db, delivery!.message.id)).toEqual(before);
  });

  it('says a receipt whose message was dead-lettered under it is a dead letter now', async () => {
    const queue = 'lease-dead-lettered';
    await makeQueueWithMessages(t.db, queue, 1, { maxAttempts: 1 });
    const [delivery] = await receive(t.db, { queue });
    const reaped = await idleReaper(t).reapExpiredLeases(secondsAfter(delivery!.leaseExpiresAt, 1));
    expect(reaped).toContainEqual({ queue, deadLetterQueue: `${queue}.dlq`, messages: 1 });
    const before = await messageRow(t.db, delivery!.message.id);
    expect(before).toMatchObject({ queue: `${queue}.dlq`, lease_token: null });

    await expect(ack(t.db, { receipt: delivery!.receipt })).rejects.toMatchObject(DEAD_LETTER);
    await expect(nack(t.db, { receipt: delivery!.receipt })).rejects.toMatchObject(DEAD_LETTER);
    await expect(
      extendLease(t.db, { receipt: delivery!.receipt, seconds: 60 }),
    ).rejects.toMatchObject(DEAD_LETTER);
    expect(await messageRow(t.db, delivery!.message.id)).toEqual(before);
  });

  it('lets a slow consumer ack after its lease expired but before it was reaped', async () => {
    const queue = 'lease-expired-unreaped';
    await makeQueue(t.db, queue, { visibilityTimeoutSeconds: 30 });
    const aMinuteAgo = secondsAfter(await databaseNow(t.db), -60);
    await send(t.db, { queue, message: { payload: 1, runAt: secondsAfter(aMinuteAgo, -1) } });
    // Leased as of a minute ago: the lease ended 30 s ago and no reaper has run.
    const [delivery] = await receive(t.db, { queue, now: aMinuteAgo });
    expect(delivery!.leaseExpiresAt.getTime()).toBeLessThan(Date.now());
    await ack(t.db, { receipt: delivery!.receipt });
    expect(await messageRow(t.db, delivery!.message.id)).toBeUndefined();
  });

  it('refuses a receipt for a message that is gone without saying whether it existed', async () => {
    const receipt = '987654321.00000000-0000-4000-8000-000000000000';
    // The same answer as for an acknowledged message: gone.
    await expect(ack(t.db, { receipt })).rejects.toMatchObject(GONE);
    await expect(nack(t.db, { receipt })).rejects.toMatchObject(GONE);
    await expect(extendLease(t.db, { receipt, seconds: 10 })).rejects.toMatchObject(GONE);
  });
});

describe('extendLease', () => {
  it('sets the lease to end seconds from now and keeps the receipt', async () => {
    const queue = 'lease-extend';
    await makeQueueWithMessages(t.db, queue, 1, { visibilityTimeoutSeconds: 30 });
    const received = await databaseNow(t.db);
    const [delivery] = await receive(t.db, { queue, now: received });
    expect(delivery!.leaseExpiresAt.getTime()).toBe(secondsAfter(received, 30).getTime());

    const later = secondsAfter(received, 20);
    const extended = await extendLease(t.db, {
      receipt: delivery!.receipt,
      seconds: 600,
      now: later,
    });
    expect(extended.receipt).toBe(delivery!.receipt);
    expect(extended.leaseExpiresAt.getTime()).toBe(secondsAfter(later, 600).getTime());
    expect(extended.message).toMatchObject({
      id: delivery!.message.id,
      attempts: 1,
      state: 'LEASED',
    });
    expect((await messageRow(t.db, delivery!.message.id))?.lease_expires_at).toEqual(
      extended.leaseExpiresAt,
    );
  });

  it('counts from now, not from the old expiry, so it can also shorten a lease', async () => {
    const queue = 'lease-extend-from-now';
    await makeQueueWithMessages(t.db, queue, 1, { visibilityTimeoutSeconds: 600 });
    const [delivery] = await receive(t.db, { queue });
    // databaseNow rounds up to the millisecond; take one off for a lower bound.
    const before = secondsAfter(await databaseNow(t.db), -0.001);
    const extended = await extendLease(t.db, { receipt: delivery!.receipt, seconds: 5 });
    const after = await databaseNow(t.db);
    expect(extended.leaseExpiresAt.getTime()).toBeGreaterThanOrEqual(
      secondsAfter(before, 5).getTime(),
    );
    expect(extended.leaseExpiresAt.getTime()).toBeLessThanOrEqual(secondsAfter(after, 5).getTime());
    expect(extended.leaseExpiresAt.getTime()).toBeLessThan(delivery!.leaseExpiresAt.getTime());
  });

  it('keeps the reaper away past the original expiry until the extended one', async () => {
    const queue = 'lease-extend-reaper';
    await makeQueueWithMessages(t.db, queue, 1, { visibilityTimeoutSeconds: 30 });
    const start = await databaseNow(t.db);
    const [delivery] = await receive(t.db, { queue, now: start });
    await extendLease(t.db, { receipt: delivery!.receipt, seconds: 300, now: start });

    const reaper = idleReaper(t);
    const early = await reaper.reapExpiredLeases(secondsAfter(start, 60));
    expect(early.filter((r) => r.queue === queue)).toEqual([]);
    // The receipt still works after the original lease would have ended.
    const again = await extendLease(t.db, {
      receipt: delivery!.receipt,
      seconds: 30,
      now: secondsAfter(start, 60),
    });
    expect(again.leaseExpiresAt.getTime()).toBe(secondsAfter(start, 90).getTime());

    const late = await reaper.reapExpiredLeases(secondsAfter(start, 91));
    expect(late).toContainEqual({ queue, deadLetterQueue: null, messages: 1 });
    await expect(ack(t.db, { receipt: delivery!.receipt })).rejects.toMatchObject(LEASE_LOST);
  });

  it('rejects seconds outside 1 to 43,200 with BAD_USER_INPUT and keeps the lease', async () => {
    const queue = 'lease-extend-bounds';
    await makeQueueWithMessages(t.db, queue, 1);
    const [delivery] = await receive(t.db, { queue });
    const before = await messageRow(t.db, delivery!.message.id);
    for (const seconds of [0, -5, 43_201, 1.5]) {
      await expect(
        extendLease(t.db, { receipt: delivery!.receipt, seconds }),
      ).rejects.toMatchObject(BAD_USER_INPUT);
    }
    expect(await messageRow(t.db, delivery!.message.id)).toEqual(before);
  });
});

describe('ackBatch', () => {
  it('acks only the receipts whose lease is still valid and counts those', async () => {
    const queue = 'lease-ack-batch';
    await makeQueueWithMessages(t.db, queue, 4);
    // The first lease is short, so that only it expires and is re-taken.
    const [stale] = await receive(t.db, { queue, visibilityTimeoutSeconds: 5 });
    const others = await receive(t.db, { queue, max: 3, visibilityTimeoutSeconds: 600 });
    expect(others).toHaveLength(3);
    const [acked, kept1, kept2] = others as [Delivery, Delivery, Delivery];
    await ack(t.db, { receipt: acked.receipt });
    const fresh = await retakeLease(queue, stale!);

    const result = await ackBatch(t.db, {
      receipts: [acked.receipt, stale!.receipt, kept1.receipt, kept2.receipt],
    });
    expect(result).toHaveLength(2);
    expect(await messageRow(t.db, kept1.message.id)).toBeUndefined();
    expect(await messageRow(t.db, kept2.message.id)).toBeUndefined();
    // The re-taken message still belongs to its new holder.
    expect((await messageRow(t.db, fresh.message.id))?.lease_token).toBe(
      decodeReceipt(fresh.receipt).leaseToken,
    );
    expect(await queueStats(t.db, { queue })).toMatchObject({ ready: 0, leased: 1, total: 1 });
  });

  it('counts a receipt given twice once', async () => {
    const queue = 'lease-ack-batch-twice';
    await makeQueueWithMessages(t.db, queue, 1);
    const [delivery] = await receive(t.db, { queue });
    const result = await ackBatch(t.db, { receipts: [delivery!.receipt, delivery!.receipt] });
    expect(result).toHaveLength(1);
    expect(await messageRow(t.db, delivery!.message.id)).toBeUndefined();
  });
});

describe('malformed receipts', () => {
  const malformed = [
    '',
    'not-a-receipt',
    '12',
    '12.not-a-uuid',
    '0.00000000-0000-4000-8000-000000000000',
    '-1.00000000-0000-4000-8000-000000000000',
    '12.00000000-0000-4000-8000-000000000000.extra',
  ];

  it('rejects a malformed receipt with BAD_USER_INPUT in ack, nack and extendLease', async () => {
    for (const receipt of malformed) {
      await expect(ack(t.db, { receipt })).rejects.toMatchObject(BAD_USER_INPUT);
      await expect(nack(t.db, { receipt })).rejects.toMatchObject(BAD_USER_INPUT);
      await expect(extendLease(t.db, { receipt, seconds: 10 })).rejects.toMatchObject(
        BAD_USER_INPUT,
      );
    }
  });

  it('rejects a message id beyond bigint with BAD_USER_INPUT', async () => {
    const receipt = '9999999999999999999.00000000-0000-4000-8000-000000000000';
    await expect(ack(t.db, { receipt })).rejects.toMatchObject(BAD_USER_INPUT);
    await expect(nack(t.db, { receipt })).rejects.toMatchObject(BAD_USER_INPUT);
    await expect(extendLease(t.db, { receipt, seconds: 10 })).rejects.toMatchObject(BAD_USER_INPUT);
  });

  it('fails a whole ackBatch with one malformed receipt, acking none of the others', async () => {
    const queue = 'lease-ack-batch-malformed';
    await makeQueueWithMessages(t.db, queue, 2);
    const deliveries = await receive(t.db, { queue, max: 2 });
    await expect(
      ackBatch(t.db, { receipts: [...deliveries.map((d) => d.receipt), 'garbage'] }),
    ).rejects.toMatchObject(BAD_USER_INPUT);
    await expect(ackBatch(t.db, { receipts: [] })).rejects.toMatchObject(BAD_USER_INPUT);
    expect(await queueStats(t.db, { queue })).toMatchObject({ leased: 2, total: 2 });
  });
});
