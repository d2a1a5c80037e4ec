/**
 * W3, drain: 50,000 pre-filled messages consumed with a no-op handler, each system with its
 * best documented settings: the raw-SQL limit (SKIP LOCKED lease of 1,000 + batched DELETE),
 * pgmq (read of 1,000 + delete of their ids), holdline's engine loop and its in-process
 * TypeScript worker, pg-boss's work() and graphile-worker's run(). Targets: holdline
 * in-process ≥ 0.9× raw and ≥ 2× the faster job queue (issue 5); the engine loop ≥ 1.0× pgmq
 * (issue 16).
 *
 *   npx tsx bench/drain.ts [--smoke]
 *
 * Prints one JSON line per measurement, then a markdown table. See bench/README.md.
 */
import { selectedSystems, summariseRates } from './harness/interleave.ts';
import type { RateSummary } from './harness/interleave.ts';
import type pg from 'pg';
import { sql } from 'kysely';
import PgBoss from 'pg-boss';
import pino from 'pino';
import { createToken } from '../src/auth/index.ts';
import { createClient } from '../src/client/index.ts';
import { createDatabase, createPool } from '../src/db/pool.ts';
import { QueueEngine, sendBatch } from '../src/queue/operations.ts';
import { parseBenchArgs } from './harness/args.ts';
import { nowMs, sleep } from './harness/clock.ts';
import { checkpoint, withBenchDatabase } from './harness/database.ts';
import type { BenchDatabase } from './harness/database.ts';
import {
  CONSUMER_LOOPS,
  HOLDLINE_WORKER_SETTINGS,
  LEASE_MAX,
  counter,
  createWorkerClient,
  onPoolClient,
  rawLeaseAndAck,
  receiveLoops,
  startWorker,
} from './harness/drain-consumers.ts';
import type { Drain } from './harness/drain-consumers.ts';
import { runComparison } from './harness/comparison.ts';
import {
  GRAPHILE_PENDING,
  GRAPHILE_RESET,
  GRAPHILE_RUN_SETTINGS,
  PG_BOSS_PENDING,
  PG_BOSS_RESET,
  RAW_INSERT_BATCH,
  RAW_QUEUE_TABLE,
  graphileWorkerUtils,
  runGraphileWorker,
  installAllSystems,
  peerVersion,
  peerVersions,
  pgBossOptions,
} from './harness/peers.ts';
import {
  PGMQ_KEY,
  PGMQ_READ,
  PGMQ_SEND_BATCH,
  PGMQ_SOURCE,
  installPgmq,
  pgmqCount,
  pgmqReadAndDelete,
  pgmqReset,
  pgmqTable,
} from './harness/pgmq.ts';
import { waitForQuietMachine } from './harness/quiet.ts';
import { startService } from './harness/service.ts';
import type { QuietCheck } from './harness/quiet.ts';
import { formatCount, formatFixed, formatRatio, markdownTable } from './harness/report.ts';

const BENCH = 'drain';
const args = parseBenchArgs(process.argv.slice(2));

const MESSAGES = args.smoke ? 1_000 : 50_000;
const REPETITIONS = args.smoke ? 1 : 3;
const PREFILL_BATCH_SIZE = 500;
/**
 * pg-boss 10 (docs, "Workers"): each work() call adds one polling worker; batchSize jobs per
 * fetch; the worker waits out pollingIntervalSeconds (minimum 0.5) after every fetch, full or
 * not, so its ceiling is workers × batchSize / interval.
 */
const PG_BOSS_WORK_SETTINGS = {
  // 8 × 2,000 every 0.5 s: a ceiling of 32,000 jobs/s, above what this machine drains, so the
  // database and not the settings bound it (4 × 1,000 measured its 8,000/s ceiling).
  workers: 8,
  batchSize: 2_000,
  pollingIntervalSeconds: 0.5,
  poolMax: 10,
} as const;
const RUN_TIME_LIMIT_MS = 120_000;
/** How often a drain's end is checked once every handler call was counted. */
const DRAINED_POLL_MS = 10;
const QUIET_MIN_IDLE = 0.9;
const QUIET_WINDOW_MS = args.smoke ? 50 : 1_000;
const QUIET_TIMEOUT_MS = args.smoke ? 0 : 10_000;
const QUEUE = 'bench';
/** The service as a deployment runs it: authentication on (rate limit: the default). */
const HTTP_SERVICE_ENV = { AUTH_REQUIRED: 'true', REAPER_ENABLED: 'false', POOL_MAX: '10' };
/** Tokens made so far: each repetition's service gets its own (names are unique). */
let httpTokens = 0;
const PAD = 'x'.repeat(100);
const CONSUMER_APPLICATION_NAME = 'holdline-bench-consumer';
/** Every holdline system starts from empty tables with the queue's archive off. */
const HOLDLINE_RESET =
  'TRUNCATE holdline.messages, holdline.dequeue_counts, holdline.message_archive; ' +
  `UPDATE holdline.queues SET archive_seconds = 0 WHERE name = '${QUEUE}'`;
/** How long the archive-on run keeps acked messages (a day: the partitions stay put). */
const ARCHIVE_SECONDS = 86_400;
const HOLDLINE_PENDING = `SELECT count(*)::integer AS n FROM holdline.messages WHERE queue = '${QUEUE}'`;
const PG_BOSS_PENDING_BENCH = PG_BOSS_PENDING.replace('$1', `'${QUEUE}'`);

const logger = pino({ level: process.env.LOG_LEVEL ?? 'warn' }, pino.destination(2));

function payloads(first: number, count: number): { n: number; pad: string }[] {
  return Array.from({ length: count }, (_, i) => ({ n: first + i, pad: PAD }));
}

/** Calls `send` with consecutive batches of PREFILL_BATCH_SIZE payloads, MESSAGES in all. */
async function prefill(send: (batch: { n: number; pad: string }[]) => Promise<unknown>) {
  for (let first = 0; first < MESSAGES; first += PREFILL_BATCH_SIZE) {
    await send(payloads(first, Math.min(PREFILL_BATCH_SIZE, MESSAGES - first)));
  }
}

interface System {
  key: string;
  label: string;
  settings: Record<string, unknown>;
  /** Empties this system's tables. */
  reset: string;
  /** Tables to VACUUM ANALYZE after the prefill, so every run starts with fresh statistics. */
  tables: readonly string[];
  /** Messages not yet acked. */
  pending: string;
  prefill(bench: BenchDatabase): Promise<void>;
  /** Prepared before the clock starts (pools, instances); `start` runs on the clock. */
  prepare(bench: BenchDatabase): Promise<{ start(): Promise<Drain>; close(): Promise<void> }>;
}

async function pendingCount(bench: BenchDatabase, pending: string): Promise<number> {
  const { rows } = await sql.raw<{ n: number }>(pending).execute(bench.admin);
  return rows[0]!.n;
}

/**
 * For drains run by a library's own loop: resolves once the handler saw every message and
 * the database shows none left unacked (acks may be batched after the handler returns).
 */
async function drained(
  bench: BenchDatabase,
  pending: string,
  handled: () => number,
): Promise<void> {
  const deadline = nowMs() + RUN_TIME_LIMIT_MS;
  while (handled() < MESSAGES || (await pendingCount(bench, pending)) > 0) {
    if (nowMs() >= deadline || bench.signal.aborted) {
      throw new Error(`not drained in time (${handled()} handled)`);
    }
    await sleep(DRAINED_POLL_MS);
  }
}

/** A drain run by a library's own loop, ended by {@link drained}. */
function libraryDrain(
  bench: BenchDatabase,
  pending: string,
  seen: { readonly count: number },
  stop: () => Promise<void>,
): Drain {
  const done = drained(bench, pending, () => seen.count);
  done.catch(() => undefined);
  return {
    get handled() {
      return seen.count;
    },
    done,
    stop,
  };
}

/** Runs `work` on one plain pg connection to the bench database. */
async function onBenchConnection(
  bench: BenchDatabase,
  work: (client: pg.PoolClient) => Promise<void>,
): Promise<void> {
  const pool = createPool({
    connectionString: bench.url,
    max: 1,
    applicationName: 'holdline-bench-prefill',
  });
  const client = await pool.connect();
  try {
    await work(client);
  } finally {
    client.release();
    await pool.end();
  }
}

const ALL_SYSTEMS: readonly System[] = [
  sqlLoopSystem({
    key: 'raw',
    label: `raw SQL: SKIP LOCKED lease of ${LEASE_MAX} + DELETE ack`,
    settings: { loops: CONSUMER_LOOPS, leaseMax: LEASE_MAX },
    reset: `TRUNCATE ${RAW_QUEUE_TABLE}`,
    table: RAW_QUEUE_TABLE,
    pending: `SELECT count(*)::integer AS n FROM ${RAW_QUEUE_TABLE}`,
    insertBatch: RAW_INSERT_BATCH,
    insertParams: (payloads) => [payloads],
    step: (client, max) => rawLeaseAndAck(client, max),
  }),
  sqlLoopSystem({
    key: PGMQ_KEY,
    label: `${PGMQ_SOURCE}: read of ${LEASE_MAX} + delete(ids[])`,
    settings: { loops: CONSUMER_LOOPS, leaseMax: LEASE_MAX, read: PGMQ_READ },
    reset: pgmqReset(QUEUE),
    table: pgmqTable(QUEUE),
    pending: pgmqCount(QUEUE),
    insertBatch: PGMQ_SEND_BATCH,
    insertParams: (payloads) => [QUEUE, payloads],
    step: (client, max) => pgmqReadAndDelete(client, QUEUE, max),
  }),
  holdlineEngineSystem(false),
  // Issue 17's target: the archive on costs at most 15% of the drain (on ≥ 0.85× off).
  holdlineEngineSystem(true),
  {
    key: 'holdline-worker',
    label: `holdline in-process worker: consume(), concurrency ${HOLDLINE_WORKER_SETTINGS.concurrency}`,
    settings: { api: 'createInProcessClient + consume', ...HOLDLINE_WORKER_SETTINGS },
    reset: HOLDLINE_RESET,
    tables: ['holdline.messages'],
    pending: HOLDLINE_PENDING,
    prefill: holdlinePrefill,
    prepare: async (bench) => {
      const client = await createWorkerClient(bench.url, logger);
      return {
        start: () => {
          const seen = counter();
          const worker = startWorker(client, QUEUE, () => seen.handle());
          return Promise.resolve(
            libraryDrain(bench, HOLDLINE_PENDING, seen, () => worker.stop({ timeoutMs: 5_000 })),
          );
        },
        close: () => client.close(),
      };
    },
  },
  {
    key: 'holdline-http',
    label: `holdline service over HTTP (GraphQL): receive max ${LEASE_MAX} + ackBatch`,
    settings: {
      api: 'createClient({ url }).receive + ackBatch',
      loops: CONSUMER_LOOPS,
      max: LEASE_MAX,
      service: HTTP_SERVICE_ENV,
      auth: 'on, token scoped to the queue; default rate limit',
    },
    reset: HOLDLINE_RESET,
    tables: ['holdline.messages'],
    pending: HOLDLINE_PENDING,
    prefill: holdlinePrefill,
    // The service runs in a child process (`holdline serve`), started before the clock.
    // As production runs: authentication on, a token scoped to the queue, the default
    // per-token rate limit (two requests per 1,000 messages stay far below it).
    prepare: async (bench) => {
      const token = await createToken(bench.admin, {
        name: `bench-drain-${++httpTokens}`,
        scopes: `send:${QUEUE},receive:${QUEUE}`,
      });
      const service = await startService(bench.url, HTTP_SERVICE_ENV, {
        unset: ['RATE_LIMIT_PER_SECOND'],
      });
      const client = createClient({ url: service.url, token: token.secret });
      return {
        start: () =>
          Promise.resolve(
            receiveLoops(MESSAGES, async (max) => {
              const deliveries = await client.receive(QUEUE, { max });
              if (deliveries.length > 0) await client.ackBatch(deliveries.map((d) => d.receipt));
              return deliveries.length;
            }),
          ),
        close: async () => {
          await client.close();
          await service.stop();
        },
      };
    },
  },
  {
    key: 'pg-boss',
    label: `pg-boss ${peerVersion('pg-boss')} work(), ${PG_BOSS_WORK_SETTINGS.workers} workers × batchSize ${PG_BOSS_WORK_SETTINGS.batchSize}`,
    settings: {
      api: 'boss.work(queue, { batchSize, pollingIntervalSeconds }, handler) × workers',
      ...PG_BOSS_WORK_SETTINGS,
    },
    reset: PG_BOSS_RESET,
    tables: ['pgboss.job'],
    pending: PG_BOSS_PENDING_BENCH,
    prefill: async (bench) => {
      const boss = new PgBoss(pgBossOptions(bench.url, 2));
      boss.on('error', reportPgBossError);
      await boss.start();
      try {
        await prefill((batch) => boss.insert(batch.map((p) => ({ name: QUEUE, data: p }))));
      } finally {
        await boss.stop({ graceful: false, wait: true });
      }
    },
    prepare: async (bench) => {
      const { workers, batchSize, pollingIntervalSeconds, poolMax } = PG_BOSS_WORK_SETTINGS;
      const boss = new PgBoss(pgBossOptions(bench.url, poolMax));
      boss.on('error', reportPgBossError);
      await boss.start();
      return {
        start: async () => {
          const seen = counter();
          for (let w = 0; w < workers; w++) {
            await boss.work(QUEUE, { batchSize, pollingIntervalSeconds }, (jobs) => {
              seen.handle(jobs.length);
              return Promise.resolve();
            });
          }
          return libraryDrain(bench, PG_BOSS_PENDING_BENCH, seen, () => boss.offWork(QUEUE));
        },
        close: () => boss.stop({ graceful: false, wait: true }),
      };
    },
  },
  {
    key: 'graphile-worker',
    label: `graphile-worker ${peerVersion('graphile-worker')} run(), concurrency ${GRAPHILE_RUN_SETTINGS.concurrency}, localQueue ${GRAPHILE_RUN_SETTINGS.localQueueSize}`,
    settings: { api: 'run({ taskList, concurrency, preset.worker })', ...GRAPHILE_RUN_SETTINGS },
    reset: GRAPHILE_RESET,
    tables: ['graphile_worker._private_jobs'],
    pending: GRAPHILE_PENDING,
    prefill: async (bench) => {
      const utils = await graphileWorkerUtils(bench.url, 2);
      try {
        await prefill((batch) =>
          utils.addJobs(batch.map((p) => ({ identifier: QUEUE, payload: p }))),
        );
      } finally {
        await utils.release();
      }
    },
    // run() connects its pool and starts in one call, so its start-up is on the clock.
    prepare: (bench) =>
      Promise.resolve({
        start: async () => {
          const seen = counter();
          const runner = await runGraphileWorker(bench.url, QUEUE, () => seen.handle());
          return libraryDrain(bench, GRAPHILE_PENDING, seen, () => runner.stop());
        },
        close: () => Promise.resolve(),
      }),
  },
];

/**
 * A system drained with bare SQL: prefilled with `insertBatch` (its parameters made by
 * `insertParams` from a batch's payloads as JSON), drained by CONSUMER_LOOPS loops that each
 * run `step` (lease up to max, delete them; resolve with how many) on a connection of a pool
 * of their own.
 */
function sqlLoopSystem(options: {
  key: string;
  label: string;
  settings: Record<string, unknown>;
  reset: string;
  table: string;
  pending: string;
  insertBatch: string;
  insertParams: (payloads: string[]) => unknown[];
  step: (client: pg.PoolClient, max: number) => Promise<number>;
}): System {
  return {
    key: options.key,
    label: options.label,
    settings: options.settings,
    reset: options.reset,
    tables: [options.table],
    pending: options.pending,
    prefill: (bench) =>
      onBenchConnection(bench, (client) =>
        prefill(async (batch) => {
          await client.query(
            options.insertBatch,
            options.insertParams(batch.map((p) => JSON.stringify(p))),
          );
        }),
      ),
    prepare: (bench) => {
      const pool = createPool({
        connectionString: bench.url,
        max: CONSUMER_LOOPS,
        applicationName: CONSUMER_APPLICATION_NAME,
      });
      return Promise.resolve({
        start: () =>
          Promise.resolve(
            receiveLoops(MESSAGES, (max) =>
              onPoolClient(pool, (client) => options.step(client, max)),
            ),
          ),
        close: () => pool.end(),
      });
    },
  };
}

/**
 * W3's engine loop (receive of LEASE_MAX + ackBatch); with `archive`, the queue's archive is
 * on, so every ack also writes the message into holdline.message_archive (its day
 * partitions made beforehand, as the leader makes them).
 */
function holdlineEngineSystem(archive: boolean): System {
  return {
    key: archive ? 'holdline-engine-archive' : 'holdline-engine',
    label: `holdline engine loop: receive max ${LEASE_MAX} + ackBatch${archive ? ', archive on' : ''}`,
    settings: {
      loops: CONSUMER_LOOPS,
      max: LEASE_MAX,
      api: 'QueueEngine.receive + ackBatch',
      archiveSeconds: archive ? ARCHIVE_SECONDS : 0,
    },
    reset: HOLDLINE_RESET,
    tables: archive ? ['holdline.messages', 'holdline.message_archive'] : ['holdline.messages'],
    pending: HOLDLINE_PENDING,
    prefill: async (bench) => {
      if (archive) {
        await sql`UPDATE holdline.queues SET archive_seconds = ${ARCHIVE_SECONDS} WHERE name = ${QUEUE}`.execute(
          bench.admin,
        );
        await sql`SELECT holdline.archive_create_partitions()`.execute(bench.admin);
      }
      await holdlinePrefill(bench);
    },
    prepare: (bench) => {
      const db = createDatabase(
        createPool({
          connectionString: bench.url,
          max: CONSUMER_LOOPS,
          applicationName: CONSUMER_APPLICATION_NAME,
        }),
      );
      const engine = new QueueEngine({ db, logger });
      engine.start();
      return Promise.resolve({
        start: () =>
          Promise.resolve(
            receiveLoops(MESSAGES, async (max) => {
              const deliveries = await engine.receive({ queue: QUEUE, max });
              if (deliveries.length > 0) await engine.ackBatch(deliveries.map((d) => d.receipt));
              return deliveries.length;
            }),
          ),
        close: async () => {
          await engine.stop();
          await db.destroy();
        },
      });
    },
  };
}

/** BENCH_SYSTEMS=holdline-engine,holdline-engine-archive compares the archive on and off alone. */
const SYSTEMS = selectedSystems(ALL_SYSTEMS);

function reportPgBossError(error: unknown): void {
  process.stderr.write(`pg-boss: ${String(error)}\n`);
}

async function holdlinePrefill(bench: BenchDatabase): Promise<void> {
  await prefill((batch) =>
    sendBatch(bench.admin, { queue: QUEUE, messages: batch.map((p) => ({ payload: p })) }),
  );
}

interface Measurement {
  system: string;
  repetition: number;
  messages: number;
  elapsedMs: number;
  messagesPerSecond: number;
  quietBeforeStart: QuietCheck;
}

async function measure(
  bench: BenchDatabase,
  system: System,
  repetition: number,
): Promise<Measurement> {
  await sql.raw(system.reset).execute(bench.admin);
  await system.prefill(bench);
  for (const table of system.tables) await sql.raw(`VACUUM ANALYZE ${table}`).execute(bench.admin);
  await checkpoint(bench.admin);
  const before = await pendingCount(bench, system.pending);
  if (before !== MESSAGES) throw new Error(`${system.key}: prefilled ${before}, not ${MESSAGES}`);
  const prepared = await system.prepare(bench);
  try {
    const quietBeforeStart = await waitForQuietMachine({
      minIdle: QUIET_MIN_IDLE,
      windowMs: QUIET_WINDOW_MS,
      timeoutMs: QUIET_TIMEOUT_MS,
    });
    const startedAt = nowMs();
    const drain = await prepared.start();
    try {
      await drain.done;
    } finally {
      await drain.stop();
    }
    const elapsedMs = nowMs() - startedAt;
    const left = await pendingCount(bench, system.pending);
    if (left !== 0) throw new Error(`${system.key}: ${left} messages left after the drain`);
    return {
      system: system.key,
      repetition,
      messages: MESSAGES,
      elapsedMs,
      messagesPerSecond: (MESSAGES / elapsedMs) * 1000,
      quietBeforeStart,
    };
  } finally {
    await prepared.close();
  }
}

function summarise(measurements: readonly Measurement[]): RateSummary[] {
  return summariseRates(SYSTEMS, measurements, (m) => m.messagesPerSecond).map(({ rate }) => rate);
}

function table(summaries: readonly RateSummary[]): string {
  return markdownTable(
    ['system', 'msgs/s (median)', 'min–max', '× raw', '× pgmq'],
    summaries.map((s) => [
      s.label,
      formatCount(s.medianPerSecond),
      `${formatCount(s.minPerSecond)}–${formatCount(s.maxPerSecond)}`,
      `${formatFixed(s.ratioToRaw, 2)}×`,
      formatRatio(s.ratioToPgmq),
    ]),
  );
}

async function main(): Promise<void> {
  await withBenchDatabase(async (bench) => {
    await installAllSystems(bench, QUEUE);
    const pgmq = await installPgmq(bench, QUEUE);
    if (!pgmq.installed) process.stderr.write(`pgmq left out: ${pgmq.reason}\n`);

    await runComparison({
      name: BENCH,
      smoke: args.smoke,
      database: bench,
      parameters: {
        messages: MESSAGES,
        peers: { ...peerVersions(), pgmq: PGMQ_SOURCE },
        settings: Object.fromEntries(SYSTEMS.map((s) => [s.key, s.settings])),
      },
      systems: SYSTEMS,
      repetitions: REPETITIONS,
      measure,
      skip: (system) => (system.key === PGMQ_KEY && !pgmq.installed ? pgmq.reason : undefined),
      progress: (m) => `${formatCount(m.messagesPerSecond)} msgs/s`,
      summarise,
      caption: ({ measurements, quietRuns }) =>
        `Drain of ${formatCount(MESSAGES)} pre-filled messages with a no-op handler, ` +
        `${REPETITIONS} repetition(s) interleaved; median and min–max over repetitions; ` +
        `${quietRuns} of ${measurements.length} runs started on a machine ` +
        `≥${QUIET_MIN_IDLE * 100}% idle.`,
      table,
    });
  });
}

await main();
