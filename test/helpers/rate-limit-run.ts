import { performance } from 'node:perf_hooks';
import type { Kysely } from 'kysely';
import pino from 'pino';
import type { Database } from '../../src/db/database.ts';
import { createDatabase, createPool } from '../../src/db/pool.ts';
import { QueueEngine } from '../../src/queue/operations.ts';
import type { TestDatabase } from './database.ts';
import { makeQueue, sendMessages } from './factories.ts';

/** What {@link runRateLimited} saw: each delivery's time, in ms from the start. */
export interface RateLimitedRun {
  deliveredAtMs: number[];
  /** Receive statements the consumers ran (wake-ups that found nothing included). */
  receives: number;
}

/**
 * Eager consumers (long polls of up to `max` each, acking at once) on two engines draining a
 * queue with rateLimit { count, perSeconds } for `seconds`, with far more messages waiting
 * than the limit lets through.
 */
export async function runRateLimited(
  t: TestDatabase,
  params: {
    queue: string;
    count: number;
    perSeconds: number;
    seconds: number;
    consumers: number;
    max: number;
  },
): Promise<RateLimitedRun> {
  const { queue, count, perSeconds, seconds, consumers, max } = params;
  await makeQueue(t.db, queue, { rateLimit: { count, perSeconds } });
  await sendMessages(t.db, queue, Math.ceil((count / perSeconds) * seconds * 1.5) + count);
  const logger = pino({ level: 'silent' });
  const pools: Kysely<Database>[] = [];
  const engines = Array.from({ length: 2 }, () => {
    const db = createDatabase(createPool({ connectionString: t.url, max: consumers }));
    pools.push(db);
    return new QueueEngine({ db, logger });
  });
  const deliveredAtMs: number[] = [];
  let receives = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  try {
    await Promise.all(
      Array.from({ length: consumers }, async (_, c) => {
        const engine = engines[c % engines.length]!;
        while (performance.now() < deadline) {
          const deliveries = await engine.receive({ queue, max, waitSeconds: 1 });
          receives += 1;
          const at = performance.now() - started;
          if (at > seconds * 1000) {
            // Past the window: hand them back uncounted.
            for (const d of deliveries) await engine.nack(d.receipt, { delaySeconds: 0 });
            continue;
          }
          for (const d of deliveries) {
            deliveredAtMs.push(at);
            await engine.ack(d.receipt);
          }
        }
      }),
    );
  } finally {
    for (const engine of engines) await engine.stop();
    for (const db of pools) await db.destroy();
  }
  return { deliveredAtMs: deliveredAtMs.sort((a, b) => a - b), receives };
}

/** The most deliveries in any window of `windowMs` (a sliding window over sorted times). */
export function busiestWindow(sortedAtMs: number[], windowMs: number): number {
  let most = 0;
  let start = 0;
  for (let end = 0; end < sortedAtMs.length; end++) {
    while (sortedAtMs[end]! - sortedAtMs[start]! >= windowMs) start++;
    most = Math.max(most, end - start + 1);
  }
  return most;
}
