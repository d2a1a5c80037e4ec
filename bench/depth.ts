/**
 * W5, depth: does draining slow down when the queue is deep? 5,000 messages drained with a
 * no-op handler from a queue holding 10,000 and one holding 1,000,000, by holdline's
 * in-process worker as W3 (bench/drain.ts) runs it, and by the raw-SQL limit. Target
 * (issue 5): holdline at 1,000,000 ≥ 0.8× holdline at 10,000.
 *
 *   npx tsx bench/depth.ts [--smoke]
 *
 * Prints one JSON line per measurement, then a markdown table. See bench/README.md.
 */
import { sql } from 'kysely';
import pino from 'pino';
import type { QueueWorker } from '../src/client/index.ts';
import { createPool } from '../src/db/pool.ts';
import { createQueue } from '../src/queue/operations.ts';
import { parseBenchArgs } from './harness/args.ts';
import { nowMs } from './harness/clock.ts';
import { checkpoint, withBenchDatabase } from './harness/database.ts';
import type { BenchDatabase } from './harness/database.ts';
import {
  CONSUMER_LOOPS,
  HOLDLINE_WORKER_SETTINGS,
  LEASE_MAX,
  createWorkerClient,
  onPoolClient,
  rawLeaseAndAck,
  receiveLoops,
  startWorker,
} from './harness/drain-consumers.ts';
import type { Drain } from './harness/drain-consumers.ts';
import { summariseRates } from './harness/interleave.ts';
import type { RateSummary } from './harness/interleave.ts';
import { runComparison } from './harness/comparison.ts';
import { CREATE_RAW_QUEUE_TABLE, RAW_QUEUE_TABLE } from './harness/peers.ts';
import { waitForQuietMachine } from './harness/quiet.ts';
import type { QuietCheck } from './harness/quiet.ts';
import { formatCount, formatFixed, markdownTable } from './harness/report.ts';
import { median } from './harness/stats.ts';

const BENCH = 'depth';
const args = parseBenchArgs(process.argv.slice(2));

/** Messages queued before each run: the shallow queue, then the deep one. */
const SHALLOW = args.smoke ? 2_000 : 10_000;
const DEEP = args.smoke ? 5_000 : 1_000_000;
const DEPTHS = [SHALLOW, DEEP] as const;
/** Messages each run drains (from the head of the queue, the oldest first). */
// Half the shallow depth: the shallow queue never runs dry while it is measured.
const DRAIN_COUNT = SHALLOW / 2;
const REPETITIONS = args.smoke ? 1 : 5;
/** Rows per prefill statement: a million rows in 20 transactions. */
const PREFILL_BATCH_SIZE = 50_000;
/** The deep queue's drain rate at least this share of the shallow one's (issue 5). */
const DEPTH_RATIO_TARGET = 0.8;
const RUN_TIME_LIMIT_MS = 120_000;
const QUIET_MIN_IDLE = 0.9;
const QUIET_WINDOW_MS = args.smoke ? 50 : 1_000;
const QUIET_TIMEOUT_MS = args.smoke ? 0 : 10_000;
const QUEUE = 'bench';
const PAD = 'x'.repeat(100);

const logger = pino({ level: process.env.LOG_LEVEL ?? 'warn' }, pino.destination(2));

interface System {
  key: string;
  label: string;
  settings: Record<string, unknown>;
  /** Empties this system's tables. */
  reset: string;
  table: string;
  /** Messages still queued. */
  remaining(bench: BenchDatabase): Promise<number>;
  /** Inserts messages first … end − 1 in one statement. */
  prefillBatch(bench: BenchDatabase, first: number, end: number): Promise<void>;
  /** Prepared before the clock starts (pools, clients); `start` runs on the clock. */
  prepare(bench: BenchDatabase): Promise<{ start(): Drain; close(): Promise<void> }>;
}

/**
 * Ends a worker's drain once `DRAIN_COUNT` acks were accepted (its `processed` events): the
 * worker holds more leases than that at the end, which stop() gives back.
 */
function acksCounted(worker: QueueWorker, stop: () => Promise<void>): Drain {
  let processed = 0;
  let timer: NodeJS.Timeout | undefined;
  const done = new Promise<void>((resolve, reject) => {
    timer = setTimeout(
      () => reject(new Error(`not drained in time (${processed} acked)`)),
      RUN_TIME_LIMIT_MS,
    );
    worker.on('processed', () => {
      if (++processed === DRAIN_COUNT) resolve();
    });
  }).finally(() => clearTimeout(timer));
  done.catch(() => undefined);
  return {
    get handled() {
      return processed;
    },
    done,
    stop,
  };
}

const SYSTEMS: readonly System[] = [
  {
    key: 'raw',
    label: `raw SQL: SKIP LOCKED lease of ${LEASE_MAX} + DELETE ack`,
    settings: { loops: CONSUMER_LOOPS, leaseMax: LEASE_MAX },
    reset: `TRUNCATE ${RAW_QUEUE_TABLE}`,
    table: RAW_QUEUE_TABLE,
    remaining: async (bench) => {
      const { rows } = await sql<{ n: number }>`
        SELECT count(*)::integer AS n FROM ${sql.table(RAW_QUEUE_TABLE)}
      `.execute(bench.admin);
      return rows[0]!.n;
    },
    prefillBatch: async (bench, first, end) => {
      await sql`
        INSERT INTO ${sql.table(RAW_QUEUE_TABLE)} (payload)
        SELECT jsonb_build_object('n', g, 'pad', ${PAD}::text)
        FROM generate_series(${first}::integer, ${end - 1}::integer) AS g
      `.execute(bench.admin);
    },
    prepare: (bench) => {
      const pool = createPool({
        connectionString: bench.url,
        max: CONSUMER_LOOPS,
        applicationName: 'holdline-bench-consumer',
      });
      return Promise.resolve({
        start: () =>
          receiveLoops(DRAIN_COUNT, (max) =>
            onPoolClient(pool, (client) => rawLeaseAndAck(client, max)),
          ),
        close: () => pool.end(),
      });
    },
  },
  {
    key: 'holdline-worker',
    label: `holdline in-process worker: consume(), concurrency ${HOLDLINE_WORKER_SETTINGS.concurrency}`,
    settings: { api: 'createInProcessClient + consume', ...HOLDLINE_WORKER_SETTINGS },
    reset: 'TRUNCATE holdline.messages, holdline.dequeue_counts',
    table: 'holdline.messages',
    remaining: async (bench) => {
      const { rows } = await sql<{ n: number }>`
        SELECT count(*)::integer AS n FROM holdline.messages WHERE queue = ${QUEUE}
      `.execute(bench.admin);
      return rows[0]!.n;
    },
    // Through holdline.send_batch, the function every send runs, so the rows are what sends
    // make; only the payloads are built in SQL, 50,000 to a call.
    prefillBatch: async (bench, first, end) => {
      await sql`
        SELECT count(*) FROM holdline.send_batch(${QUEUE}, ARRAY(
          SELECT jsonb_build_object('n', g, 'pad', ${PAD}::text)
          FROM generate_series(${first}::integer, ${end - 1}::integer) AS g))
      `.execute(bench.admin);
    },
    prepare: async (bench) => {
      const client = await createWorkerClient(bench.url, logger);
      return {
        start: () => {
          const worker = startWorker(client, QUEUE, () => undefined);
          return acksCounted(worker, () => worker.stop({ timeoutMs: 5_000 }));
        },
        close: () => client.close(),
      };
    },
  },
];

/** One system at one depth: what runComparison runs. */
interface DepthRun {
  key: string;
  label: string;
  system: System;
  depth: number;
}

const RUNS: readonly DepthRun[] = DEPTHS.flatMap((depth) =>
  SYSTEMS.map((system) => ({
    key: `${system.key}@${depth}`,
    label: `${system.label} at ${formatCount(depth)}`,
    system,
    depth,
  })),
);

interface Measurement {
  system: string;
  depth: number;
  repetition: number;
  messages: number;
  elapsedMs: number;
  messagesPerSecond: number;
  /** Prefill and VACUUM ANALYZE, before the clock. */
  prefillMs: number;
  quietBeforeStart: QuietCheck;
}

async function measure(
  bench: BenchDatabase,
  run: DepthRun,
  repetition: number,
): Promise<Measurement> {
  const { system, depth } = run;
  const prefillStartedAt = nowMs();
  await sql.raw(system.reset).execute(bench.admin);
  for (let first = 0; first < depth; first += PREFILL_BATCH_SIZE) {
    await system.prefillBatch(bench, first, Math.min(depth, first + PREFILL_BATCH_SIZE));
  }
  await sql.raw(`VACUUM ANALYZE ${system.table}`).execute(bench.admin);
  const prefillMs = nowMs() - prefillStartedAt;
  await checkpoint(bench.admin);
  const before = await system.remaining(bench);
  if (before !== depth) throw new Error(`${run.key}: prefilled ${before}, not ${depth}`);

  const prepared = await system.prepare(bench);
  try {
    const quietBeforeStart = await waitForQuietMachine({
      minIdle: QUIET_MIN_IDLE,
      windowMs: QUIET_WINDOW_MS,
      timeoutMs: QUIET_TIMEOUT_MS,
    });
    const startedAt = nowMs();
    const drain = prepared.start();
    let elapsedMs: number;
    try {
      await drain.done;
      elapsedMs = nowMs() - startedAt;
    } finally {
      await drain.stop();
    }
    // The worker acks up to its concurrency more than DRAIN_COUNT before it stops (the rest
    // of its last lease); never fewer.
    const left = await system.remaining(bench);
    if (left > depth - DRAIN_COUNT) {
      throw new Error(`${run.key}: ${left} left, expected at most ${depth - DRAIN_COUNT}`);
    }
    return {
      system: system.key,
      depth,
      repetition,
      messages: DRAIN_COUNT,
      elapsedMs,
      messagesPerSecond: (DRAIN_COUNT / elapsedMs) * 1000,
      prefillMs,
      quietBeforeStart,
    };
  } finally {
    await prepared.close();
  }
}

/** One system's drain rate at the deep queue over that at the shallow one. */
interface DepthRatio {
  system: string;
  label: string;
  /** Median at DEEP over median at SHALLOW. */
  depthRatio: number;
  /** Median over repetitions of (DEEP run / the same repetition's SHALLOW run). */
  medianPairedDepthRatio: number;
  target: number;
  targetMet: boolean;
}

function depthRatios(measurements: readonly Measurement[]): DepthRatio[] {
  return SYSTEMS.map((system) => {
    const at = (depth: number): Measurement[] =>
      measurements.filter((m) => m.system === system.key && m.depth === depth);
    const shallow = at(SHALLOW);
    const deep = at(DEEP);
    const depthRatio =
      median(deep.map((m) => m.messagesPerSecond)) /
      median(shallow.map((m) => m.messagesPerSecond));
    const paired = deep.map((m) => {
      const pair = shallow.find((s) => s.repetition === m.repetition);
      return pair === undefined ? Number.NaN : m.messagesPerSecond / pair.messagesPerSecond;
    });
    return {
      system: system.key,
      label: system.label,
      depthRatio,
      medianPairedDepthRatio: median(paired),
      target: DEPTH_RATIO_TARGET,
      targetMet: depthRatio >= DEPTH_RATIO_TARGET,
    };
  });
}

/** One system's drain rate at one queue depth: a workload of its own in the overview. */
type DepthRateSummary = RateSummary & { workload: string; depth: number };

/** The summary lines: every system's rate at each depth, then its deep-over-shallow ratio. */
type Summary = DepthRateSummary | DepthRatio;

function summarise(measurements: readonly Measurement[]): Summary[] {
  const rates = DEPTHS.flatMap((depth) =>
    summariseRates(
      SYSTEMS,
      measurements.filter((m) => m.depth === depth),
      (m) => m.messagesPerSecond,
    ).map(({ rate }) => ({ workload: `depth ${formatCount(depth)}`, depth, ...rate })),
  );
  return [...rates, ...depthRatios(measurements)];
}

function table(summaries: readonly Summary[]): string {
  const rates = summaries.filter((s): s is DepthRateSummary => 'depth' in s);
  const ratios = summaries.filter((s): s is DepthRatio => 'depthRatio' in s);
  const rate = (s: RateSummary | undefined): string =>
    s === undefined
      ? '–'
      : `${formatCount(s.medianPerSecond)} (${formatCount(s.minPerSecond)}–${formatCount(s.maxPerSecond)})`;
  return markdownTable(
    [
      'system',
      `msgs/s, ${formatCount(SHALLOW)} queued`,
      `msgs/s, ${formatCount(DEEP)} queued`,
      `× raw at ${formatCount(DEEP)}`,
      `${formatCount(DEEP)} / ${formatCount(SHALLOW)}`,
      `target ≥ ${DEPTH_RATIO_TARGET}`,
    ],
    ratios.map((ratio) => {
      const at = (depth: number): RateSummary | undefined =>
        rates.find((s) => s.depth === depth && s.system === ratio.system);
      return [
        ratio.label,
        rate(at(SHALLOW)),
        rate(at(DEEP)),
        `${formatFixed(at(DEEP)?.ratioToRaw ?? Number.NaN, 2)}×`,
        `${formatFixed(ratio.depthRatio, 2)}×`,
        ratio.targetMet ? 'met' : 'missed',
      ];
    }),
  );
}

async function main(): Promise<void> {
  await withBenchDatabase(async (bench) => {
    await sql.raw(CREATE_RAW_QUEUE_TABLE).execute(bench.admin);
    await createQueue(bench.admin, { name: QUEUE });

    await runComparison({
      name: BENCH,
      smoke: args.smoke,
      database: bench,
      parameters: {
        depths: DEPTHS,
        messages: DRAIN_COUNT,
        settings: Object.fromEntries(SYSTEMS.map((s) => [s.key, s.settings])),
      },
      systems: RUNS,
      repetitions: REPETITIONS,
      measure,
      progress: (m) =>
        `${formatCount(m.messagesPerSecond)} msgs/s (prefill ${formatCount(m.prefillMs)} ms)`,
      summarise,
      caption: ({ measurements, quietRuns }) =>
        `Drain of ${formatCount(DRAIN_COUNT)} messages with a no-op handler from a queue holding ` +
        `${formatCount(SHALLOW)} and one holding ${formatCount(DEEP)}, ${REPETITIONS} repetition(s) ` +
        `interleaved; median (min–max) over repetitions; ${quietRuns} of ${measurements.length} ` +
        `runs started on a machine ≥${QUIET_MIN_IDLE * 100}% idle.`,
      table,
    });
  });
}

await main();
