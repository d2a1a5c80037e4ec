/**
 * W2, batch sends: 4 producers each sending batches of 500 messages, 100,000 in total,
 * holdline's sendBatch against pgmq's send_batch, pg-boss's insert, graphile-worker's addJobs
 * and a raw one-statement INSERT (the physical limit). Targets: holdline ≥ 0.8× raw (issue 5)
 * and ≥ 1.0× pgmq (issue 16).
 *
 *   npx tsx bench/batch-sends.ts [--smoke]
 *
 * Prints one JSON line per measurement, then a markdown table. See bench/README.md.
 */
import { sql } from 'kysely';
import { selectedSystems, summariseRates } from './harness/interleave.ts';
import type { RateSummary } from './harness/interleave.ts';
import PgBoss from 'pg-boss';
import { createDatabase, createPool } from '../src/db/pool.ts';
import { sendBatch } from '../src/queue/operations.ts';
import { parseBenchArgs } from './harness/args.ts';
import { withBenchDatabase } from './harness/database.ts';
import type { BenchDatabase } from './harness/database.ts';
import { runComparison } from './harness/comparison.ts';
import {
  GRAPHILE_RESET,
  PG_BOSS_RESET,
  RAW_INSERT_BATCH,
  RAW_QUEUE_TABLE,
  graphileWorkerUtils,
  installAllSystems,
  peerVersion,
  peerVersions,
  pgBossOptions,
} from './harness/peers.ts';
import {
  PGMQ_KEY,
  PGMQ_SEND_BATCH,
  PGMQ_SOURCE,
  installPgmq,
  pgmqCount,
  pgmqReset,
} from './harness/pgmq.ts';
import { runProducers } from './harness/producers.ts';
import type { Producer, ProducerRunResult } from './harness/producers.ts';
import { waitForQuietMachine } from './harness/quiet.ts';
import type { QuietCheck } from './harness/quiet.ts';
import { formatCount, formatFixed, formatRatio, markdownTable } from './harness/report.ts';
import { median } from './harness/stats.ts';

const BENCH = 'batch-sends';
const args = parseBenchArgs(process.argv.slice(2));

const PRODUCERS = 4;
const BATCH_SIZE = 500;
const MESSAGES = args.smoke ? 2_000 : 100_000;
const BATCHES = MESSAGES / BATCH_SIZE;
const REPETITIONS = args.smoke ? 1 : 3;
const WARMUP_BATCHES_PER_PRODUCER = 1;
const RUN_TIME_LIMIT_MS = 120_000;
const QUIET_MIN_IDLE = 0.9;
const QUIET_WINDOW_MS = args.smoke ? 50 : 1_000;
const QUIET_TIMEOUT_MS = args.smoke ? 0 : 10_000;
const QUEUE = 'bench';
const PAD = 'x'.repeat(100);
const PRODUCER_APPLICATION_NAME = 'holdline-bench-producer';

function payload(n: number): { n: number; pad: string } {
  return { n, pad: PAD };
}

/** The payloads of batch number `batch` (negative: warm-up batches, numbered apart). */
function batchPayloads(batch: number): { n: number; pad: string }[] {
  const first = batch * BATCH_SIZE;
  return Array.from({ length: BATCH_SIZE }, (_, i) => payload(first + i));
}

/** A system's producers for one run, and what it must close afterwards. */
interface Producers {
  producer: Producer;
  close(): Promise<void>;
}

interface System {
  key: string;
  label: string;
  /** How it sends, for the JSON lines. */
  settings: Record<string, unknown>;
  open(bench: BenchDatabase): Promise<Producers>;
  /** Empties this system's tables before a run. */
  reset: string;
  /** Rows in this system's queue (after a run: every message sent). */
  count: string;
}

/**
 * PRODUCERS producers on a pg pool of their own, each holding one connection for the run and
 * sending each batch as `text` with the parameters `params(payloads as JSON)`.
 */
function sqlProducers(
  bench: BenchDatabase,
  text: string,
  params: (payloadsJson: string[]) => unknown[],
): Producers {
  const pool = createPool({
    connectionString: bench.url,
    max: PRODUCERS,
    applicationName: PRODUCER_APPLICATION_NAME,
  });
  return {
    producer: async (work) => {
      const client = await pool.connect();
      try {
        await work(async (batch) => {
          await client.query(text, params(batchPayloads(batch).map((p) => JSON.stringify(p))));
        });
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}

/** Each producer pins one pool connection and calls the engine's sendBatch on it. */
function holdlineProducers(bench: BenchDatabase): Producers {
  const db = createDatabase(
    createPool({
      connectionString: bench.url,
      max: PRODUCERS,
      applicationName: PRODUCER_APPLICATION_NAME,
    }),
  );
  return {
    producer: (work) =>
      db.connection().execute((connection) =>
        work(async (batch) => {
          await sendBatch(connection, {
            queue: QUEUE,
            messages: batchPayloads(batch).map((p) => ({ payload: p })),
          });
        }),
      ),
    close: () => db.destroy(),
  };
}

/** One pg-boss instance with a pool of PRODUCERS connections; each batch is one insert(). */
async function pgBossProducers(bench: BenchDatabase): Promise<Producers> {
  const boss = new PgBoss(pgBossOptions(bench.url, PRODUCERS));
  boss.on('error', (error) => process.stderr.write(`pg-boss: ${String(error)}\n`));
  await boss.start();
  return {
    producer: (work) =>
      work(async (batch) => {
        await boss.insert(batchPayloads(batch).map((p) => ({ name: QUEUE, data: p })));
      }),
    close: () => boss.stop({ graceful: false, wait: true }),
  };
}

/** graphile-worker's utilities with a pool of PRODUCERS connections; each batch is one addJobs(). */
async function graphileProducers(bench: BenchDatabase): Promise<Producers> {
  const utils = await graphileWorkerUtils(bench.url, PRODUCERS);
  return {
    producer: (work) =>
      work(async (batch) => {
        await utils.addJobs(batchPayloads(batch).map((p) => ({ identifier: QUEUE, payload: p })));
      }),
    close: async () => {
      await utils.release();
    },
  };
}

const ALL_SYSTEMS: readonly System[] = [
  {
    key: 'raw',
    label: 'raw INSERT … unnest($1::jsonb[])',
    settings: { statement: 'INSERT INTO bench_raw_queue (payload) SELECT unnest($1::jsonb[])' },
    open: (bench) =>
      Promise.resolve(sqlProducers(bench, RAW_INSERT_BATCH, (payloads) => [payloads])),
    reset: `TRUNCATE ${RAW_QUEUE_TABLE}`,
    count: `SELECT count(*)::integer AS n FROM ${RAW_QUEUE_TABLE}`,
  },
  {
    key: PGMQ_KEY,
    label: `${PGMQ_SOURCE} send_batch(queue, msgs[])`,
    settings: { statement: PGMQ_SEND_BATCH, poolMax: PRODUCERS },
    open: (bench) =>
      Promise.resolve(sqlProducers(bench, PGMQ_SEND_BATCH, (payloads) => [QUEUE, payloads])),
    reset: pgmqReset(QUEUE),
    count: pgmqCount(QUEUE),
  },
  {
    key: 'holdline',
    label: 'holdline sendBatch (engine over a pg pool)',
    settings: { api: 'sendBatch(connection, { queue, messages })' },
    open: (bench) => Promise.resolve(holdlineProducers(bench)),
    reset: 'TRUNCATE holdline.messages, holdline.dequeue_counts',
    count: `SELECT count(*)::integer AS n FROM holdline.messages`,
  },
  {
    key: 'pg-boss',
    label: `pg-boss ${peerVersion('pg-boss')} insert()`,
    settings: { api: 'boss.insert(jobs)', poolMax: PRODUCERS, supervise: false, schedule: false },
    open: pgBossProducers,
    reset: PG_BOSS_RESET,
    count: `SELECT count(*)::integer AS n FROM pgboss.job WHERE name = '${QUEUE}'`,
  },
  {
    key: 'graphile-worker',
    label: `graphile-worker ${peerVersion('graphile-worker')} addJobs()`,
    settings: { api: 'workerUtils.addJobs(specs)', maxPoolSize: PRODUCERS },
    open: graphileProducers,
    reset: GRAPHILE_RESET,
    count: 'SELECT count(*)::integer AS n FROM graphile_worker._private_jobs',
  },
];
/** BENCH_SYSTEMS=pgmq,holdline runs those two (and raw SQL) alone. */
const SYSTEMS = selectedSystems(ALL_SYSTEMS);

interface Measurement extends ProducerRunResult {
  system: string;
  repetition: number;
  messages: number;
  messagesPerSecond: number;
  quietBeforeStart: QuietCheck;
}

let checkpointWarned = false;

async function reset(bench: BenchDatabase, system: System): Promise<void> {
  await sql.raw(system.reset).execute(bench.admin);
  try {
    // After a checkpoint every run pays the same full-page writes, none hits a timed one.
    await sql`CHECKPOINT`.execute(bench.admin);
  } catch (error) {
    if (!checkpointWarned) process.stderr.write(`no CHECKPOINT between runs: ${String(error)}\n`);
    checkpointWarned = true;
  }
}

async function countRows(bench: BenchDatabase, system: System): Promise<number> {
  const { rows } = await sql.raw<{ n: number }>(system.count).execute(bench.admin);
  return rows[0]!.n;
}

async function measure(
  bench: BenchDatabase,
  system: System,
  repetition: number,
): Promise<Measurement> {
  const producers = await system.open(bench);
  let quietBeforeStart: QuietCheck = { idle: null, waitedMs: 0, quiet: true };
  try {
    const result = await runProducers({
      producers: PRODUCERS,
      total: BATCHES,
      warmupPerProducer: WARMUP_BATCHES_PER_PRODUCER,
      timeLimitMs: RUN_TIME_LIMIT_MS,
      signal: bench.signal,
      producer: producers.producer,
      beforeStart: async () => {
        await reset(bench, system);
        quietBeforeStart = await waitForQuietMachine({
          minIdle: QUIET_MIN_IDLE,
          windowMs: QUIET_WINDOW_MS,
          timeoutMs: QUIET_TIMEOUT_MS,
        });
      },
    });
    const messages = result.sends * BATCH_SIZE;
    const rows = await countRows(bench, system);
    if (rows !== messages) {
      throw new Error(`${system.key}: ${messages} messages committed but ${rows} rows found`);
    }
    return {
      system: system.key,
      repetition,
      ...result,
      messages,
      messagesPerSecond: (messages / result.elapsedMs) * 1000,
      quietBeforeStart,
    };
  } finally {
    await producers.close();
  }
}

type Summary = RateSummary & {
  /** Median latency of one batch, ms. */
  medianBatchP50Ms: number;
  medianBatchP99Ms: number;
};

function summarise(measurements: readonly Measurement[]): Summary[] {
  return summariseRates(SYSTEMS, measurements, (m) => m.messagesPerSecond).map(
    ({ rate, runs }) => ({
      ...rate,
      medianBatchP50Ms: median(runs.map((m) => m.latencyMs.p50)),
      medianBatchP99Ms: median(runs.map((m) => m.latencyMs.p99)),
    }),
  );
}

function table(summaries: readonly Summary[]): string {
  return markdownTable(
    ['system', 'msgs/s (median)', 'min–max', '× raw', '× pgmq', 'batch p50 ms', 'batch p99 ms'],
    summaries.map((s) => [
      s.label,
      formatCount(s.medianPerSecond),
      `${formatCount(s.minPerSecond)}–${formatCount(s.maxPerSecond)}`,
      `${formatFixed(s.ratioToRaw, 2)}×`,
      formatRatio(s.ratioToPgmq),
      formatFixed(s.medianBatchP50Ms, 1),
      formatFixed(s.medianBatchP99Ms, 1),
    ]),
  );
}

async function main(): Promise<void> {
  await withBenchDatabase(async (bench) => {
    await installAllSystems(bench, QUEUE);
    const pgmq = await installPgmq(bench, QUEUE);
    if (!pgmq.installed) process.stderr.write(`pgmq left out: ${pgmq.reason}\n`);

    const measurements = await runComparison({
      name: BENCH,
      smoke: args.smoke,
      database: bench,
      parameters: {
        producers: PRODUCERS,
        batchSize: BATCH_SIZE,
        messages: MESSAGES,
        peers: { ...peerVersions(), pgmq: PGMQ_SOURCE },
        settings: Object.fromEntries(SYSTEMS.map((s) => [s.key, s.settings])),
      },
      systems: SYSTEMS,
      repetitions: REPETITIONS,
      measure,
      skip: (system) => (system.key === PGMQ_KEY && !pgmq.installed ? pgmq.reason : undefined),
      measurementFields: { producers: PRODUCERS },
      progress: (m) => `${formatCount(m.messagesPerSecond)} msgs/s`,
      summarise,
      caption: ({ measurements, quietRuns }) =>
        `${PRODUCERS} producers, batches of ${BATCH_SIZE}, ${formatCount(MESSAGES)} messages ` +
        `per run, ${REPETITIONS} repetition(s) interleaved; median and min–max over ` +
        `repetitions; ${quietRuns} of ${measurements.length} runs started on a machine ` +
        `≥${QUIET_MIN_IDLE * 100}% idle.`,
      table,
    });
    if (measurements?.some((m) => m.timedOut)) {
      process.stderr.write(`some runs hit the ${RUN_TIME_LIMIT_MS} ms limit (timedOut)\n`);
      process.exitCode = 1;
    }
  });
}

await main();
