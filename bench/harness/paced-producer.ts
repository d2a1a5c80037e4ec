/**
 * A producer that sends at a fixed rate, one message per transaction, for the latency
 * workloads (bench/latency.ts, bench/soak.ts). Open loop: message i is due at
 * start + i / rate whether or not earlier sends have returned, so a slow consumer or a
 * slow commit does not slow the offered load (and hide its own latency).
 */
import type { Kysely } from 'kysely';
import { createClient } from '../../src/client/index.ts';
import type { Database } from '../../src/db/database.ts';
import { createDatabase, createPool } from '../../src/db/pool.ts';
import { send } from '../../src/queue/operations.ts';
import { nowMs, sleep } from './clock.ts';

const PAD = 'x'.repeat(100);

/** What a timed message carries: its number, when it was sent (nowMs), 100 characters. */
export interface TimedPayload {
  n: number;
  sentAtMs: number;
  pad: string;
}

/** Sends one message in a transaction of its own; resolves once it has committed. */
export type SendTimed = (payload: TimedPayload) => Promise<void>;

/** A system's producer for one run, and what it must close afterwards. */
export interface TimedProducer {
  send: SendTimed;
  close(): Promise<void>;
}

/** Options of {@link runPacedProducer}. */
export interface PacedRunOptions {
  /** Number of the first message: the run sends first … first + count − 1. */
  first: number;
  count: number;
  ratePerSecond: number;
  send: SendTimed;
  /** Called when message `n` has committed, with the time (nowMs) its send returned. */
  onCommitted: (n: number, atMs: number) => void;
  /**
   * Most sends in flight at once (the producer's connections): when reached, the next
   * send waits and starts late, which maxLagMs reports.
   */
  maxInFlight: number;
  /** Stops sending when aborted (the run then reports fewer sends). */
  signal: AbortSignal;
}

/** What one paced run did. */
export interface PacedRunResult {
  /** Messages committed (fewer than count when aborted). */
  sent: number;
  /** From the start of the schedule to the last commit. */
  elapsedMs: number;
  sentPerSecond: number;
  /**
   * Most any send started after its scheduled time. A few ms is timer resolution; more
   * means the producer could not hold the rate, so the offered load was lower than asked.
   */
  maxLagMs: number;
}

/**
 * Sends `count` messages at `ratePerSecond`, each with its number and send time in the
 * payload. The first failed send stops the schedule and is rethrown once the sends in
 * flight have settled.
 */
export async function runPacedProducer(options: PacedRunOptions): Promise<PacedRunResult> {
  const intervalMs = 1000 / options.ratePerSecond;
  const inFlight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  let sent = 0;
  let maxLagMs = 0;
  const startedAt = nowMs();
  for (let i = 0; i < options.count && failure === undefined && !options.signal.aborted; i++) {
    const due = startedAt + i * intervalMs;
    const wait = due - nowMs();
    if (wait > 0) await sleep(wait);
    while (inFlight.size >= options.maxInFlight) await Promise.race(inFlight);
    if (failure !== undefined) break;
    const n = options.first + i;
    const sentAtMs = nowMs();
    maxLagMs = Math.max(maxLagMs, sentAtMs - due);
    const sending: Promise<void> = options
      .send({ n, sentAtMs, pad: PAD })
      .then(
        () => {
          sent++;
          options.onCommitted(n, nowMs());
        },
        (error: unknown) => {
          failure ??= { error };
        },
      )
      .finally(() => inFlight.delete(sending));
    inFlight.add(sending);
  }
  await Promise.all(inFlight);
  if (failure !== undefined) throw failure.error;
  const elapsedMs = nowMs() - startedAt;
  return { sent, elapsedMs, sentPerSecond: (sent / elapsedMs) * 1000, maxLagMs };
}

/**
 * holdline's producer as a separate producer service runs it: the plain `send` of src/queue
 * (not QueueEngine.send, which also wakes consumers in its own process), autocommit, on a
 * pool of `connections`; consumers learn of a message only through its NOTIFY (or a poll).
 */
export function holdlineProducer(url: string, queue: string, connections: number): TimedProducer {
  const db: Kysely<Database> = createDatabase(
    createPool({
      connectionString: url,
      max: connections,
      applicationName: 'holdline-bench-producer',
    }),
  );
  return {
    send: async (payload) => {
      await send(db, { queue, message: { payload } });
    },
    close: () => db.destroy(),
  };
}

/**
 * A producer that sends through the service, as an application without a database
 * connection of its own does: the TypeScript client's `send` (one GraphQL mutation over
 * HTTP per message, keep-alive connections) with `token`.
 */
export function serviceProducer(serviceUrl: string, token: string, queue: string): TimedProducer {
  const client = createClient({ url: serviceUrl, token });
  return {
    send: async (payload) => {
      await client.send(queue, { payload });
    },
    close: () => client.close(),
  };
}
