/**
 * The consumers of the drain workloads (W3 bench/drain.ts, W5 bench/depth.ts), with the
 * settings both use, so that a depth result compares with a drain result: receive loops
 * that lease a batch and ack it (raw SQL, the holdline engine, the HTTP client), and
 * holdline's in-process worker.
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import { createInProcessClient } from '../../src/index.ts';
import type { InProcessClient, MessageHandler, QueueWorker } from '../../src/index.ts';
import { RAW_ACK_BATCH, RAW_LEASE } from './peers.ts';

/**
 * Most messages per lease for the loops that call receive themselves (raw, the holdline
 * engine, the HTTP client): the contract's largest batch, so that each runs at its best.
 * Measured against 100 (2026-11-27, 50,000 messages, 4 loops): raw drained 1.33× faster
 * (level from 250 up), holdline over HTTP about 1.8× (a tenth of the requests, each no
 * dearer per message).
 */
export const LEASE_MAX = 1000;
/** Concurrent receive loops of raw and the holdline engine, each on its own connection. */
export const CONSUMER_LOOPS = 4;

/** What a bench sets on holdline's in-process worker and its client. */
export interface HoldlineWorkerSettings {
  concurrency: number;
  ackBatchSize: number;
  ackDelayMs: number;
  waitSeconds: number;
  poolMax: number;
  reaper: boolean;
}

/**
 * The holdline worker's options for throughput with short handlers (docs/client.md, "Worker"): the
 * largest concurrency and ack batch the contract allows, so one receive leases up to 1,000
 * and their acks go in one call. Against concurrency 200 with acks by 100 (2026-11-27,
 * 50,000 messages, 6 runs each, side by side): 1.45× the drain rate (per pair 1.17–1.56×).
 */
export const HOLDLINE_WORKER_SETTINGS = {
  concurrency: 1000,
  ackBatchSize: 1000,
  ackDelayMs: 5,
  waitSeconds: 1,
  poolMax: 10,
  reaper: false,
} as const satisfies HoldlineWorkerSettings;

/** The in-process client a worker with `settings` runs on (its pool size, no reaper). */
export function createWorkerClient(
  url: string,
  logger: Logger,
  settings: HoldlineWorkerSettings = HOLDLINE_WORKER_SETTINGS,
): Promise<InProcessClient> {
  return createInProcessClient({
    connectionString: url,
    poolMax: settings.poolMax,
    reaper: settings.reaper,
    logger,
  });
}

/** Starts `client.consume` on `queue` with the worker options of `settings`. */
export function startWorker<Payload>(
  client: InProcessClient,
  queue: string,
  handler: MessageHandler<Payload>,
  settings: HoldlineWorkerSettings = HOLDLINE_WORKER_SETTINGS,
): QueueWorker<Payload> {
  const { concurrency, ackBatchSize, ackDelayMs, waitSeconds } = settings;
  return client.consume(queue, handler, { concurrency, ackBatchSize, ackDelayMs, waitSeconds });
}

/** A running drain: resolves when its messages were consumed and acked. */
export interface Drain {
  /** Messages the handler (or loop) saw so far. */
  readonly handled: number;
  done: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Runs CONSUMER_LOOPS loops of `leaseAndAck(max)` (lease up to `max`, handle, ack; resolve
 * with how many) until `limit` messages were handled or a loop's lease comes back empty.
 * The loops never ask for more than `limit` in all, so a drain of part of a queue takes
 * exactly `limit` messages.
 */
export function receiveLoops(limit: number, leaseAndAck: (max: number) => Promise<number>): Drain {
  let handled = 0;
  /** Messages asked for by leases in flight, so the loops together stop at `limit`. */
  let asked = 0;
  const loop = async (): Promise<void> => {
    while (handled + asked < limit) {
      const max = Math.min(LEASE_MAX, limit - handled - asked);
      asked += max;
      let got: number;
      try {
        got = await leaseAndAck(max);
      } finally {
        asked -= max;
      }
      handled += got;
      if (got === 0) return;
    }
  };
  const done = Promise.all(Array.from({ length: CONSUMER_LOOPS }, loop)).then(() => undefined);
  done.catch(() => undefined);
  return {
    get handled() {
      return handled;
    },
    done,
    stop: () => done.catch(() => undefined),
  };
}

/** The raw-SQL consumer's step on `client`: a SKIP LOCKED lease of up to `max` rows, then one DELETE. */
export async function rawLeaseAndAck(client: pg.ClientBase, max: number): Promise<number> {
  const { rows } = await client.query<{ id: string }>(RAW_LEASE, [max]);
  if (rows.length > 0) await client.query(RAW_ACK_BATCH, [rows.map((r) => r.id)]);
  return rows.length;
}

/** Runs `work` on a connection of `pool`, released when it settles. */
export async function onPoolClient<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    return await work(client);
  } finally {
    client.release();
  }
}

/** A no-op handler that counts its calls. */
export function counter(): { readonly count: number; handle: (n?: number) => void } {
  let count = 0;
  return {
    get count() {
      return count;
    },
    handle: (n = 1) => {
      count += n;
    },
  };
}
