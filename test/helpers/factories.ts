import { sql } from 'kysely';
import pino from 'pino';
import type { Logger } from 'pino';
import type { QueueHistoryPoint } from '../../src/contract.ts';
import { LATENCY_BUCKETS, latencyBucket } from '../../src/queue/latency-histogram.ts';
import type { MessageRow } from '../../src/queue/sql/tables.ts';
import { createQueue, sendBatch } from '../../src/queue/operations.ts';
import type {
  Executor,
  Message,
  Queue,
  QueueConfig,
  SendInput,
} from '../../src/queue/operations.ts';
import { Reaper } from '../../src/reaper/reaper.ts';
import type { TestDatabase } from './database.ts';

/** Most messages one sendBatch accepts. */
const SEND_CHUNK = 1000;

/** A logger that writes nothing, for components under test. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * The database clock, rounded up to the next millisecond: PostgreSQL keeps microseconds and
 * a JS Date only milliseconds, so a plain now() cut down to a Date could lie before the
 * run_at of a message sent a moment earlier. Tests base their `now` on it.
 */
export async function databaseNow(db: Executor): Promise<Date> {
  const { rows } = await sql<{ ms: string }>`
    SELECT ceil(extract(epoch FROM now()) * 1000)::bigint AS ms
  `.execute(db);
  return new Date(Number(rows[0]!.ms));
}

/** `date` moved by `seconds` (negative: earlier). */
export function secondsAfter(date: Date, seconds: number): Date {
  return new Date(date.getTime() + seconds * 1000);
}

/** Creates a queue (with `<name>.dlq` as its dead-letter queue unless config says otherwise). */
export function makeQueue(
  db: Executor,
  name: string,
  config?: Partial<QueueConfig>,
): Promise<Queue> {
  return createQueue(db, { name, config });
}

/**
 * Sends `count` committed messages to `queue`, in batches, payload `{ i }` unless `message`
 * says otherwise. Returns them in send order.
 */
export async function sendMessages(
  db: Executor,
  queue: string,
  count: number,
  message: (i: number) => SendInput = (i) => ({ payload: { i } }),
): Promise<Message[]> {
  const sent: Message[] = [];
  for (let start = 0; start < count; start += SEND_CHUNK) {
    const inputs = Array.from({ length: Math.min(SEND_CHUNK, count - start) }, (_, k) =>
      message(start + k),
    );
    sent.push(...(await sendBatch(db, { queue, messages: inputs })));
  }
  return sent;
}

/** A queue with `count` ready messages. */
export async function makeQueueWithMessages(
  db: Executor,
  name: string,
  count: number,
  config?: Partial<QueueConfig>,
): Promise<{ queue: Queue; messages: Message[] }> {
  const queue = await makeQueue(db, name, config);
  const messages = await sendMessages(db, name, count);
  return { queue, messages };
}

/** The raw row of a message, or undefined when it is gone. */
export async function messageRow(db: Executor, id: string): Promise<MessageRow | undefined> {
  const { rows } = await sql<MessageRow>`
    SELECT * FROM holdline.messages WHERE id = ${id}::bigint
  `.execute(db);
  return rows[0];
}

/**
 * Puts a message in a state the API only reaches by waiting: leased by a consumer whose
 * lease ended `expiredSecondsAgo` seconds ago (default 10 minutes), after `attempts`
 * deliveries (default: one more than it had).
 */
export async function markLeasedAndExpired(
  db: Executor,
  id: string,
  options: { expiredSecondsAgo?: number; attempts?: number } = {},
): Promise<void> {
  const ago = options.expiredSecondsAgo ?? 600;
  const result = await sql`
    UPDATE holdline.messages
    SET lease_token = gen_random_uuid(),
        lease_expires_at = now() - make_interval(secs => ${ago}::double precision),
        attempts = coalesce(${options.attempts ?? null}::integer, attempts + 1)
    WHERE id = ${id}::bigint
  `.execute(db);
  if (result.numAffectedRows !== 1n) throw new Error(`message ${id} not found`);
}

/** A reaper over the test database that is never started: tests call its passes directly. */
export function idleReaper(t: TestDatabase): Reaper {
  return new Reaper({ db: t.db, connectionString: t.url, logger: silentLogger() });
}

/**
 * One minute of a queue's stats history, as {@link insertHistoryMinutes} writes it: the
 * counts and samples of a history point, and the delivery latencies its percentiles come from.
 */
export type HistoryMinute = Omit<
  QueueHistoryPoint,
  'at' | 'deliveryLatencyP50Seconds' | 'deliveryLatencyP95Seconds' | 'deliveryLatencyP99Seconds'
> & {
  /** The minute's start (whole minutes, UTC). */
  minute: Date;
  /** Delivery latencies of the minute, in seconds, counted into the history's histogram. */
  deliveryLatenciesSeconds: readonly number[];
};

/**
 * Writes minutes of a queue's stats history directly, as the service's meters and the
 * leader's samples would have over that time: an hour of history without running an hour.
 */
export async function insertHistoryMinutes(
  db: Executor,
  queue: string,
  minutes: readonly HistoryMinute[],
): Promise<void> {
  for (const m of minutes) {
    const buckets = new Array<number>(LATENCY_BUCKETS).fill(0);
    for (const seconds of m.deliveryLatenciesSeconds) buckets[latencyBucket(seconds)]! += 1;
    await sql`
      INSERT INTO holdline.queue_history
        (queue, minute, sent, delivered, acked, nacked, dead_lettered, lease_expired,
         delivery_latency_buckets, depth, oldest_ready_age, sampled_at)
      VALUES (${queue}, ${m.minute}, ${m.sent}, ${m.delivered}, ${m.acked}, ${m.nacked},
              ${m.deadLettered}, ${m.leaseExpired},
              ${m.deliveryLatenciesSeconds.length === 0 ? null : buckets}::bigint[],
              ${m.depth}, ${m.oldestReadyAgeSeconds},
              ${m.depth === null ? null : new Date(m.minute.getTime() + 30_000)})
    `.execute(db);
  }
}
