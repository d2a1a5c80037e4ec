import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Listener } from '../../src/db/listener.ts';
import { createDatabase, createPool } from '../../src/db/pool.ts';
import { QueueEngine, WAKEUP_CHANNEL, Wakeups, createQueue } from '../../src/queue/operations.ts';
import type { Delivery } from '../../src/queue/operations.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { NotificationCollector, pollUntil } from '../helpers/notifications.ts';

const logger = pino({ level: 'silent' });
/** Far longer than any wake-up budget here, so polling can never explain a fast wake. */
const POLL_INTERVAL_MS = 10_000;
/** A commit must wake a waiting long poll within this long. */
const WAKE_BUDGET_MS = 100;
/** A terminated listener must be back within this long. */
const RECONNECT_TIMEOUT_MS = 5_000;

let t: TestDatabase;
let listener: Listener;
let engine: QueueEngine;
let notifications: NotificationCollector;

beforeAll(async () => {
  t = await createTestDatabase();
  listener = new Listener({
    connectionString: t.url,
    channel: WAKEUP_CHANNEL,
    logger,
    reconnectInitialDelayMs: 20,
  });
  await listener.start();
  engine = new QueueEngine({ db: t.db, listener, logger, pollIntervalMs: POLL_INTERVAL_MS });
  engine.start();
  notifications = await NotificationCollector.listen(t.url, [WAKEUP_CHANNEL]);
});

afterAll(async () => {
  await engine?.stop();
  await listener?.stop();
  await notifications?.close();
  await t?.drop();
});

/** Listener pids registered in holdline.waiting_consumers for a queue. */
async function waitingPids(queue: string): Promise<number[]> {
  const rows = await t.db
    .selectFrom('holdline.waiting_consumers')
    .select('listener_pid')
    .where('queue', '=', queue)
    .orderBy('listener_pid')
    .execute();
  return rows.map((r) => r.listener_pid);
}

async function untilWaiting(queue: string, pid: number): Promise<void> {
  await pollUntil(`a waiting consumer of ${queue} on pid ${pid}`, async () =>
    (await waitingPids(queue)).includes(pid),
  );
}

async function countMessages(queue: string): Promise<number> {
  const { rows } = await sql<{
    n: number;
  }>`SELECT count(*)::int AS n FROM holdline.messages WHERE queue = ${queue}`.execute(t.db);
  return rows[0]!.n;
}

/**
 * Sends with plain SQL in a transaction of a separate connection and ends it with `end`.
 * Returns the message id and the moment just before COMMIT / ROLLBACK was sent.
 */
async function sendWithSql(
  queue: string,
  payload: unknown,
  end: 'COMMIT' | 'ROLLBACK',
): Promise<{ id: string; endAt: number }> {
  const client = await t.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<{ id: string }>(
      'SELECT holdline.send($1, $2::jsonb) AS id',
      [queue, JSON.stringify(payload)],
    );
    const endAt = performance.now();
    await client.query(end);
    return { id: rows[0]!.id, endAt };
  } finally {
    await client.end();
  }
}

/** The receive's result and the moment it resolved. */
function timed(receiving: Promise<Delivery[]>): Promise<{ deliveries: Delivery[]; at: number }> {
  return receiving.then((deliveries) => ({ deliveries, at: performance.now() }));
}

describe('wake-ups of long-poll receive', () => {
  it('neither delivers nor wakes a waiter when the sending transaction rolls back', async () => {
    const queue = 'wake-rollback';
    await createQueue(t.db, { name: queue });
    const startedAt = performance.now();
    const receiving = timed(engine.receive({ queue, waitSeconds: 2 }));
    await untilWaiting(queue, listener.pid!);

    await sendWithSql(queue, { n: 1 }, 'ROLLBACK');

    const { deliveries, at } = await receiving;
    expect(deliveries).toEqual([]);
    // The full wait ran out: nothing woke the waiter early (timers may fire a few ms early).
    expect(at - startedAt).toBeGreaterThanOrEqual(1_950);
    await notifications.sync();
    expect(notifications.payloads(WAKEUP_CHANNEL)).not.toContain(queue);
    expect(await countMessages(queue)).toBe(0);
  });

  it('wakes a waiting long poll within 100 ms of the commit of a plain SQL send', async () => {
    const queue = 'wake-commit';
    await createQueue(t.db, { name: queue });
    const receiving = timed(engine.receive({ queue, waitSeconds: 10 }));
    await untilWaiting(queue, listener.pid!);

    const { id, endAt } = await sendWithSql(queue, { n: 1 }, 'COMMIT');

    const { deliveries, at } = await receiving;
    expect(deliveries.map((d) => d.message.id)).toEqual([id]);
    expect(at - endAt).toBeLessThan(WAKE_BUDGET_MS);
    await expect(notifications.next((n) => n.payload === queue)).resolves.toEqual({
      channel: WAKEUP_CHANNEL,
      payload: queue,
    });
  });

  it('wakes a consumer that starts waiting between a send and its commit', async () => {
    // The send checks for waiting consumers before any exists, so it will not NOTIFY; the
    // consumer registers while that transaction is still open. It must still get the
    // message within the budget of the commit, not at its next poll.
    const queue = 'wake-race';
    await createQueue(t.db, { name: queue });
    const producer = await t.connect();
    try {
      await producer.query('BEGIN');
      const { rows } = await producer.query<{ id: string }>('SELECT holdline.send($1, $2) AS id', [
        queue,
        { n: 1 },
      ]);
      const receiving = timed(engine.receive({ queue, waitSeconds: 10 }));
      await untilWaiting(queue, listener.pid!);
      const endAt = performance.now();
      await producer.query('COMMIT');
      const { deliveries, at } = await receiving;
      expect(deliveries.map((d) => d.message.id)).toEqual([rows[0]!.id]);
      expect(at - endAt).toBeLessThan(WAKE_BUDGET_MS);
    } finally {
      await producer.end();
    }
  });

  it('sends no NOTIFY for a commit while no consumer of the queue is waiting', async () => {
    const queue = 'wake-nobody-waits';
    await createQueue(t.db, { name: queue });
    expect(await waitingPids(queue)).toEqual([]);

    await sendWithSql(queue, { n: 1 }, 'COMMIT');
    await engine.send(queue, { payload: { n: 2 } });
    await notifications.sync();
    expect(notifications.payloads(WAKEUP_CHANNEL)).not.toContain(queue);
    expect(await countMessages(queue)).toBe(2);

    // Control: the same send notifies as soon as a waiting consumer is registered.
    await t.db
      .insertInto('holdline.waiting_consumers')
      .values({ queue, listener_pid: 2_147_483_000 })
      .execute();
    try {
      await sendWithSql(queue, { n: 3 }, 'COMMIT');
      await notifications.next((n) => n.payload === queue);
    } finally {
      await t.db.deleteFrom('holdline.waiting_consumers').where('queue', '=', queue).execute();
    }
  });

  it('keeps a waiting_consumers row while a receive waits and removes it when the receive ends', async () => {
    const queue = 'wake-registration';
    await createQueue(t.db, { name: queue });
    expect(await waitingPids(queue)).toEqual([]);

    const woken = engine.receive({ queue, waitSeconds: 10 });
    await untilWaiting(queue, listener.pid!);
    expect(await waitingPids(queue)).toEqual([listener.pid]);
    const sent = await engine.send(queue, { payload: 'x' });
    expect((await woken).map((d) => d.message.id)).toEqual([sent.id]);
    await pollUntil(
      'the row to go after a delivery',
      async () => (await waitingPids(queue)).length === 0,
    );

    const abort = new AbortController();
    const aborted = engine.receive({ queue, waitSeconds: 10, signal: abort.signal });
    await untilWaiting(queue, listener.pid!);
    abort.abort();
    expect(await aborted).toEqual([]);
    await pollUntil(
      'the row to go after an abort',
      async () => (await waitingPids(queue)).length === 0,
    );
  });

  it('keeps one row for two waiters of a queue until the last of them stops waiting', async () => {
    const queue = 'wake-two-waiters';
    await createQueue(t.db, { name: queue });
    const waiters = [0, 1].map((i) =>
      engine.receive({ queue, waitSeconds: 10 }).then((deliveries) => ({ i, deliveries })),
    );
    // Both start together; by the time the row is seen, both have passed their first look.
    await untilWaiting(queue, listener.pid!);

    await engine.send(queue, { payload: 'first' });
    const first = await Promise.race(waiters);
    expect(first.deliveries.map((d) => d.message.payload)).toEqual(['first']);
    // The other consumer still waits, so senders must still be asked to notify.
    expect(await waitingPids(queue)).toEqual([listener.pid]);

    const secondSent = await sendWithSql(queue, 'second', 'COMMIT');
    const second = await waiters[1 - first.i]!;
    expect(second.deliveries.map((d) => d.message.id)).toEqual([secondSent.id]);
    await pollUntil('the row to go', async () => (await waitingPids(queue)).length === 0);
  });

  it('wakes a local waiter of an engine without a listener right after the engine’s own send', async () => {
    const queue = 'wake-local';
    await createQueue(t.db, { name: queue });
    const local = new QueueEngine({ db: t.db, logger, pollIntervalMs: POLL_INTERVAL_MS });
    const handle = await local.startWaiting(queue);
    try {
      const next = handle
        .next(POLL_INTERVAL_MS)
        .then((woken) => ({ woken, at: performance.now() }));
      const before = performance.now();
      await local.send(queue, { payload: 'local' });
      const { woken, at } = await next;
      expect(woken).toBe(true);
      expect(at - before).toBeLessThan(WAKE_BUDGET_MS);
      // Without a listener nothing is registered: only this process's own sends wake it.
      expect(await waitingPids(queue)).toEqual([]);

      // A wake-up that arrives while the consumer is busy is kept for its next wait.
      await local.send(queue, { payload: 'while busy' });
      await expect(handle.next(POLL_INTERVAL_MS)).resolves.toBe(true);
    } finally {
      handle.release();
      await local.stop();
    }
  });
});

describe('listener reconnect', () => {
  /** Terminates the listener's backend, found by application_name, and awaits the reconnect. */
  async function terminateListener(): Promise<{ oldPid: number; newPid: number }> {
    const oldPid = listener.pid!;
    const { rows } = await sql<{ pid: number }>`
      SELECT pid FROM pg_stat_activity
      WHERE application_name = 'holdline-listener' AND datname = current_database()`.execute(t.db);
    expect(rows.map((r) => r.pid)).toContain(oldPid);
    const reconnected = once(listener, 'connected', {
      signal: AbortSignal.timeout(RECONNECT_TIMEOUT_MS),
    }) as Promise<[number]>;
    const { rows: terminated } = await sql<{
      ok: boolean;
    }>`SELECT pg_terminate_backend(${oldPid}::int) AS ok`.execute(t.db);
    expect(terminated[0]!.ok).toBe(true);
    const [newPid] = await reconnected;
    return { oldPid, newPid };
  }

  it('wakes a new waiter within 100 ms of a commit after the listener connection was terminated', async () => {
    const queue = 'wake-after-reconnect';
    await createQueue(t.db, { name: queue });
    const { oldPid, newPid } = await terminateListener();
    expect(newPid).not.toBe(oldPid);
    expect(listener.pid).toBe(newPid);

    const receiving = timed(engine.receive({ queue, waitSeconds: 10 }));
    await untilWaiting(queue, newPid);
    const { id, endAt } = await sendWithSql(queue, 'after reconnect', 'COMMIT');
    const { deliveries, at } = await receiving;
    expect(deliveries.map((d) => d.message.id)).toEqual([id]);
    expect(at - endAt).toBeLessThan(WAKE_BUDGET_MS);
  });

  it('re-registers a waiter that spans the reconnect under the new pid and still wakes it', async () => {
    const queue = 'wake-across-reconnect';
    await createQueue(t.db, { name: queue });
    const receiving = timed(engine.receive({ queue, waitSeconds: 20 }));
    await untilWaiting(queue, listener.pid!);

    const { newPid } = await terminateListener();
    // The old backend's row is stale (nobody hears its NOTIFYs): it is replaced, not kept.
    await pollUntil('the registration to move to the new pid', async () => {
      const pids = await waitingPids(queue);
      return pids.length === 1 && pids[0] === newPid;
    });

    const { id, endAt } = await sendWithSql(queue, 'across reconnect', 'COMMIT');
    const { deliveries, at } = await receiving;
    expect(deliveries.map((d) => d.message.id)).toEqual([id]);
    expect(at - endAt).toBeLessThan(WAKE_BUDGET_MS);
  });
});

describe('wake-ups across processes', () => {
  it('wakes a waiter of one engine within 100 ms of another engine’s send on the same database', async () => {
    const queue = 'wake-cross-process';
    await createQueue(t.db, { name: queue });
    const otherDb = createDatabase(createPool({ connectionString: t.url, max: 2 }));
    const otherListener = new Listener({
      connectionString: t.url,
      channel: WAKEUP_CHANNEL,
      logger,
    });
    await otherListener.start();
    const other = new QueueEngine({
      db: otherDb,
      listener: otherListener,
      logger,
      pollIntervalMs: POLL_INTERVAL_MS,
    });
    try {
      const receiving = timed(engine.receive({ queue, waitSeconds: 10 }));
      await untilWaiting(queue, listener.pid!);
      // Registered on the waiting process's own LISTEN session, not through the query pool
      // (which may be a transaction-mode pooler where session state does not stick).
      const { rows } = await sql<{ application_name: string }>`
        SELECT a.application_name FROM holdline.waiting_consumers w
        JOIN pg_stat_activity a ON a.pid = w.listener_pid
        WHERE w.queue = ${queue}`.execute(t.db);
      expect(rows).toEqual([{ application_name: 'holdline-listener' }]);

      const before = performance.now();
      const sent = await other.send(queue, { payload: 'from the other process' });
      const { deliveries, at } = await receiving;
      expect(deliveries.map((d) => d.message.id)).toEqual([sent.id]);
      expect(at - before).toBeLessThan(WAKE_BUDGET_MS);
    } finally {
      await other.stop();
      await otherListener.stop();
      await otherDb.destroy();
    }
  });
});

describe('registration grace and hot-queue linger', () => {
  /** Long enough that a loaded machine cannot outrun it between two steps of a test. */
  const GRACE_MS = 2_000;
  const LINGER_MS = 300;

  /** The xmin of the queue's registration row: a new row (deleted and inserted) has a new one. */
  async function registrationXmin(queue: string): Promise<string | undefined> {
    const { rows } = await sql<{ xmin: string }>`
      SELECT xmin::text AS xmin FROM holdline.waiting_consumers
      WHERE queue = ${queue} AND listener_pid = ${listener.pid!}`.execute(t.db);
    return rows[0]?.xmin;
  }

  it('keeps the row through a pause between waits and removes it once the grace has passed', async () => {
    const queue = 'wake-grace';
    await createQueue(t.db, { name: queue });
    const wakeups = new Wakeups(listener, logger, { registrationGraceMs: GRACE_MS });
    try {
      const first = await wakeups.startWaiting(queue);
      const registered = await registrationXmin(queue);
      expect(registered).toBeDefined();
      first.release();
      // The pause between one long poll and the next: the row stays, untouched.
      const second = await wakeups.startWaiting(queue);
      expect(await registrationXmin(queue)).toBe(registered);
      second.release();
      const releasedAt = performance.now();
      await pollUntil('the row to go', async () => (await registrationXmin(queue)) === undefined);
      expect(performance.now() - releasedAt).toBeGreaterThanOrEqual(GRACE_MS - 50);
    } finally {
      await wakeups.stop();
    }
  });

  it('lets a wake-up of a hot queue linger, and never one after a quiet spell', async () => {
    const queue = 'wake-linger';
    // A gap of a minute: every wake-up after the first is "hot" here.
    const wakeups = new Wakeups(undefined, logger, {
      hotWakeGapMs: 60_000,
      hotWakeLingerMs: LINGER_MS,
    });
    try {
      const handle = await wakeups.startWaiting(queue);
      // The first wake-up of the queue returns at once.
      const quiet = handle.next(10_000);
      const quietAt = performance.now();
      wakeups.wake(queue);
      expect(await quiet).toBe(true);
      expect(performance.now() - quietAt).toBeLessThan(LINGER_MS);

      // A hot one lingers, and wake-ups meanwhile do not start the linger again.
      const hot = handle.next(10_000);
      const hotAt = performance.now();
      wakeups.wake(queue);
      await new Promise((resolve) => setTimeout(resolve, LINGER_MS / 2));
      wakeups.wake(queue);
      expect(await hot).toBe(true);
      const waited = performance.now() - hotAt;
      expect(waited).toBeGreaterThanOrEqual(LINGER_MS - 20);
      expect(waited).toBeLessThan(LINGER_MS * 1.5 + 200);

      // Remembered while busy, a hot wake-up lingers at the next wait too.
      wakeups.wake(queue);
      const rememberedAt = performance.now();
      expect(await handle.next(10_000)).toBe(true);
      expect(performance.now() - rememberedAt).toBeGreaterThanOrEqual(LINGER_MS - 20);
      handle.release();
    } finally {
      await wakeups.stop();
    }
  });
});
