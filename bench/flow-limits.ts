/**
 * W3 with flow limits that do not bind: the engine loop of bench/drain.ts (CONSUMER_LOOPS
 * loops, receive max LEASE_MAX + ackBatch) draining a prefilled queue three ways, interleaved
 * per repetition: no limits; maxInFlight equal to the drain's own concurrency (loops × max);
 * a rate limit far above the drain rate (1,000,000 per second); and, with every message in a
 * group of its own (the most groups a receive can meet), no limits against a per-group rate
 * limit far above it (groupRateLimit 1,000,000 per second). Target (issue 18): each limited
 * run ≥ 0.9× the same messages without limits, since limits must cost nearly nothing when
 * they do not bind.
 *
 *   npx tsx bench/flow-limits.ts [--smoke] [--repetitions N]
 *
 * `--repetitions` (default 3) runs more interleaved rounds, for a median that holds still on
 * a shared machine.
 *
 * Prints one JSON line per measurement and a summary line per variant, then a table.
 */
import { sql } from 'kysely';
import pino from 'pino';
import { createDatabase, createPool } from '../src/db/pool.ts';
import { QueueEngine, configureQueue, createQueue, sendBatch } from '../src/queue/operations.ts';
import type { QueueConfig } from '../src/queue/operations.ts';
import { parseBenchArgs } from './harness/args.ts';
import { nowMs } from './harness/clock.ts';
import { checkpoint, withBenchDatabase } from './harness/database.ts';
import { CONSUMER_LOOPS, LEASE_MAX, receiveLoops } from './harness/drain-consumers.ts';
import { formatCount, formatFixed, markdownTable, printJsonLine } from './harness/report.ts';

const BENCH = 'flow-limits';
const args = parseBenchArgs(process.argv.slice(2), ['repetitions']);
const MESSAGES = args.smoke ? 1_000 : 50_000;
const REPETITIONS = args.smoke ? 1 : Math.round(args.numbers.repetitions ?? 3);
const PREFILL_BATCH_SIZE = 500;
const QUEUE = 'bench-flow';

interface Variant {
  key: string;
  label: string;
  /** The queue's flow settings for this variant (null: none). */
  limits: Pick<QueueConfig, 'maxInFlight' | 'rateLimit' | 'groupRateLimit'>;
  /** Each message in a group of its own (groupKey), else none has a group. */
  grouped: boolean;
  /** The variant this one is compared with: the same messages without limits. */
  baseline: string;
}

const NO_LIMITS = { maxInFlight: null, rateLimit: null, groupRateLimit: null };

const VARIANTS: readonly Variant[] = [
  { key: 'none', label: 'no limits', limits: NO_LIMITS, grouped: false, baseline: 'none' },
  {
    key: 'cap',
    label: `maxInFlight ${CONSUMER_LOOPS * LEASE_MAX} (the drain's own concurrency)`,
    limits: { ...NO_LIMITS, maxInFlight: CONSUMER_LOOPS * LEASE_MAX },
    grouped: false,
    baseline: 'none',
  },
  {
    key: 'rate',
    label: 'rateLimit 1,000,000 per second',
    limits: { ...NO_LIMITS, rateLimit: { count: 1_000_000, perSeconds: 1 } },
    grouped: false,
    baseline: 'none',
  },
  {
    key: 'groups',
    label: 'a group per message, no limits',
    limits: NO_LIMITS,
    grouped: true,
    baseline: 'groups',
  },
  {
    key: 'group-rate',
    label: 'a group per message, groupRateLimit 1,000,000 per second',
    limits: { ...NO_LIMITS, groupRateLimit: { count: 1_000_000, perSeconds: 1 } },
    grouped: true,
    baseline: 'groups',
  },
];

await withBenchDatabase(async (bench) => {
  const logger = pino({ level: 'silent' });
  await createQueue(bench.admin, { name: QUEUE, config: { deadLetterQueue: null } });
  const rates = new Map<string, number[]>(VARIANTS.map((v) => [v.key, []]));
  for (let repetition = 1; repetition <= REPETITIONS; repetition++) {
    for (const variant of VARIANTS) {
      if (bench.signal.aborted) return;
      await sql`DELETE FROM holdline.messages`.execute(bench.admin);
      await configureQueue(bench.admin, { name: QUEUE, config: variant.limits });
      for (let sent = 0; sent < MESSAGES; sent += PREFILL_BATCH_SIZE) {
        const n = Math.min(PREFILL_BATCH_SIZE, MESSAGES - sent);
        await sendBatch(bench.admin, {
          queue: QUEUE,
          messages: Array.from({ length: n }, (_, i) => ({
            payload: { i: sent + i },
            groupKey: variant.grouped ? `g${sent + i}` : undefined,
          })),
        });
      }
      await sql`VACUUM ANALYZE holdline.messages`.execute(bench.admin);
      await checkpoint(bench.admin);
      const db = createDatabase(createPool({ connectionString: bench.url, max: CONSUMER_LOOPS }));
      const engine = new QueueEngine({ db, logger });
      engine.start();
      try {
        const started = nowMs();
        const drain = receiveLoops(MESSAGES, async (max) => {
          const deliveries = await engine.receive({ queue: QUEUE, max });
          if (deliveries.length > 0) await engine.ackBatch(deliveries.map((d) => d.receipt));
          return deliveries.length;
        });
        await drain.done;
        const seconds = (nowMs() - started) / 1000;
        const perSecond = drain.handled / seconds;
        rates.get(variant.key)!.push(perSecond);
        printJsonLine({
          bench: BENCH,
          variant: variant.key,
          repetition,
          messages: drain.handled,
          seconds,
          perSecond,
        });
      } finally {
        await engine.stop();
        await db.destroy();
      }
    }
  }
  const median = (values: number[]): number => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
  };
  const rows = VARIANTS.map((variant) => {
    const perSecond = median(rates.get(variant.key)!);
    const baseline = median(rates.get(variant.baseline)!);
    printJsonLine({
      bench: BENCH,
      summary: true,
      variant: variant.key,
      medianMessagesPerSecond: perSecond,
      baseline: variant.baseline,
      ratioToBaseline: perSecond / baseline,
      repetitions: REPETITIONS,
      messages: MESSAGES,
    });
    return [
      variant.label,
      formatCount(perSecond),
      formatFixed(perSecond / baseline, 2),
      variant.baseline,
    ];
  });
  process.stdout.write(
    `\n${markdownTable(['W3 engine loop drain', 'messages/s (median)', '× baseline', 'baseline'], rows)}\n`,
  );
});
