/**
 * What the stats history costs (issue 19): W1 and W3 through the engine with the history on
 * and off, interleaved per repetition (the order alternating), and the ratio on ÷ off;
 * target ≥ 0.95×. "On" is everything the history adds: the engine's meter (a count per
 * send, delivery, ack and nack, a latency bucket per delivery, an upsert every 5 s) and a
 * leader whose history keeper samples every second instead of every 30 s (a compressed
 * clock, so that the sampling's scans of the messages table fall inside the runs). "Off" runs
 * the same engine and leader with the history off.
 *
 * - W1: 8 producers, single sends through QueueEngine.send (one in flight each; the engine
 *   coalesces concurrent sends), 20,000 in the measured part. (bench/single-sends.ts calls
 *   the send statement without an engine, which the history never sees.)
 * - W3: the engine loop of bench/drain.ts (4 loops, receive max 1,000 + ackBatch) draining
 *   50,000 prefilled messages.
 *
 *   npx tsx bench/history.ts [--smoke] [--repetitions N]
 *   BENCH_WORKLOADS=W1 npx tsx bench/history.ts    # one workload only
 *
 * Prints one JSON line per measurement and a summary line per workload and variant, then a
 * table.
 */
import { sql } from 'kysely';
import pino from 'pino';
import { createDatabase, createPool } from '../src/db/pool.ts';
import { QueueEngine, createQueue, sendBatch } from '../src/queue/operations.ts';
import { Reaper } from '../src/reaper/reaper.ts';
import { parseBenchArgs } from './harness/args.ts';
import { nowMs } from './harness/clock.ts';
import { checkpoint, withBenchDatabase } from './harness/database.ts';
import type { BenchDatabase } from './harness/database.ts';
import { CONSUMER_LOOPS, receiveLoops } from './harness/drain-consumers.ts';
import { runProducers } from './harness/producers.ts';
import { formatCount, formatFixed, markdownTable, printJsonLine } from './harness/report.ts';

const BENCH = 'history';
const args = parseBenchArgs(process.argv.slice(2), ['repetitions']);
const REPETITIONS = args.smoke ? 1 : (args.numbers.repetitions ?? 5);
const SENDS = args.smoke ? 400 : 20_000;
const PRODUCERS = 8;
const WARMUP_SENDS_PER_PRODUCER = args.smoke ? 5 : 50;
const DRAIN_MESSAGES = args.smoke ? 1_000 : 50_000;
const PREFILL_BATCH_SIZE = 500;
const RUN_TIME_LIMIT_MS = 120_000;
/** The keeper's sampling interval in the "on" runs: every second (30 s in production). */
const SAMPLE_INTERVAL_MS = 1_000;
const QUEUE = 'bench-history';
const PAD = 'x'.repeat(100);
const RESET =
  'TRUNCATE holdline.messages, holdline.dequeue_counts, holdline.queue_history, holdline.waiting_consumers';

type Workload = 'W1' | 'W3';
type Variant = 'off' | 'on';

/** BENCH_WORKLOADS=W1 (or W3) runs only that workload. */
const WORKLOADS: readonly Workload[] = (['W1', 'W3'] as const).filter(
  (w) =>
    process.env.BENCH_WORKLOADS === undefined || process.env.BENCH_WORKLOADS.split(',').includes(w),
);

/** An engine and a leader over the bench database, with the history on or off. */
async function startInstance(
  bench: BenchDatabase,
  history: boolean,
  poolMax: number,
): Promise<{ engine: QueueEngine; stop: () => Promise<void> }> {
  const logger = pino({ level: 'silent' });
  const db = createDatabase(createPool({ connectionString: bench.url, max: poolMax }));
  const engine = new QueueEngine({ db, logger, history });
  const reaper = new Reaper({
    db,
    connectionString: bench.url,
    logger,
    history,
    historyIntervalMs: SAMPLE_INTERVAL_MS,
  });
  engine.start();
  reaper.start();
  const deadline = nowMs() + 10_000;
  while (!reaper.isLeader) {
    if (nowMs() > deadline) throw new Error('the bench reaper did not become leader');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    engine,
    stop: async () => {
      await reaper.stop();
      await engine.stop();
      await db.destroy();
    },
  };
}

/** W1: messages per second 8 producers commit through engine.send. */
async function singleSends(bench: BenchDatabase, history: boolean): Promise<number> {
  await sql.raw(RESET).execute(bench.admin);
  await checkpoint(bench.admin);
  const instance = await startInstance(bench, history, PRODUCERS);
  try {
    const result = await runProducers({
      producers: PRODUCERS,
      total: SENDS,
      warmupPerProducer: WARMUP_SENDS_PER_PRODUCER,
      timeLimitMs: RUN_TIME_LIMIT_MS,
      producer: (work) =>
        work(async (n) => {
          await instance.engine.send(QUEUE, { payload: { n, pad: PAD } });
        }),
      beforeStart: () => Promise.resolve(),
      signal: bench.signal,
    });
    if (result.timedOut) throw new Error('W1 run timed out');
    return result.sendsPerSecond;
  } finally {
    await instance.stop();
  }
}

/** W3: messages per second the engine loop drains from a prefilled queue. */
async function drain(bench: BenchDatabase, history: boolean): Promise<number> {
  await sql.raw(RESET).execute(bench.admin);
  for (let sent = 0; sent < DRAIN_MESSAGES; sent += PREFILL_BATCH_SIZE) {
    const n = Math.min(PREFILL_BATCH_SIZE, DRAIN_MESSAGES - sent);
    await sendBatch(bench.admin, {
      queue: QUEUE,
      messages: Array.from({ length: n }, (_, i) => ({ payload: { n: sent + i, pad: PAD } })),
    });
  }
  await sql`VACUUM ANALYZE holdline.messages`.execute(bench.admin);
  await checkpoint(bench.admin);
  const instance = await startInstance(bench, history, CONSUMER_LOOPS);
  try {
    const started = nowMs();
    const run = receiveLoops(DRAIN_MESSAGES, async (max) => {
      const deliveries = await instance.engine.receive({ queue: QUEUE, max });
      if (deliveries.length > 0) await instance.engine.ackBatch(deliveries.map((d) => d.receipt));
      return deliveries.length;
    });
    await run.done;
    return run.handled / ((nowMs() - started) / 1000);
  } finally {
    await instance.stop();
  }
}

const MEASURE: Record<Workload, (bench: BenchDatabase, history: boolean) => Promise<number>> = {
  W1: singleSends,
  W3: drain,
};

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

await withBenchDatabase(async (bench) => {
  await createQueue(bench.admin, { name: QUEUE, config: { deadLetterQueue: null } });
  const rates = new Map<string, number[]>();
  const ratios = new Map<Workload, number[]>([
    ['W1', []],
    ['W3', []],
  ]);
  for (let repetition = 1; repetition <= REPETITIONS; repetition++) {
    for (const workload of WORKLOADS) {
      // Alternating which goes first cancels a drift of the machine within a pair.
      const order: Variant[] = repetition % 2 === 1 ? ['off', 'on'] : ['on', 'off'];
      const pair = new Map<Variant, number>();
      for (const variant of order) {
        if (bench.signal.aborted) return;
        const perSecond = await MEASURE[workload](bench, variant === 'on');
        pair.set(variant, perSecond);
        const key = `${workload}-${variant}`;
        rates.set(key, [...(rates.get(key) ?? []), perSecond]);
        printJsonLine({
          bench: BENCH,
          kind: 'measurement',
          workload,
          variant,
          repetition,
          perSecond,
        });
        process.stderr.write(
          `${repetition}/${REPETITIONS} ${workload} history ${variant}: ${formatCount(perSecond)}/s\n`,
        );
      }
      ratios.get(workload)!.push(pair.get('on')! / pair.get('off')!);
    }
  }
  const rows = WORKLOADS.map((workload) => {
    const off = median(rates.get(`${workload}-off`)!);
    const on = median(rates.get(`${workload}-on`)!);
    const pairRatios = ratios.get(workload)!;
    printJsonLine({
      bench: BENCH,
      kind: 'summary',
      workload,
      medianOffPerSecond: off,
      medianOnPerSecond: on,
      medianRatio: median(pairRatios),
      ratios: pairRatios,
      repetitions: REPETITIONS,
    });
    return [
      workload === 'W1'
        ? `W1 single sends through the engine, ${PRODUCERS} producers (msgs/s)`
        : `W3 engine drain of ${formatCount(DRAIN_MESSAGES)} (msgs/s)`,
      formatCount(off),
      formatCount(on),
      `${formatFixed(median(pairRatios), 3)}× (${pairRatios.map((r) => formatFixed(r, 2)).join(', ')})`,
    ];
  });
  process.stdout.write(
    `\nHistory on vs off, ${REPETITIONS} interleaved pairs; the ratio is the median of the pairs' on ÷ off.\n\n` +
      `${markdownTable(['workload', 'off (median)', 'on (median)', 'on ÷ off (median; per pair)'], rows)}\n`,
  );
});
