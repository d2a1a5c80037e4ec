import { performance } from 'node:perf_hooks';
import type { Kysely } from 'kysely';
import pino from 'pino';
import type { Database } from '../../src/db/database.ts';
import { createDatabase, createPool } from '../../src/db/pool.ts';
import { QueueEngine } from '../../src/queue/operations.ts';
import type { QueueConfig, SendInput } from '../../src/queue/operations.ts';
import type { TestDatabase } from './database.ts';
import { makeQueue, sendMessages } from './factories.ts';

/** What {@link runRateLimited} saw: each delivery's time, in ms from the start. */
export interface RateLimitedRun {
  deliveredAtMs: number[];
  /** The same, by the deliveries' group keys (ungrouped ones left out). */
  deliveredAtMsByGroup: Map<string, number[]>;
  /** When each delivery was leased by the database's clock (see leasedAtMsByGroup). */
  leasedAtMs: number[];
  /**
   * When each group's deliveries were leased by the database's clock (their lease's expiry,
   * less the same visibility timeout), in ms from an arbitrary origin: a receive's answer can
   * reach a loaded client late, and then bunches with the next one.
   */
  leasedAtMsByGroup: Map<string, number[]>;
  /** Receive statements the consumers ran (wake-ups that found nothing included). */
  receives: number;
}

/**
 * Eager consumers (long polls of up to `max` each, acking at once) on two engines draining a
 * queue made with `config` for `seconds`, with `messageCount` messages waiting (made by
 * `messages`), far more than the limit under test lets through.
 */
export async function runRateLimited(
  t: TestDatabase,
  params: {
    queue: string;
    config: Partial<QueueConfig>;
    messageCount: number;
    messages?: (i: number) => SendInput;
    seconds: number;
    consumers: number;
    max: number;
  },
): Promise<RateLimitedRun> {
  const { queue, seconds, consumers, max } = params;
  await makeQueue(t.db, queue, params.config);
  await sendMessages(t.db, queue, params.messageCount, params.messages);
  const logger = pino({ level: 'silent' });
  const pools: Kysely<Database>[] = [];
  const engines = Array.from({ length: 2 }, () => {
    const db = createDatabase(createPool({ connectionString: t.url, max: consumers }));
    pools.push(db);
    return new QueueEngine({ db, logger });
  });
  const deliveredAtMs: number[] = [];
  const deliveredAtMsByGroup = new Map<string, number[]>();
  const leasedAtMs: number[] = [];
  const leasedAtMsByGroup = new Map<string, number[]>();
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
            leasedAtMs.push(d.leaseExpiresAt.getTime());
            const group = d.message.groupKey;
            if (group !== null) {
              append(deliveredAtMsByGroup, group, at);
              append(leasedAtMsByGroup, group, d.leaseExpiresAt.getTime());
            }
            await engine.ack(d.receipt);
          }
        }
      }),
    );
  } finally {
    for (const engine of engines) await engine.stop();
    for (const db of pools) await db.destroy();
  }
  for (const byGroup of [deliveredAtMsByGroup, leasedAtMsByGroup]) {
    for (const times of byGroup.values()) times.sort((a, b) => a - b);
  }
  return {
    deliveredAtMs: deliveredAtMs.sort((a, b) => a - b),
    deliveredAtMsByGroup,
    leasedAtMs: leasedAtMs.sort((a, b) => a - b),
    leasedAtMsByGroup,
    receives,
  };
}

function append(times: Map<string, number[]>, key: string, at: number): void {
  const list = times.get(key);
  if (list === undefined) times.set(key, [at]);
  else list.push(at);
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
