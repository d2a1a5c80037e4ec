/**
 * "Why is it waiting": a message's waitingReason and nextEligibleAt, and a queue's unleased
 * messages counted by reason, each reason reached through the API.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  getMessage,
  nack,
  receive,
  send,
  setQueuePaused,
  waitingCounts,
} from '../../src/queue/operations.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { databaseNow, makeQueue, secondsAfter } from '../helpers/factories.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

describe('waitingReason of one message', () => {
  it('is READY with its place in line, eligible now', async () => {
    const queue = 'why-ready';
    await makeQueue(t.db, queue);
    await send(t.db, { queue, message: { payload: 1 } });
    const second = await send(t.db, { queue, message: { payload: 2 } });
    const now = await databaseNow(t.db);
    const found = await getMessage(t.db, { id: second.id, now });
    expect(found).toMatchObject({ waitingReason: 'READY', position: 1, nextEligibleAt: now });
  });

  it('is DELAYED until its runAt when never delivered, BACKING_OFF after a nack', async () => {
    const queue = 'why-delayed';
    await makeQueue(t.db, queue);
    const delayed = await send(t.db, { queue, message: { payload: 1, delaySeconds: 600 } });
    expect(await getMessage(t.db, { id: delayed.id })).toMatchObject({
      waitingReason: 'DELAYED',
      nextEligibleAt: delayed.runAt,
    });

    const retried = await send(t.db, { queue, message: { payload: 2 } });
    const [delivery] = await receive(t.db, { queue });
    expect(delivery?.message.id).toBe(retried.id);
    expect(await getMessage(t.db, { id: retried.id })).toMatchObject({
      state: 'LEASED',
      waitingReason: null,
      nextEligibleAt: null,
    });
    const before = await databaseNow(t.db);
    await nack(t.db, { receipt: delivery!.receipt, delaySeconds: 60 });
    const backingOff = await getMessage(t.db, { id: retried.id });
    expect(backingOff?.waitingReason).toBe('BACKING_OFF');
    expect(backingOff?.nextEligibleAt?.getTime()).toBeGreaterThanOrEqual(
      secondsAfter(before, 59).getTime(),
    );
    expect(backingOff?.nextEligibleAt).toEqual(backingOff?.runAt);
  });

  it('is GROUP_HEAD_IN_FLIGHT behind a leased earlier message of its group only', async () => {
    const queue = 'why-group';
    await makeQueue(t.db, queue);
    await send(t.db, { queue, message: { payload: 1, groupKey: 'a' } });
    const behind = await send(t.db, { queue, message: { payload: 2, groupKey: 'a' } });
    const other = await send(t.db, { queue, message: { payload: 3, groupKey: 'b' } });
    await receive(t.db, { queue });
    expect(await getMessage(t.db, { id: behind.id })).toMatchObject({
      waitingReason: 'GROUP_HEAD_IN_FLIGHT',
      nextEligibleAt: null,
    });
    expect((await getMessage(t.db, { id: other.id }))?.waitingReason).toBe('READY');
  });

  it('is QUEUE_PAUSED while its queue is paused, READY again once resumed', async () => {
    const queue = 'why-paused';
    await makeQueue(t.db, queue);
    const message = await send(t.db, { queue, message: { payload: 1 } });
    await setQueuePaused(t.db, { name: queue, paused: true });
    expect((await getMessage(t.db, { id: message.id }))?.waitingReason).toBe('QUEUE_PAUSED');
    await setQueuePaused(t.db, { name: queue, paused: false });
    expect((await getMessage(t.db, { id: message.id }))?.waitingReason).toBe('READY');
  });

  it('is CONCURRENCY_CAP while every slot of the cap is leased', async () => {
    const queue = 'why-cap';
    await makeQueue(t.db, queue, { maxInFlight: 1 });
    await send(t.db, { queue, message: { payload: 1 } });
    const waiting = await send(t.db, { queue, message: { payload: 2 } });
    expect((await getMessage(t.db, { id: waiting.id }))?.waitingReason).toBe('READY');
    await receive(t.db, { queue });
    expect(await getMessage(t.db, { id: waiting.id })).toMatchObject({
      waitingReason: 'CONCURRENCY_CAP',
      position: 0,
      nextEligibleAt: null,
    });
  });
});

describe('waiting counts of a queue', () => {
  it('counts every unleased message under the reason it waits', async () => {
    const queue = 'why-counts';
    await makeQueue(t.db, queue, { maxInFlight: 2 });
    await send(t.db, { queue, message: { payload: 'delayed', delaySeconds: 600 } });
    await send(t.db, { queue, message: { payload: 'head', groupKey: 'g' } });
    await send(t.db, { queue, message: { payload: 'behind', groupKey: 'g' } });
    await send(t.db, { queue, message: { payload: 'free' } });
    await send(t.db, { queue, message: { payload: 'free' } });
    expect(await waitingCounts(t.db, { queue })).toMatchObject({
      ready: 3,
      delayed: 1,
      groupHeadInFlight: 1,
      concurrencyCap: 0,
      leased: 0,
      maxInFlight: 2,
    });
    // Leases the group's head and one free message: the cap is full.
    const leased = await receive(t.db, { queue, max: 2 });
    expect(leased.map((d) => d.message.payload)).toEqual(['head', 'free']);
    expect(await waitingCounts(t.db, { queue })).toMatchObject({
      ready: 0,
      delayed: 1,
      backingOff: 0,
      groupHeadInFlight: 1,
      queuePaused: 0,
      concurrencyCap: 1,
      rateLimited: 0,
      leased: 2,
    });
    await nack(t.db, { receipt: leased[1]!.receipt, delaySeconds: 600 });
    await setQueuePaused(t.db, { name: queue, paused: true });
    expect(await waitingCounts(t.db, { queue })).toMatchObject({
      delayed: 1,
      backingOff: 1,
      groupHeadInFlight: 0,
      queuePaused: 2,
      concurrencyCap: 0,
      leased: 1,
    });
    expect(await waitingCounts(t.db, { queue: 'why-nobody' })).toBeUndefined();
  });
});
