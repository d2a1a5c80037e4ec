/**
 * Single sends: how many one-message transactions per second 8 producers commit, holdline
 * against a plain INSERT and pgmq's send (issue 16: ≥ 1.0× pgmq), with and without wake-ups. The issue behind it: the wake-up must
 * not tax producers (DESIGN.md, "Wake-up"), so holdline's single sends keep at least 80% of
 * the plain INSERT's throughput when no consumer of the queue is idle-waiting, and (f), the
 * same send with the wake-up cut out of it, shows what the wake-up itself costs.
 *
 *   npx tsx bench/single-sends.ts [--smoke]
 *
 * Prints one JSON line per measurement, then a markdown table. See bench/README.md.
 */
import { sql } from 'kysely';
import { selectedSystems, summariseRates } from './harness/interleave.ts';
import type { RateSummary } from './harness/interleave.ts';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import pino from 'pino';
import type { Database } from '../src/db/database.ts';
import { createDatabase, createPool } from '../src/db/pool.ts';
import { createQueue, send } from '../src/queue/operations.ts';
import { parseBenchArgs } from './harness/args.ts';
import { startConsumer, startNotificationProbe } from './harness/consumer.ts';
import { withBenchDatabase } from './harness/database.ts';
import type { BenchDatabase } from './harness/database.ts';
import { backendCpu, backendCpuDeltaMs, clientCpuMs } from './harness/cpu.ts';
import type { BackendCpu } from './harness/cpu.ts';
import { runComparison } from './harness/comparison.ts';
import { runProducers } from './harness/producers.ts';
import { machineCpu, otherCpuShare, waitForQuietMachine } from './harness/quiet.ts';
import type { MachineCpu, QuietCheck } from './harness/quiet.ts';
import type { Producer, ProducerRunResult } from './harness/producers.ts';
import { PGMQ_KEY, PGMQ_SEND, installPgmq, pgmqCount, pgmqTable } from './harness/pgmq.ts';
import { formatCount, formatFixed, formatRatio, markdownTable } from './harness/report.ts';
import { median } from './harness/stats.ts';

const BENCH = 'single-sends';
const args = parseBenchArgs(process.argv.slice(2));

const PRODUCERS = 8;
const SENDS = args.smoke ? 400 : 20_000;
const REPETITIONS = args.smoke ? 1 : 5;
const WARMUP_SENDS_PER_PRODUCER = args.smoke ? 5 : 50;
/** A run stops taking sends after this long; the JSON line then says timedOut. */
const RUN_TIME_LIMIT_MS = 120_000;
const CONSUMER_IN_PLACE_TIMEOUT_MS = 5_000;
/** Before each run, wait (at most QUIET_TIMEOUT_MS) for the CPUs to be this idle. */
const QUIET_MIN_IDLE = 0.9;
const QUIET_WINDOW_MS = args.smoke ? 50 : 1_000;
const QUIET_TIMEOUT_MS = args.smoke ? 0 : 60_000;
const QUEUE = 'bench';
const OTHER_QUEUE = 'bench-other';
const PAD = 'x'.repeat(100);
const PRODUCER_APPLICATION_NAME = 'holdline-bench-producer';

const logger = pino({ level: process.env.LOG_LEVEL ?? 'warn' }, pino.destination(2));

/** The plain table of systems (a) and (b): what the hardware commits without holdline. */
const CREATE_RAW_TABLE = `
  CREATE TABLE bench_raw (
    id bigserial PRIMARY KEY,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
  )`;
const INSERT_RAW = 'INSERT INTO bench_raw (payload) VALUES ($1)';
// One statement, so one round trip like (a); the NOTIFY is queued and sent at commit.
const INSERT_RAW_NOTIFY = `
  WITH sent AS (INSERT INTO bench_raw (payload) VALUES ($1) RETURNING id)
  SELECT pg_notify('bench_raw', id::text) FROM sent`;

function payload(n: number): { n: number; pad: string } {
  return { n, pad: PAD };
}

/** What runs beside the producers during a measured run. */
interface Companion {
  /** NOTIFYs on holdline's wake-up channel seen by its LISTEN connection; null: none listens. */
  readonly notifications: number | null;
  stop(): Promise<void>;
}

interface System {
  key: string;
  label: string;
  /** Where the messages land, to check every send committed. */
  table: 'bench_raw' | 'holdline.messages' | 'pgmq';
  /** Whether a consumer deletes messages during the run. */
  drains: boolean;
  producer(pool: pg.Pool, db: Kysely<Database>): Producer;
  /** Starts what runs beside the producers, after the reset and before the clock. */
  companion(bench: BenchDatabase): Promise<Companion>;
}

function rawProducer(pool: pg.Pool, text: string): Producer {
  return async (work) => {
    const client = await pool.connect();
    try {
      await work(async (n) => {
        await client.query(text, [JSON.stringify(payload(n))]);
      });
    } finally {
      client.release();
    }
  };
}

/** Each producer pins one pool connection and calls pgmq.send on it (autocommit). */
function pgmqProducer(pool: pg.Pool): Producer {
  return async (work) => {
    const client = await pool.connect();
    try {
      await work(async (n) => {
        await client.query(PGMQ_SEND, [QUEUE, JSON.stringify(payload(n))]);
      });
    } finally {
      client.release();
    }
  };
}

/** Each producer pins one pool connection and calls the engine's send on it (autocommit). */
function holdlineProducer(_pool: pg.Pool, db: Kysely<Database>): Producer {
  return (work) =>
    db.connection().execute((connection) =>
      work(async (n) => {
        await send(connection, { queue: QUEUE, message: { payload: payload(n) } });
      }),
    );
}

/**
 * The wake-up part of holdline.send_at: the queue lock, taken shared, and the probe of
 * holdline.waiting_consumers that decides whether to NOTIFY (migrations/0004). The lock also
 * keeps a send from racing deleteQueue, so cutting both overstates the wake-up's cost.
 */
const SEND_AT_WAKE_UP_PARTS: readonly RegExp[] = [
  /^[ \t]*PERFORM pg_advisory_xact_lock_shared\([^;]*\);\n/m,
  /^[ \t]*IF EXISTS \(SELECT FROM holdline\.waiting_consumers[^;]*;\s*END IF;\n/m,
];

/**
 * (f)'s companion: replaces holdline.send_at in the bench database by its installed definition
 * with the wake-up parts cut out, and puts the original back when stopped. Cut from what is
 * installed, so (f) follows send_at's body as migrations change it; fails the bench when a
 * part is no longer found rather than measure something else. The producers' warm-up ran the
 * original: each session's first timed send compiles the copy (once, well under 1 ms).
 */
async function withoutWakeUp(bench: BenchDatabase): Promise<Companion> {
  const { rows } = await sql<{ definition: string }>`
    SELECT pg_get_functiondef(
      'holdline.send_at(text, jsonb, timestamptz, integer, text, text, jsonb)'::regprocedure
    ) AS definition
  `.execute(bench.admin);
  const original = rows[0]!.definition;
  let cut = original;
  for (const part of SEND_AT_WAKE_UP_PARTS) {
    if (!part.test(cut)) throw new Error(`holdline.send_at no longer matches ${String(part)}`);
    cut = cut.replace(part, '');
  }
  await sql.raw(cut).execute(bench.admin);
  return {
    notifications: null,
    stop: async () => {
      await sql.raw(original).execute(bench.admin);
    },
  };
}

/** The key of (f), which the holdline rows are set against to show what the wake-up costs. */
const WITHOUT_WAKE_UP = 'holdline-without-wake-up';

const noCompanion = (): Promise<Companion> =>
  Promise.resolve({ notifications: null, stop: () => Promise.resolve() });

async function waitingConsumers(bench: BenchDatabase, queue: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    SELECT count(*)::integer AS n FROM holdline.waiting_consumers WHERE queue = ${queue}
  `.execute(bench.admin);
  return rows[0]!.n;
}

async function expectNoneWaiting(bench: BenchDatabase, queue: string): Promise<void> {
  const waiting = await waitingConsumers(bench, queue);
  if (waiting !== 0) throw new Error(`${waiting} consumers are registered as waiting on ${queue}`);
}

const ALL_SYSTEMS: readonly System[] = [
  {
    key: 'raw',
    label: '(a) raw INSERT',
    table: 'bench_raw',
    drains: false,
    producer: (pool) => rawProducer(pool, INSERT_RAW),
    companion: noCompanion,
  },
  {
    key: 'raw-notify',
    label: '(b) raw INSERT + pg_notify',
    table: 'bench_raw',
    drains: false,
    producer: (pool) => rawProducer(pool, INSERT_RAW_NOTIFY),
    companion: noCompanion,
  },
  {
    key: PGMQ_KEY,
    label: '(p) pgmq.send(queue, msg)',
    table: 'pgmq',
    drains: false,
    producer: pgmqProducer,
    companion: noCompanion,
  },
  {
    key: 'holdline',
    label: '(c) holdline send, no consumer',
    table: 'holdline.messages',
    drains: false,
    producer: holdlineProducer,
    // A bare LISTEN (not a registered consumer) proves no send paid for a NOTIFY.
    companion: async (bench) => {
      await expectNoneWaiting(bench, QUEUE);
      return startNotificationProbe(bench.url, logger);
    },
  },
  {
    key: 'holdline-other-waiting',
    label: '(d) holdline send, consumer idle on another queue',
    table: 'holdline.messages',
    drains: false,
    producer: holdlineProducer,
    companion: async (bench) => {
      const consumer = await startConsumer({
        url: bench.url,
        queue: OTHER_QUEUE,
        logger,
        max: 100,
        waitSeconds: 20,
        maxReceives: 1_000,
        inPlace: async () => (await waitingConsumers(bench, OTHER_QUEUE)) > 0,
        inPlaceTimeoutMs: CONSUMER_IN_PLACE_TIMEOUT_MS,
      });
      try {
        await expectNoneWaiting(bench, QUEUE);
      } catch (error) {
        await consumer.stop();
        throw error;
      }
      return consumer;
    },
  },
  {
    key: 'holdline-draining',
    label: '(e) holdline send, consumer draining the queue',
    table: 'holdline.messages',
    drains: true,
    producer: holdlineProducer,
    companion: (bench) =>
      startConsumer({
        url: bench.url,
        queue: QUEUE,
        logger,
        max: 100,
        waitSeconds: 5,
        maxReceives: SENDS + 1_000,
        // The queue is empty after the reset: the consumer registers as idle-waiting.
        inPlace: async () => (await waitingConsumers(bench, QUEUE)) > 0,
        inPlaceTimeoutMs: CONSUMER_IN_PLACE_TIMEOUT_MS,
      }),
  },
  {
    key: WITHOUT_WAKE_UP,
    label: '(f) holdline send, wake-up cut out of send_at (bench only)',
    table: 'holdline.messages',
    drains: false,
    producer: holdlineProducer,
    companion: withoutWakeUp,
  },
];
/** BENCH_SYSTEMS=pgmq,holdline runs those two (and raw SQL) alone. */
const SYSTEMS = selectedSystems(ALL_SYSTEMS);

/** One measured run of one system. */
interface Measurement extends ProducerRunResult {
  system: string;
  repetition: number;
  notifications: number | null;
  /** Messages the consumer acked during the run (systems that drain). */
  consumed: number | null;
  /** CPU of this Node process per send, µs: producers, and the consumer when there is one. */
  clientCpuUsPerSend: number;
  /** CPU of the 8 producer backends per send, µs; null when /proc is not readable. */
  serverCpuUsPerSend: number | null;
  /** How idle the machine was just before the clock started. */
  quietBeforeStart: QuietCheck;
  /**
   * Share of the machine's CPU that went elsewhere during the run (other processes, and
   * PostgreSQL's own background and consumer backends); high values mean a noisy run.
   */
  otherCpuShare: number | null;
}

let checkpointWarned = false;
/** Why pgmq does not run here (it could not be installed); undefined: it runs. */
let pgmqSkipped: string | undefined;

/** Empties every table the runs write and checkpoints, so each run starts equal. */
async function reset(bench: BenchDatabase): Promise<void> {
  await sql`TRUNCATE bench_raw, holdline.messages, holdline.dequeue_counts`.execute(bench.admin);
  if (pgmqSkipped === undefined) await sql.raw(`TRUNCATE ${pgmqTable(QUEUE)}`).execute(bench.admin);
  try {
    // After a checkpoint every run pays the same full-page writes, none hits a timed one.
    await sql`CHECKPOINT`.execute(bench.admin);
  } catch (error) {
    if (!checkpointWarned) process.stderr.write(`no CHECKPOINT between runs: ${String(error)}\n`);
    checkpointWarned = true;
  }
}

async function countRows(bench: BenchDatabase, system: System): Promise<number> {
  const { rows } =
    system.table === 'bench_raw'
      ? await sql<{ n: number }>`SELECT count(*)::integer AS n FROM bench_raw`.execute(bench.admin)
      : system.table === 'pgmq'
        ? await sql.raw<{ n: number }>(pgmqCount(QUEUE)).execute(bench.admin)
        : await sql<{ n: number }>`
            SELECT count(*)::integer AS n FROM holdline.messages WHERE queue = ${QUEUE}
          `.execute(bench.admin);
  return rows[0]!.n;
}

async function measure(
  bench: BenchDatabase,
  system: System,
  repetition: number,
): Promise<Measurement> {
  const pool = createPool({
    connectionString: bench.url,
    max: PRODUCERS,
    applicationName: PRODUCER_APPLICATION_NAME,
  });
  const db = createDatabase(pool);
  let companion: Companion | undefined;
  let clientCpuAtStart = 0;
  let serverCpuAtStart: BackendCpu | undefined;
  let quietBeforeStart: QuietCheck = { idle: null, waitedMs: 0, quiet: true };
  let machineAtStart: MachineCpu | undefined;
  try {
    const result = await runProducers({
      producers: PRODUCERS,
      total: SENDS,
      warmupPerProducer: WARMUP_SENDS_PER_PRODUCER,
      timeLimitMs: RUN_TIME_LIMIT_MS,
      signal: bench.signal,
      producer: system.producer(pool, db),
      beforeStart: async () => {
        await reset(bench);
        companion = await system.companion(bench);
        quietBeforeStart = await waitForQuietMachine({
          minIdle: QUIET_MIN_IDLE,
          windowMs: QUIET_WINDOW_MS,
          timeoutMs: QUIET_TIMEOUT_MS,
        });
        serverCpuAtStart = await backendCpu(bench.admin, PRODUCER_APPLICATION_NAME);
        machineAtStart = await machineCpu();
        clientCpuAtStart = clientCpuMs();
      },
    });
    const clientCpu = clientCpuMs() - clientCpuAtStart;
    const machineAtEnd = await machineCpu();
    const serverCpu = backendCpuDeltaMs(
      serverCpuAtStart,
      await backendCpu(bench.admin, PRODUCER_APPLICATION_NAME),
    );
    const notifications = companion?.notifications ?? null;
    const running = companion;
    companion = undefined;
    await running?.stop();

    const rows = await countRows(bench, system);
    if (system.drains ? rows > result.sends : rows !== result.sends) {
      throw new Error(`${system.key}: ${result.sends} sends committed but ${rows} rows found`);
    }
    return {
      system: system.key,
      repetition,
      ...result,
      notifications,
      consumed: system.drains ? result.sends - rows : null,
      clientCpuUsPerSend: (clientCpu * 1000) / result.sends,
      serverCpuUsPerSend: serverCpu === undefined ? null : (serverCpu * 1000) / result.sends,
      quietBeforeStart,
      otherCpuShare: otherCpuShare(machineAtStart, machineAtEnd, clientCpu + (serverCpu ?? 0)),
    };
  } finally {
    await companion?.stop();
    await db.destroy();
  }
}

type Summary = RateSummary & {
  /** Median sends/s over (f)'s: what the wake-up costs; null for the raw systems. */
  ratioToWithoutWakeUp: number | null;
  medianP50Ms: number;
  medianP99Ms: number;
  medianNotifications: number | null;
  medianConsumed: number | null;
  medianClientCpuUsPerSend: number;
  medianServerCpuUsPerSend: number | null;
};

function summarise(measurements: readonly Measurement[]): Summary[] {
  const medianOrNull = (values: (number | null)[]): number | null => {
    const present = values.filter((v): v is number => v !== null);
    return present.length === 0 ? null : median(present);
  };
  const rates = summariseRates(SYSTEMS, measurements, (m) => m.sendsPerSecond);
  const withoutWakeUp = rates.find(({ rate }) => rate.system === WITHOUT_WAKE_UP)?.rate;
  const sendsThroughHoldline = (key: string): boolean =>
    SYSTEMS.some((system) => system.key === key && system.table === 'holdline.messages');
  return rates.map(({ rate, runs }) => ({
    ...rate,
    ratioToWithoutWakeUp:
      withoutWakeUp === undefined || !sendsThroughHoldline(rate.system)
        ? null
        : rate.medianPerSecond / withoutWakeUp.medianPerSecond,
    medianP50Ms: median(runs.map((m) => m.latencyMs.p50)),
    medianP99Ms: median(runs.map((m) => m.latencyMs.p99)),
    medianNotifications: medianOrNull(runs.map((m) => m.notifications)),
    medianConsumed: medianOrNull(runs.map((m) => m.consumed)),
    medianClientCpuUsPerSend: median(runs.map((m) => m.clientCpuUsPerSend)),
    medianServerCpuUsPerSend: medianOrNull(runs.map((m) => m.serverCpuUsPerSend)),
  }));
}

function table(summaries: readonly Summary[]): string {
  return markdownTable(
    [
      'system',
      'sends/s (median)',
      'min–max',
      '× raw',
      '× pgmq',
      '× (f)',
      'p50 ms',
      'p99 ms',
      'CPU µs/send: Node',
      'CPU µs/send: PG backends',
      'wake-up NOTIFYs received',
    ],
    summaries.map((s) => [
      s.label,
      formatCount(s.medianPerSecond),
      `${formatCount(s.minPerSecond)}–${formatCount(s.maxPerSecond)}`,
      `${formatFixed(s.ratioToRaw, 2)}×`,
      formatRatio(s.ratioToPgmq),
      formatRatio(s.ratioToWithoutWakeUp),
      formatFixed(s.medianP50Ms, 2),
      formatFixed(s.medianP99Ms, 2),
      formatCount(s.medianClientCpuUsPerSend),
      s.medianServerCpuUsPerSend === null ? 'n/a' : formatCount(s.medianServerCpuUsPerSend),
      s.medianNotifications === null ? '–' : formatCount(s.medianNotifications),
    ]),
  );
}

async function main(): Promise<void> {
  await withBenchDatabase(async (bench) => {
    await sql.raw(CREATE_RAW_TABLE).execute(bench.admin);
    await createQueue(bench.admin, { name: QUEUE });
    await createQueue(bench.admin, { name: OTHER_QUEUE });
    const pgmq = await installPgmq(bench, QUEUE);
    if (!pgmq.installed) {
      pgmqSkipped = pgmq.reason;
      process.stderr.write(`pgmq left out: ${pgmq.reason}\n`);
    }

    const measurements = await runComparison({
      name: BENCH,
      smoke: args.smoke,
      database: bench,
      parameters: {
        producers: PRODUCERS,
        sends: SENDS,
      },
      systems: SYSTEMS,
      repetitions: REPETITIONS,
      measure,
      skip: (system) => (system.key === PGMQ_KEY ? pgmqSkipped : undefined),
      measurementFields: { producers: PRODUCERS },
      progress: (m) => `${formatCount(m.sendsPerSecond)} sends/s`,
      summarise,
      caption: ({ measurements, quietRuns }) => {
        const otherShares = measurements.flatMap((m) =>
          m.otherCpuShare === null ? [] : [m.otherCpuShare],
        );
        const otherLoad =
          otherShares.length === 0
            ? ''
            : ` CPU used by anything else during a run: median ` +
              `${formatFixed(median(otherShares) * 100, 0)}%, ` +
              `max ${formatFixed(Math.max(...otherShares) * 100, 0)}%.`;
        return (
          `${PRODUCERS} producers, ${formatCount(SENDS)} single sends per run, ` +
          `${REPETITIONS} repetition(s) interleaved; median and min–max over repetitions; ` +
          `${quietRuns} of ${measurements.length} runs started on a machine ` +
          `≥${QUIET_MIN_IDLE * 100}% idle.${otherLoad}`
        );
      },
      table,
    });
    if (measurements?.some((m) => m.timedOut)) {
      process.stderr.write(`some runs hit the ${RUN_TIME_LIMIT_MS} ms limit (timedOut)\n`);
      process.exitCode = 1;
    }
  });
}

await main();
