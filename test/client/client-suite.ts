import { describe, expect, it } from 'vitest';
import { HoldlineError } from '../../src/index.ts';
import type { SuiteTarget } from './support.ts';

/** Rejects with a HoldlineError of `code`, not retryable. */
async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(HoldlineError);
  expect(error).toMatchObject({ code, retryable: false });
}

/**
 * Every contract operation through the client, run once per transport: the HTTP client and
 * the in-process client must give the same typed results and the same error codes.
 */
export function defineClientSuite(target: () => SuiteTarget): void {
  describe('client', () => {
    it('runs every contract operation with typed results', async () => {
      const { client } = target();
      const queue = 'client-orders';

      const created = await client.createQueue(queue, { visibilityTimeoutSeconds: 10 });
      expect(created).toMatchObject({ name: queue, paused: false });
      expect(created.config).toMatchObject({ visibilityTimeoutSeconds: 10, maxAttempts: 5 });
      expect(created.createdAt).toBeInstanceOf(Date);
      const configured = await client.configureQueue(queue, { maxAttempts: 4 });
      expect(configured.config).toMatchObject({ visibilityTimeoutSeconds: 10, maxAttempts: 4 });
      expect(await client.getQueue(queue)).toEqual(configured);
      expect(await client.getQueue('client-no-such-queue')).toBeNull();
      expect((await client.listQueues()).map((q) => q.name)).toContain(queue);

      expect(await client.bindQueue(queue, 'orders.*')).toBe(true);
      const copies = await client.publish('orders.created', { payload: { via: 'publish' } });
      expect(copies.map((m) => m.queue)).toEqual([queue]);
      expect(await client.publish('invoices.created', { payload: {} })).toEqual([]);

      const first = await client.send(queue, { payload: { n: 1 }, dedupKey: 'order-1' });
      const again = await client.send(queue, { payload: { n: 1 }, dedupKey: 'order-1' });
      expect(again.id).toBe(first.id);
      const batch = await client.sendBatch(queue, [
        { payload: { n: 2 }, headers: { source: 'test' } },
        { payload: { n: 3 }, priority: 5 },
      ]);
      expect(batch.map((m) => m.payload)).toEqual([{ n: 2 }, { n: 3 }]);
      expect(batch[0]).toMatchObject({ headers: { source: 'test' }, state: 'READY', attempts: 0 });
      expect(batch[0]!.runAt).toBeInstanceOf(Date);

      expect(await client.queueStats(queue)).toMatchObject({
        queue,
        ready: 4,
        delayed: 0,
        leased: 0,
        total: 4,
      });
      expect(await client.queueStats('client-no-such-queue')).toBeNull();
      // Priority 5 goes first, so the last-sent message is next in line.
      expect(await client.getMessage(batch[1]!.id)).toMatchObject({ position: 0, state: 'READY' });
      expect(await client.getMessage('999999999')).toBeNull();
      const listed = await client.listMessages(queue, { first: 10 });
      expect(listed.map((m) => m.id)).toEqual([
        copies[0]!.id,
        first.id,
        batch[0]!.id,
        batch[1]!.id,
      ]);

      expect((await client.pauseQueue(queue)).paused).toBe(true);
      expect(await client.receive(queue, { max: 10 })).toEqual([]);
      expect((await client.resumeQueue(queue)).paused).toBe(false);

      const [a, b] = await client.receive(queue, { max: 2, visibilityTimeoutSeconds: 5 });
      expect(a!.message).toMatchObject({ id: batch[1]!.id, state: 'LEASED', attempts: 1 });
      expect(a!.leaseExpiresAt).toBeInstanceOf(Date);
      const extended = await client.extendLease(a!.receipt, 60);
      expect(extended.receipt).toBe(a!.receipt);
      expect(extended.leaseExpiresAt.getTime()).toBeGreaterThan(a!.leaseExpiresAt.getTime());
      expect(await client.ack(a!.receipt)).toBe(true);
      expect(await client.ackBatch([b!.receipt])).toBe(1);

      const [c] = await client.receive(queue);
      expect(await client.nack(c!.receipt, { delaySeconds: 60, error: 'try later' })).toBe(true);
      expect(await client.getMessage(c!.message.id)).toMatchObject({
        state: 'DELAYED',
        lastError: 'try later',
        position: null,
      });

      const source = 'client-redrive';
      await client.createQueue(source, { maxAttempts: 1 });
      await client.send(source, { payload: { doomed: true } });
      const [doomed] = await client.receive(source);
      await client.nack(doomed!.receipt, { error: 'fatal' });
      expect(await client.listMessages(`${source}.dlq`)).toMatchObject([
        { originQueue: source, lastError: 'fatal' },
      ]);
      expect(await client.redrive(source)).toBe(1);
      expect(await client.queueStats(source)).toMatchObject({ ready: 1 });

      expect(await client.purge(queue)).toBe(2);
      expect(await client.unbindQueue(queue, 'orders.*')).toBe(true);
      expect(await client.deleteQueue(queue)).toBe(true);
      expect(await client.deleteQueue(queue)).toBe(false);
    });

    it('archives acked messages, pages the archive and starts, reads and cancels a replay', async () => {
      const { client } = target();
      const queue = 'client-archive';
      const created = await client.createQueue(queue, { archiveSeconds: 3600 });
      expect(created.config.archiveSeconds).toBe(3600);
      await client.sendBatch(queue, [
        { payload: { n: 1, kind: 'a' } },
        { payload: { n: 2, kind: 'b' } },
      ]);
      const deliveries = await client.receive(queue, { max: 2 });
      expect(await client.ackBatch(deliveries.map((d) => d.receipt))).toBe(2);

      const page = await client.archivedMessages<{ n: number }>(queue, {
        filter: { payload: { kind: 'b' } },
      });
      expect(page.messages.map((m) => m.payload.n)).toEqual([2]);
      expect(page.messages[0]!.ackedAt).toBeInstanceOf(Date);
      expect(page.hasNextPage).toBe(false);

      const dry = await client.replay(queue, { dryRun: true, from: new Date(0) });
      expect(dry).toMatchObject({ kind: 'REPLAY', state: 'DONE', matched: 2, into: queue });
      const job = await client.replay(queue, { ratePerSecond: 1 });
      expect(await client.replayJob(job.id)).toMatchObject({ id: job.id, state: 'RUNNING' });
      expect(await client.cancelReplay(job.id)).toMatchObject({ state: 'CANCELLED' });
      expect(await client.replayJob('99999999')).toBeNull();
      expect((await client.replayJobs(queue)).map((j) => j.id)).toEqual([job.id, dry.id]);
      await expectCode(client.replay(queue, { ratePerSecond: 0 }), 'BAD_USER_INPUT');

      // A redrive job: the dead letters of an origin queue back into it, run by the leader.
      const origin = 'client-archive-origin';
      await client.createQueue(origin, { maxAttempts: 1 });
      await client.send(origin, { payload: { kind: 'dies' } });
      const [dying] = await client.receive(origin);
      await client.nack(dying!.receipt, { error: 'fatal' });
      const redrive = await client.startRedrive(origin, { dryRun: true });
      expect(redrive).toMatchObject({ kind: 'REDRIVE', state: 'DONE', matched: 1, queue: origin });
      expect((await client.replayJobs(origin)).map((j) => j.id)).toEqual([redrive.id]);
      await expectCode(client.startRedrive(origin, { max: 0 }), 'BAD_USER_INPUT');
      await expectCode(client.archivedMessages('client-missing'), 'QUEUE_NOT_FOUND');
    });

    it('filters and counts messages, acts on everything a filter matches, reads the history', async () => {
      const { client } = target();
      const queue = 'client-bulk';
      await client.createQueue(queue, { maxAttempts: 1 });
      await client.sendBatch(queue, [
        { payload: { region: 'eu', n: 1 } },
        { payload: { region: 'us', n: 2 } },
        { payload: { region: 'eu', n: 3 }, groupKey: 'g', delaySeconds: 3600 },
        { payload: { region: 'eu', n: 4 }, headers: { tenant: 'a' } },
      ]);
      const eu = { payload: { region: 'eu' } };
      const listed = await client.listMessages<{ n: number }>(queue, { filter: eu });
      expect(listed.map((m) => m.payload.n)).toEqual([1, 3, 4]);
      expect(await client.countMessages(queue, { filter: eu })).toBe(3);
      expect(await client.countMessages(queue, { state: 'DELAYED', filter: eu })).toBe(1);
      expect(await client.countMessages(queue, { filter: { headers: { tenant: 'a' } } })).toBe(1);
      expect(await client.countMessages(queue, { filter: { createdBefore: new Date(0) } })).toBe(0);

      expect(await client.retryMessages(queue, { groupKey: 'g' })).toBe(1);
      expect(await client.queueStats(queue)).toMatchObject({ ready: 4, delayed: 0 });
      const other = 'client-bulk-other';
      await client.createQueue(other);
      expect(await client.moveMessages(queue, other, { filter: { payload: { n: 4 } } })).toBe(1);
      expect(await client.queueStats(other)).toMatchObject({ ready: 1 });
      expect(await client.deleteMessages(queue, { filter: { payload: { region: 'us' } } })).toBe(1);
      expect(await client.queueStats(queue)).toMatchObject({ ready: 2 });

      // Both left die (maxAttempts 1); only the filtered one goes back.
      for (const d of await client.receive(queue, { max: 10 })) {
        await client.nack(d.receipt, { error: 'fatal' });
      }
      expect(await client.redriveMessages(`${queue}.dlq`, { payload: { n: 1 } })).toBe(1);
      expect(await client.queueStats(queue)).toMatchObject({ ready: 1 });
      expect(await client.queueStats(`${queue}.dlq`)).toMatchObject({ ready: 1 });
      await expectCode(client.moveMessages(queue, queue), 'BAD_USER_INPUT');
      await expectCode(client.deleteMessages('client-bulk-missing'), 'QUEUE_NOT_FOUND');

      const to = new Date(Math.floor(Date.now() / 60_000) * 60_000);
      const points = await client.queueHistory(queue, {
        from: new Date(to.getTime() - 3 * 60_000),
        to,
      });
      expect(points.map((p) => p.at.getTime() - to.getTime())).toEqual([
        -180_000, -120_000, -60_000,
      ]);
      expect(points.every((p) => typeof p.sent === 'number')).toBe(true);
      await expectCode(client.queueHistory(queue, { from: to, to }), 'BAD_USER_INPUT');
    });

    it('rejects with a HoldlineError carrying the contract code', async () => {
      const { client } = target();
      const queue = 'client-errors';
      await client.createQueue(queue);
      await expectCode(client.createQueue(queue), 'QUEUE_EXISTS');
      await expectCode(client.send('client-missing', { payload: 1 }), 'QUEUE_NOT_FOUND');
      await expectCode(client.receive(queue, { max: 0 }), 'BAD_USER_INPUT');
      await expectCode(client.ack('not-a-receipt'), 'BAD_USER_INPUT');

      await client.send(queue, { payload: { n: 1 } });
      const [delivery] = await client.receive(queue);
      await client.ack(delivery!.receipt);
      await expectCode(client.ack(delivery!.receipt), 'LEASE_LOST');
      await expectCode(client.extendLease(delivery!.receipt, 10), 'LEASE_LOST');
      await expectCode(client.nack(delivery!.receipt), 'LEASE_LOST');
      expect(await client.ackBatch([delivery!.receipt])).toBe(0);
    });

    it('sets flow limits, manages schedules and says why a message waits', async () => {
      const { client } = target();
      const queue = 'client-flow';
      const created = await client.createQueue(queue, {
        maxInFlight: 1,
        rateLimit: { count: 100, perSeconds: 10 },
      });
      expect(created.config).toMatchObject({
        maxInFlight: 1,
        rateLimit: { count: 100, perSeconds: 10 },
      });
      await client.send(queue, { payload: 1 });
      const second = await client.send(queue, { payload: 2 });
      await client.receive(queue);
      expect(await client.getMessage(second.id)).toMatchObject({
        waitingReason: 'CONCURRENCY_CAP',
        nextEligibleAt: null,
      });
      const uncapped = await client.configureQueue(queue, { maxInFlight: null, rateLimit: null });
      expect(uncapped.config).toMatchObject({ maxInFlight: null, rateLimit: null });
      expect(await client.getMessage(second.id)).toMatchObject({ waitingReason: 'READY' });

      const schedule = await client.createSchedule({
        name: 'client-hourly',
        cron: '0 * * * *',
        queue,
        message: { payload: { report: 'hourly' }, groupKey: 'reports' },
        catchUp: 'ALL',
        catchUpMax: 5,
      });
      expect(schedule).toMatchObject({
        name: 'client-hourly',
        timezone: 'UTC',
        message: { payload: { report: 'hourly' }, groupKey: 'reports', priority: 0 },
        catchUp: 'ALL',
        catchUpMax: 5,
        paused: false,
        lastTickAt: null,
      });
      expect(schedule.nextTickAt).toBeInstanceOf(Date);
      expect((await client.schedules(queue)).map((s) => s.name)).toEqual(['client-hourly']);
      expect((await client.pauseSchedule('client-hourly')).paused).toBe(true);
      expect((await client.resumeSchedule('client-hourly')).paused).toBe(false);
      await expectCode(
        client.createSchedule({
          name: 'client-hourly',
          cron: '0 * * * *',
          queue,
          message: { payload: 1 },
        }),
        'SCHEDULE_EXISTS',
      );
      await expectCode(client.pauseSchedule('client-nobody'), 'SCHEDULE_NOT_FOUND');
      expect(await client.deleteSchedule('client-hourly')).toBe(true);
      expect(await client.schedules(queue)).toEqual([]);
    });
  });
}
