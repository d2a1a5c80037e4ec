import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from '../../src/db/database.ts';
import { Listener } from '../../src/db/listener.ts';
import { createDatabase, createPool } from '../../src/db/pool.ts';
import { QueueEngine, WAKEUP_CHANNEL } from '../../src/queue/operations.ts';
import type { Delivery } from '../../src/queue/operations.ts';
import { waitUntil } from './clock.ts';

/** Options of {@link startConsumer}. */
export interface ConsumerOptions {
  /** Connection string of the bench database. */
  url: string;
  queue: string;
  logger: Logger;
  /** Messages per receive. */
  max: number;
  /** Long-poll wait of each receive, in seconds (0 to 20). */
  waitSeconds: number;
  /** Bound on the receive loop, whatever happens: at most this many receives. */
  maxReceives: number;
  /** True once the consumer is in place (e.g. registered as idle-waiting). */
  inPlace: () => Promise<boolean>;
  /** How long to wait for inPlace. */
  inPlaceTimeoutMs: number;
  /** Called with each batch as it arrives, before it is acked: the consumer's handler. */
  onDeliveries?: (deliveries: readonly Delivery[]) => void;
}

/** A running consumer: a QueueEngine with its own pool and its own LISTEN connection. */
export interface Consumer {
  /** Notifications its listener received so far. */
  readonly notifications: number;
  /** Ends the receive loop and closes everything; rethrows a failure of the loop. */
  stop(): Promise<void>;
}

/**
 * Starts a consumer the way a service runs one: engine.receive with waitSeconds in a loop
 * (long poll woken by NOTIFY), acking each batch with ackBatch. Resolves once `inPlace`
 * holds, so a measurement starts with the consumer already waiting.
 */
export async function startConsumer(options: ConsumerOptions): Promise<Consumer> {
  const db = createDatabase(
    createPool({
      connectionString: options.url,
      max: 2,
      applicationName: 'holdline-bench-consumer',
    }),
  );
  const listener = new Listener({
    connectionString: options.url,
    channel: WAKEUP_CHANNEL,
    logger: options.logger.child({ component: 'listener' }),
  });
  let notifications = 0;
  listener.on('notification', () => notifications++);
  const engine = new QueueEngine({ db, listener, logger: options.logger });
  const stopping = new AbortController();
  let failure: Error | undefined;
  let loop: Promise<void> = Promise.resolve();

  const close = async (): Promise<void> => {
    stopping.abort();
    await loop;
    await engine.stop();
    await listener.stop();
    await db.destroy();
  };

  const receiveLoop = async (): Promise<void> => {
    for (let i = 0; i < options.maxReceives && !stopping.signal.aborted; i++) {
      const deliveries = await engine.receive({
        queue: options.queue,
        max: options.max,
        waitSeconds: options.waitSeconds,
        signal: stopping.signal,
      });
      if (deliveries.length === 0) continue;
      options.onDeliveries?.(deliveries);
      await engine.ackBatch(deliveries.map((d) => d.receipt));
    }
  };
  try {
    await listener.start();
    engine.start();
    loop = receiveLoop().catch((error: unknown) => {
      failure = error instanceof Error ? error : new Error(String(error));
    });
    await waitUntil(
      `a consumer in place on ${options.queue}`,
      options.inPlace,
      options.inPlaceTimeoutMs,
    );
  } catch (error) {
    await close();
    throw error;
  }

  return {
    get notifications() {
      return notifications;
    },
    async stop() {
      await close();
      if (failure !== undefined) throw failure;
    },
  };
}

/** A bare LISTEN connection on the wake-up channel that only counts notifications. */
export async function startNotificationProbe(
  url: string,
  logger: Logger,
): Promise<{ readonly notifications: number; stop(): Promise<void> }> {
  const listener = new Listener({ connectionString: url, channel: WAKEUP_CHANNEL, logger });
  let notifications = 0;
  listener.on('notification', () => notifications++);
  await listener.start();
  return {
    get notifications() {
      return notifications;
    },
    stop: () => listener.stop(),
  };
}

/**
 * LISTEN connections registered in holdline.waiting_consumers as idle-waiting on `queue`:
 * while there is one, sends to the queue NOTIFY.
 */
export async function waitingConsumerCount(db: Kysely<Database>, queue: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    SELECT count(*)::integer AS n FROM holdline.waiting_consumers WHERE queue = ${queue}
  `.execute(db);
  return rows[0]!.n;
}
