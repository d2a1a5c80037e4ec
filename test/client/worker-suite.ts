import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { HoldlineError, QueueWorker, RELEASED_ERROR_TEXT, send } from '../../src/index.ts';
import type { Delivery } from '../../src/index.ts';
import { messageRow, sendMessages } from '../helpers/factories.ts';
import { pollUntil } from '../helpers/notifications.ts';
import { countdown, countingTransport, deferred, spawnWorkerProcess, within } from './support.ts';
import type { SuiteTarget } from './support.ts';

/** The lease token inside a receipt (`<id>.<token>`). */
function tokenOf(receipt: string): string {
  return receipt.split('.')[1]!;
}

/**
 * The worker's guarantees, run once per transport (in-process and HTTP): the same worker
 * code must keep them over either.
 */
export function defineWorkerSuite(target: () => SuiteTarget): void {
  describe('worker', () => {
    it('processes 2,000 messages with concurrency 8, each exactly once, losing none', async () => {
      const { client, t } = target();
      const queue = 'worker-exactly-once';
      await client.createQueue(queue);
      await sendMessages(t.db, queue, 2_000);
      const seen = new Map<number, number>();
      let running = 0;
      let mostRunning = 0;
      const processed = countdown(2_000);
      const worker = client.consume<{ i: number }>(
        queue,
        async (message) => {
          running++;
          mostRunning = Math.max(mostRunning, running);
          seen.set(message.payload.i, (seen.get(message.payload.i) ?? 0) + 1);
          // Yield so handlers overlap, as real I/O-bound handlers do.
          await sleep(Math.random() * 3);
          running--;
        },
        { concurrency: 8 },
      );
      const failures: unknown[] = [];
      worker.on('failed', (event) => failures.push(event.error));
      worker.on('processed', () => processed.tick());
      await within(60_000, '2,000 messages processed', processed.done);
      await worker.stop();

      expect(failures).toEqual([]);
      expect(seen.size).toBe(2_000);
      expect([...seen.values()].every((count) => count === 1)).toBe(true);
      expect(mostRunning).toBe(8);
      expect(await client.queueStats(queue)).toMatchObject({ total: 0 });
    });

    it('coalesces acks into batches and long-polls instead of busy polling', async () => {
      const { client, t } = target();
      const queue = 'worker-batching';
      await client.createQueue(queue);
      const transport = countingTransport(client);
      const processed = countdown(200);
      const worker = new QueueWorker(transport, queue, () => sleep(1), { concurrency: 8 });
      worker.on('processed', () => processed.tick());

      // Idle: one long poll is waiting; a busy-polling worker would have made dozens of calls.
      await sleep(1_500);
      expect(transport.calls.receive).toBeLessThanOrEqual(2);

      await sendMessages(t.db, queue, 200);
      await within(30_000, '200 messages processed', processed.done);
      await worker.stop();
      expect(transport.calls.ackedReceipts).toBe(200);
      expect(transport.calls.ackBatch).toBeLessThanOrEqual(200 / 4);
    });

    it('wakes an idle worker on a committed send well before the next poll', async () => {
      const { client, t } = target();
      const queue = 'worker-wakeup';
      await client.createQueue(queue);
      let arrived = deferred<number>();
      const worker = client.consume(queue, () => arrived.resolve(Date.now()));
      const latencies: number[] = [];
      // Several sends, so that landing on poll ticks (every 1 s) by chance cannot pass.
      for (let i = 0; i < 5; i++) {
        await sleep(300);
        arrived = deferred<number>();
        const sentAt = Date.now();
        await t.db.transaction().execute((trx) => send(trx, queue, { payload: { i } }));
        latencies.push((await within(5_000, 'delivery', arrived.promise)) - sentAt);
      }
      await worker.stop();
      expect(Math.max(...latencies)).toBeLessThan(400);
    });

    it('keeps extending the lease of a handler that runs 3× the visibility timeout, with no redelivery', async () => {
      const { client, t } = target();
      const queue = 'worker-long-handler';
      // The worker takes its lease length from the queue: 2 s, extended every 2/3 s.
      await client.createQueue(queue, { visibilityTimeoutSeconds: 2, backoffInitialSeconds: 0 });
      const [sent] = await client.sendBatch(queue, [{ payload: { long: true } }]);
      const deliveries: Delivery[] = [];
      const checks: { tokenKept: boolean; leaseAhead: boolean }[] = [];
      const done = deferred();
      const worker = client.consume(
        queue,
        async (_message, { signal, delivery }) => {
          deliveries.push(delivery);
          for (let i = 0; i < 6; i++) {
            await sleep(1_000);
            const { rows } = await sql<{ lease_token: string | null; ahead: boolean }>`
              SELECT lease_token, lease_expires_at > now() AS ahead
              FROM holdline.messages WHERE id = ${delivery.message.id}::bigint
            `.execute(t.db);
            checks.push({
              tokenKept: rows[0]?.lease_token === tokenOf(delivery.receipt),
              leaseAhead: rows[0]?.ahead === true,
            });
          }
          expect(signal.aborted).toBe(false);
        },
        // Two slots: a redelivery would find a free one.
        { concurrency: 2 },
      );
      worker.on('processed', () => done.resolve());
      await within(15_000, 'long handler processed', done.promise);
      await worker.stop();

      expect(deliveries.map((d) => d.message.id)).toEqual([sent!.id]);
      expect(checks).toHaveLength(6);
      expect(checks.every((c) => c.tokenKept && c.leaseAhead)).toBe(true);
      expect(await messageRow(t.db, sent!.id)).toBeUndefined();
    });

    it('aborts the handler signal with LEASE_LOST when the lease is lost, and does not ack', async () => {
      const { client, t } = target();
      const queue = 'worker-lease-lost';
      await client.createQueue(queue, { visibilityTimeoutSeconds: 3 });
      const [sent] = await client.sendBatch(queue, [{ payload: { steal: true } }]);
      const started = deferred();
      const aborted = deferred<unknown>();
      const worker = client.consume(queue, async (_message, { signal }) => {
        started.resolve();
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
        aborted.resolve(signal.reason);
      });
      const lost: unknown[] = [];
      const failed = deferred<unknown>();
      worker.on('leaseLost', (event) => lost.push(event.error));
      worker.on('failed', (event) => failed.resolve(event.error));
      await within(5_000, 'handler started', started.promise);

      // The lease passes to someone else (as after expiry, reaping and a new receive).
      const stolenToken = randomUUID();
      await sql`
        UPDATE holdline.messages SET lease_token = ${stolenToken}::uuid WHERE id = ${sent!.id}::bigint
      `.execute(t.db);

      // The next extension (within a second) is refused.
      const reason = await within(3_000, 'signal aborted', aborted.promise);
      expect(reason).toBeInstanceOf(HoldlineError);
      expect(reason).toMatchObject({ code: 'LEASE_LOST' });
      expect(lost).toHaveLength(1);
      // The handler returned normally, but its lease was gone: reported as failed, not acked.
      expect(await within(3_000, 'failed event', failed.promise)).toMatchObject({
        code: 'LEASE_LOST',
      });
      await worker.stop();
      expect((await messageRow(t.db, sent!.id))?.lease_token).toBe(stolenToken);
    });

    it('nacks a throwing handler with its error text: retried with backoff, dead-lettered at maxAttempts', async () => {
      const { client } = target();
      const queue = 'worker-failing';
      await client.createQueue(queue, {
        maxAttempts: 3,
        backoffInitialSeconds: 0.4,
        backoffMaxSeconds: 1,
      });
      const [sent] = await client.sendBatch(queue, [{ payload: { fail: true } }]);
      const attempts: { attempt: number; at: number }[] = [];
      const failed = countdown(3);
      const worker = client.consume(queue, (message) => {
        attempts.push({ attempt: message.attempts, at: Date.now() });
        throw new Error(`boom on attempt ${message.attempts}`);
      });
      const failures: unknown[] = [];
      worker.on('failed', (event) => {
        failures.push(event.error);
        failed.tick();
      });
      await within(15_000, 'three failures', failed.done);
      await worker.stop();

      expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
      // Backoff with equal jitter: the 1st retry waits 0.2–0.4 s, the 2nd 0.4–0.8 s.
      expect(attempts[1]!.at - attempts[0]!.at).toBeGreaterThanOrEqual(190);
      expect(attempts[2]!.at - attempts[1]!.at).toBeGreaterThanOrEqual(390);
      expect(failures).toHaveLength(3);
      const dead = await client.listMessages(`${queue}.dlq`);
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatchObject({
        id: sent!.id,
        originQueue: queue,
        attempts: 3,
        lastError: 'boom on attempt 3',
      });
      expect(await client.queueStats(queue)).toMatchObject({ total: 0 });
    });

    it('stop() waits for running handlers, then releases the rest for immediate redelivery', async () => {
      const { client, t } = target();
      const queue = 'worker-stop';
      await client.createQueue(queue, { visibilityTimeoutSeconds: 30 });
      const [finishing, stuck] = await client.sendBatch(queue, [
        { payload: { role: 'finishing' } },
        { payload: { role: 'stuck' } },
      ]);
      const bothStarted = countdown(2);
      const finishFirst = deferred();
      const stuckAbort = deferred<unknown>();
      const worker = client.consume<{ role: string }>(
        queue,
        async (message, { signal }) => {
          bothStarted.tick();
          if (message.payload.role === 'finishing') {
            await finishFirst.promise;
            return;
          }
          // Ignores stop() until its signal aborts.
          await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
          stuckAbort.resolve(signal.reason);
        },
        // A free third slot keeps a long poll open while stop() is called.
        { concurrency: 3 },
      );
      const released: string[] = [];
      worker.on('released', (event) => released.push(event.delivery.message.id));
      await within(5_000, 'both handlers started', bothStarted.done);
      // The free slot's long poll is waiting (registered as an idle consumer of the queue).
      await pollUntil('the long poll to wait', async () => {
        const { rows } = await sql<{ n: number }>`
          SELECT count(*)::int AS n FROM holdline.waiting_consumers WHERE queue = ${queue}
        `.execute(t.db);
        return rows[0]!.n > 0;
      });

      const stopStarted = Date.now();
      const stopping = worker.stop({ timeoutMs: 1_000 });
      // Sent after stop(): the worker must not take it.
      const [late] = await client.sendBatch(queue, [{ payload: { role: 'late' } }]);
      await sleep(100);
      finishFirst.resolve();
      await stopping;
      const stopMs = Date.now() - stopStarted;

      expect(stopMs).toBeGreaterThanOrEqual(950);
      expect(stopMs).toBeLessThan(5_000);
      expect(await stuckAbort.promise).toMatchObject({ name: 'WorkerStoppedError' });
      expect(released).toEqual([stuck!.id]);
      // The finished handler's message was acked; the stuck one is ready again at once.
      expect(await messageRow(t.db, finishing!.id)).toBeUndefined();
      const row = await messageRow(t.db, stuck!.id);
      expect(row).toMatchObject({
        lease_token: null,
        attempts: 1,
        last_error: RELEASED_ERROR_TEXT,
      });
      expect((await messageRow(t.db, late!.id))?.attempts).toBe(0);
      const again = await client.receive(queue, { max: 10 });
      expect(again.map((d) => d.message.id).sort()).toEqual([stuck!.id, late!.id].sort());
    });

    it('delivers the messages of a SIGKILLed worker process again once their leases expire', async () => {
      const { client, t, fixtureEnv } = target();
      const queue = 'worker-sigkill';
      await client.createQueue(queue, { backoffInitialSeconds: 0 });
      const sent = await client.sendBatch(
        queue,
        Array.from({ length: 5 }, (_, i) => ({ payload: { i } })),
      );
      const child = spawnWorkerProcess({
        ...fixtureEnv,
        HOLDLINE_QUEUE: queue,
        HOLDLINE_CONCURRENCY: '5',
        HOLDLINE_VISIBILITY_TIMEOUT_SECONDS: '2',
      });
      try {
        await within(20_000, 'worker process leased 5', child.leasedCount(5));
      } finally {
        child.child.kill('SIGKILL');
      }
      expect(await child.exited).toBe('SIGKILL');
      expect(child.leased.sort()).toEqual(sent.map((m) => m.id).sort());
      for (const message of sent) {
        expect((await messageRow(t.db, message.id))?.lease_token).not.toBeNull();
      }

      // The reaper (every 100 ms here) requeues each message when its 2 s lease runs out.
      const redelivered = new Map<string, number>();
      const processed = countdown(5);
      const worker = client.consume(
        queue,
        (message) => void redelivered.set(message.id, message.attempts),
        { concurrency: 5 },
      );
      worker.on('processed', () => processed.tick());
      await within(10_000, 'redelivery', processed.done);
      await worker.stop();
      expect([...redelivered.keys()].sort()).toEqual(sent.map((m) => m.id).sort());
      expect([...redelivered.values()].every((attempts) => attempts === 2)).toBe(true);
    });
  });
}
