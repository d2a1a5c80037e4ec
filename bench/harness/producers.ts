import { nowMs } from './clock.ts';
import { summariseLatencies } from './stats.ts';
import type { LatencySummary } from './stats.ts';

/** Sends message number `n` on the producer's own connection and resolves once committed. */
export type SendOne = (n: number) => Promise<void>;

/**
 * Runs one producer: holds a connection of its own for the whole run and calls `work` with
 * a SendOne bound to it, releasing the connection when `work` settles.
 */
export type Producer = (work: (send: SendOne) => Promise<void>) => Promise<void>;

/** Options of {@link runProducers}. */
export interface ProducerRunOptions {
  /** Concurrent producers, each on its own connection. */
  producers: number;
  /** Sends in the measured part, shared by all producers (each takes the next number). */
  total: number;
  /** Untimed sends per producer first: connections warm, plpgsql compiled, plans cached. */
  warmupPerProducer: number;
  /** Stops taking new sends once this much of the measured part has passed. */
  timeLimitMs: number;
  producer: Producer;
  /** Runs after every producer has warmed up and before the clock starts (reset tables). */
  beforeStart: () => Promise<void>;
  /** Stops taking new sends when aborted (the run then reports fewer sends). */
  signal: AbortSignal;
}

/** What one measured run did. */
export interface ProducerRunResult {
  /** Sends committed in the measured part (less than total when timedOut or aborted). */
  sends: number;
  elapsedMs: number;
  sendsPerSecond: number;
  /** Per send, from the call to its commit. */
  latencyMs: LatencySummary;
  timedOut: boolean;
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A rejection nobody awaits (every producer already failed) must not crash the process.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/**
 * Runs `producers` concurrent send loops. Each warms up, then all wait on one barrier so
 * the clock starts when every connection is ready; the clock stops when the last send
 * commits. Bounded by `total` sends, `timeLimitMs` and `signal`. The first failure stops
 * every loop and is rethrown.
 */
export async function runProducers(options: ProducerRunOptions): Promise<ProducerRunResult> {
  const latencies = new Float64Array(options.total);
  const ready = Array.from({ length: options.producers }, deferred);
  const start = deferred();
  let next = 0;
  let done = 0;
  let deadline = Number.POSITIVE_INFINITY;
  let failed = false;
  let timedOut = false;

  const loops = ready.map((readyOne) =>
    options
      .producer(async (send) => {
        for (let w = 0; w < options.warmupPerProducer; w++) await send(-1 - w);
        readyOne.resolve();
        await start.promise;
        while (!failed && !options.signal.aborted && next < options.total) {
          if (nowMs() >= deadline) {
            timedOut = true;
            return;
          }
          const n = next++;
          const sentAt = nowMs();
          await send(n);
          latencies[done++] = nowMs() - sentAt;
        }
      })
      .catch((error: unknown) => {
        failed = true;
        readyOne.reject(error);
        throw error;
      }),
  );

  try {
    await Promise.all(ready.map((r) => r.promise));
    await options.beforeStart();
  } catch (error) {
    failed = true;
    start.reject(error);
    await Promise.allSettled(loops);
    throw error;
  }
  const startedAt = nowMs();
  deadline = startedAt + options.timeLimitMs;
  start.resolve();
  const settled = await Promise.allSettled(loops);
  const elapsedMs = nowMs() - startedAt;
  const failure = settled.find((s) => s.status === 'rejected');
  if (failure !== undefined) throw failure.reason;

  return {
    sends: done,
    elapsedMs,
    sendsPerSecond: (done / elapsedMs) * 1000,
    latencyMs: summariseLatencies(latencies.subarray(0, done)),
    timedOut,
  };
}
