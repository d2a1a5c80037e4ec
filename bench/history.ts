/**
 * W12, what the stats history costs (issue 19): W1 and W3 through the engine with the history on
 * and off, interleaved per repetition (the order alternating), and the ratio on ÷ off;
 * target ≥ 0.95×. "On" is everything the history adds: the engine's meter (a count per
 * send, delivery, ack and nack, a latency bucket per delivery, an upsert every 5 s) and a
 * leader whose history keeper samples depths every 30 s (`--sample-seconds 1` compresses
 * that, so that many samples, each a scan of the messages table, fall inside a run). "Off"
 * runs the same engine and leader with the history off.
 *
 * - W1: 8 producers, single sends through QueueEngine.send (one in flight each; the engine
 *   coalesces concurrent sends), 20,000 in the measured part. (bench/single-sends.ts calls
 *   the send statement without an engine, which the history never sees.)
 * - W3: the engine loop of bench/drain.ts (4 loops, receive max 1,000 + ackBatch) draining
 *   50,000 prefilled messages.
 *
 *   npx tsx bench/history.ts [--smoke] [--repetitions N] [--sample-seconds N]
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
import { backendCpu, backendCpuDeltaMs, clientCpuMs } from './harness/cpu.ts';
import type { BackendCpu } from './harness/cpu.ts';
import { runProducers } from './harness/producers.ts';
import { formatCount, formatFixed, markdownTable, printJsonLine } from './harness/report.ts';

const BENCH = 'history';
const args = parseBenchArgs(process.argv.slice(2), ['repetitions', 'sample-seconds']);
const REPETITIONS = args.smoke ? 1 : (args.numbers.repetitions ?? 5);
const SENDS = args.smoke ? 400 : 20_000;
const PRODUCERS = 8;
const WARMUP_SENDS_PER_PRODUCER = args.smoke ? 5 : 50;
const DRAIN_MESSAGES = args.smoke ? 1_000 : 50_000;
const PREFILL_BATCH_SIZE = 500;
const RUN_TIME_LIMIT_MS = 120_000;
/**
 * The keeper's sampling interval in the "on" runs: 30 s as in production, or
 * `--sample-seconds N` to compress it (1: a sample, a scan of the messages table, every
 * second of the run).
 */
const SAMPLE_INTERVAL_MS = (args.numbers['sample-seconds'] ?? 30) * 1000;
const QUEUE = 'bench-history';
/** The application_name of the instance's pool: whose backends' CPU a run adds up. */
const APPLICATION_NAME = 'holdline-bench-history';
const PAD = 'x'.repeat(100);
const RESET =
  'TRUNCATE holdline.messages, holdline.dequeue_counts, holdline.queue_history, holdline.waiting_consumers';

type Workload = 'W1' | 'W3';
type Variant = 'off' | 'on';

/** One run: its rate, and CPU per message (µs) of this process and of the pool's backends. */
interface Run {
  perSecond: number;
  nodeCpuMicrosPerMessage: number;
  /** Undefined without the rights to read backends' CPU (see harness/cpu.ts). */
  databaseCpuMicrosPerMessage: number | undefined;
}

/** CPU readings at the start of a run's measured part. */
interface CpuMark {
  node: number;
  backends: BackendCpu | undefined;
}

async function cpuMark(bench: BenchDatabase): Promise<CpuMark> {
  return { node: clientCpuMs(), backends: await backendCpu(bench.admin, APPLICATION_NAME) };
}

async function runOf(
  bench: BenchDatabase,
  mark: CpuMark,
  messages: number,
  perSecond: number,
): Promise<Run> {
  const backends = backendCpuDeltaMs(
    mark.backends,
    await backendCpu(bench.admin, APPLICATION_NAME),
  );
  return {
    perSecond,
    nodeCpuMicrosPerMessage: ((clientCpuMs() - mark.node) * 1000) / messages,
    databaseCpuMicrosPerMessage: backends === undefined ? undefined : (backends * 1000) / messages,
  };
}

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
  const db = createDatabase(
    createPool({ connectionString: bench.url, max: poolMax, applicationName: APPLICATION_NAME }),
  );
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
  // Every pool connection open before the clock: the backends' CPU is read per connection.
  await Promise.all(Array.from({ length: poolMax }, () => sql`SELECT pg_sleep(0.05)`.execute(db)));
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
async function singleSends(bench: BenchDatabase, history: boolean): Promise<Run> {
  await sql.raw(RESET).execute(bench.admin);
  await checkpoint(bench.admin);
  const instance = await startInstance(bench, history, PRODUCERS);
  let mark: CpuMark | undefined;
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
      beforeStart: async () => {
        mark = await cpuMark(bench);
      },
      signal: bench.signal,
    });
    if (result.timedOut) throw new Error('W1 run timed out');
    return await runOf(bench, mark!, result.sends, result.sendsPerSecond);
  } finally {
    await instance.stop();
  }
}

/** W3: messages per second the engine loop drains from a prefilled queue. */
async function drain(bench: BenchDatabase, history: boolean): Promise<Run> {
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
    const mark = await cpuMark(bench);
    const started = nowMs();
    const run = receiveLoops(DRAIN_MESSAGES, async (max) => {
      const deliveries = await instance.engine.receive({ queue: QUEUE, max });
      if (deliveries.length > 0) await instance.engine.ackBatch(deliveries.map((d) => d.receipt));
      return deliveries.length;
    });
    await run.done;
    const perSecond = run.handled / ((nowMs() - started) / 1000);
    return await runOf(bench, mark, run.handled, perSecond);
  } finally {
    await instance.stop();
  }
}

const MEASURE: Record<Workload, (bench: BenchDatabase, history: boolean) => Promise<Run>> = {
  W1: singleSends,
  W3: drain,
};

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** The median of the pairs' on ÷ off of one measure; NaN where a run lacks it. */
function pairRatio(
  pairs: readonly Map<Variant, Run>[],
  measure: (run: Run) => number | undefined,
): number {
  return median(
    pairs.map((pair) => (measure(pair.get('on')!) ?? NaN) / (measure(pair.get('off')!) ?? NaN)),
  );
}

function formatRatio(ratio: number): string {
  return Number.isNaN(ratio) ? 'n/a' : `${formatFixed(ratio, 3)}×`;
}

await withBenchDatabase(async (bench) => {
  await createQueue(bench.admin, { name: QUEUE, config: { deadLetterQueue: null } });
  const pairs = new Map<Workload, Map<Variant, Run>[]>(WORKLOADS.map((w) => [w, []]));
  for (let repetition = 1; repetition <= REPETITIONS; repetition++) {
    for (const workload of WORKLOADS) {
      // Alternating which goes first cancels a drift of the machine within a pair.
      const order: Variant[] = repetition % 2 === 1 ? ['off', 'on'] : ['on', 'off'];
      const pair = new Map<Variant, Run>();
      for (const variant of order) {
        if (bench.signal.aborted) return;
        const run = await MEASURE[workload](bench, variant === 'on');
        pair.set(variant, run);
        printJsonLine({ bench: BENCH, kind: 'measurement', workload, variant, repetition, ...run });
        process.stderr.write(
          `${repetition}/${REPETITIONS} ${workload} history ${variant}: ${formatCount(run.perSecond)}/s, ` +
            `${formatFixed(run.nodeCpuMicrosPerMessage, 1)} µs Node CPU/msg\n`,
        );
      }
      pairs.get(workload)!.push(pair);
    }
  }
  const rows = WORKLOADS.map((workload) => {
    const runs = pairs.get(workload)!;
    const medianOf = (variant: Variant, measure: (run: Run) => number | undefined): number =>
      median(runs.map((pair) => measure(pair.get(variant)!) ?? NaN));
    const rate = pairRatio(runs, (r) => r.perSecond);
    const nodeCpu = pairRatio(runs, (r) => r.nodeCpuMicrosPerMessage);
    const databaseCpu = pairRatio(runs, (r) => r.databaseCpuMicrosPerMessage);
    printJsonLine({
      bench: BENCH,
      kind: 'summary',
      workload,
      medianOffPerSecond: medianOf('off', (r) => r.perSecond),
      medianOnPerSecond: medianOf('on', (r) => r.perSecond),
      rateRatio: rate,
      rateRatios: runs.map((pair) => pair.get('on')!.perSecond / pair.get('off')!.perSecond),
      nodeCpuRatio: nodeCpu,
      databaseCpuRatio: databaseCpu,
      repetitions: REPETITIONS,
    });
    return [
      workload === 'W1'
        ? `W1 single sends through the engine, ${PRODUCERS} producers`
        : `W3 engine drain of ${formatCount(DRAIN_MESSAGES)}`,
      formatCount(medianOf('off', (r) => r.perSecond)),
      formatCount(medianOf('on', (r) => r.perSecond)),
      formatRatio(rate),
      `${formatFixed(
        medianOf('off', (r) => r.nodeCpuMicrosPerMessage),
        1,
      )} / ${formatFixed(
        medianOf('on', (r) => r.nodeCpuMicrosPerMessage),
        1,
      )} (${formatRatio(nodeCpu)})`,
      formatRatio(databaseCpu),
    ];
  });
  process.stdout.write(
    `\nHistory on (depths sampled every ${SAMPLE_INTERVAL_MS / 1000} s) vs off, ${REPETITIONS} interleaved pairs; ` +
      `ratios are medians of the pairs' on ÷ off ` +
      `(CPU per message: lower is cheaper, so on ÷ off above 1 is the cost).\n\n` +
      `${markdownTable(
        [
          'workload',
          'msgs/s off',
          'msgs/s on',
          'rate on ÷ off',
          'Node CPU µs/msg off / on (on ÷ off)',
          'PostgreSQL CPU/msg on ÷ off',
        ],
        rows,
      )}\n`,
  );
});
