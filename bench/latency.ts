/**
 * W4, latency: a paced producer sends 500 messages a second for 20 s, one per transaction,
 * into a queue whose consumer is idle-waiting; the time from each send's COMMIT to its
 * handler being called, p50 / p95 / p99 / max. Raw LISTEN/NOTIFY, holdline's engine loop,
 * its in-process worker and its GraphQL subscription, pg-boss and graphile-worker, each with
 * its documented low-latency settings. Targets (issue 5): subscription p50 ≤ 5 ms and
 * p99 ≤ 25 ms; in-process p50 ≤ 3 ms.
 *
 *   npx tsx bench/latency.ts [--smoke]
 *
 * Prints one JSON line per measurement, then a markdown table. See bench/README.md.
 */
import { sql } from 'kysely';
import pg from 'pg';
import PgBoss from 'pg-boss';
import pino from 'pino';
import { WAIT_SECONDS_DEFAULT } from '../src/client/index.ts';
import { createPool } from '../src/db/pool.ts';
import { parseBenchArgs } from './harness/args.ts';
import { waitUntil } from './harness/clock.ts';
import { startConsumer, waitingConsumerCount } from './harness/consumer.ts';
import { withBenchDatabase } from './harness/database.ts';
import type { BenchDatabase } from './harness/database.ts';
import { DeliveryLatencies } from './harness/delivery-latency.ts';
import type { DeliveryLatencySummary } from './harness/delivery-latency.ts';
import {
  HOLDLINE_WORKER_SETTINGS,
  LEASE_MAX,
  createWorkerClient,
  startWorker,
} from './harness/drain-consumers.ts';
import type { HoldlineWorkerSettings } from './harness/drain-consumers.ts';
import { runComparison } from './harness/comparison.ts';
import { holdlineProducer, runPacedProducer } from './harness/paced-producer.ts';
import type { PacedRunResult, TimedProducer } from './harness/paced-producer.ts';
import {
  GRAPHILE_RESET,
  PG_BOSS_RESET,
  RAW_ACK_BATCH,
  RAW_INSERT_NOTIFY,
  RAW_LEASE,
  RAW_NOTIFY_CHANNEL,
  RAW_QUEUE_TABLE,
  graphileWorkerUtils,
  runGraphileWorker,
  installAllSystems,
  peerVersion,
  peerVersions,
  pgBossOptions,
} from './harness/peers.ts';
import type { GraphileRunSettings } from './harness/peers.ts';
import { waitForQuietMachine } from './harness/quiet.ts';
import type { QuietCheck } from './harness/quiet.ts';
import { formatCount, formatFixed, markdownTable } from './harness/report.ts';
import { BENCH_SERVICE_ENV, startService } from './harness/service.ts';
import { median } from './harness/stats.ts';
import { startSubscriptionConsumer } from './harness/subscription-consumer.ts';

const BENCH = 'latency';
const args = parseBenchArgs(process.argv.slice(2));

const RATE_PER_SECOND = args.smoke ? 50 : 500;
const DURATION_SECONDS = args.smoke ? 2 : 20;
const MESSAGES = RATE_PER_SECOND * DURATION_SECONDS;
/** Untimed messages first, at the same rate: connections warm, plans cached, consumer running. */
const WARMUP_MESSAGES = args.smoke ? 10 : 100;
const REPETITIONS = args.smoke ? 1 : 3;
/** The producer's connections, so its most sends in flight. */
const PRODUCER_CONNECTIONS = 4;
/** How long after the last send every message must have been handled. */
const HANDLED_TIMEOUT_MS = 30_000;
const IDLE_WAITING_TIMEOUT_MS = 5_000;
const QUIET_MIN_IDLE = 0.9;
const QUIET_WINDOW_MS = args.smoke ? 50 : 1_000;
const QUIET_TIMEOUT_MS = args.smoke ? 0 : 10_000;
const QUEUE = 'bench';
const HOLDLINE_RESET = 'TRUNCATE holdline.messages, holdline.dequeue_counts';

/** The engine loop: a receive that long-polls (waitSeconds), then ackBatch of what came. */
const HOLDLINE_ENGINE_SETTINGS = { max: LEASE_MAX, waitSeconds: 20 } as const;
/**
 * The in-process worker as drain.ts runs it, but with the default long poll of 20 s (what a
 * user gets) instead of drain's 1 s, which only serves to end a drain quickly.
 */
const HOLDLINE_WORKER_LATENCY_SETTINGS = {
  ...HOLDLINE_WORKER_SETTINGS,
  waitSeconds: WAIT_SECONDS_DEFAULT,
} as const satisfies HoldlineWorkerSettings;
/** The subscription may hand out this many unacked deliveries, so acks never hold it up. */
const SUBSCRIPTION_PREFETCH = 100;
/**
 * pg-boss 10 has no LISTEN/NOTIFY: a worker fetches, runs the handler, then waits out
 * pollingIntervalSeconds, whose documented minimum is 0.5 (pg-boss docs, "work()"). One
 * worker taking up to 1,000 jobs per fetch keeps up with 500 messages/s. notifyWorker(id)
 * skips the wait, but only for a producer in the worker's own process, which a separate
 * producer service is not: not used.
 */
const PG_BOSS_LATENCY_SETTINGS = {
  pollingIntervalSeconds: 0.5,
  batchSize: 1_000,
  poolMax: 4,
} as const;
/**
 * graphile-worker: each new job NOTIFYs and idle workers fetch it at once. The local queue
 * "trades latency for throughput" (its option's documentation), so it stays off (the
 * default), and so does completion batching (-1, the default). Eight concurrent jobs on a
 * pool of 10.
 */
const GRAPHILE_LATENCY_SETTINGS = {
  concurrency: 8,
  maxPoolSize: 10,
  completeJobBatchDelay: -1,
  failJobBatchDelay: -1,
} as const satisfies GraphileRunSettings;

const logger = pino({ level: process.env.LOG_LEVEL ?? 'warn' }, pino.destination(2));

/** A consumer running for one measurement. */
interface RunningConsumer {
  /** Stops it; rethrows a failure it had while running. */
  stop(): Promise<void>;
}

/** A target of issue 5 for one system: the largest p50 and p99 allowed, in ms. */
interface LatencyTarget {
  p50Ms: number;
  p99Ms?: number;
}

interface System {
  key: string;
  label: string;
  settings: Record<string, unknown>;
  target?: LatencyTarget;
  /** Empties this system's tables. */
  reset: string;
  openProducer(bench: BenchDatabase): Promise<TimedProducer>;
  /** Starts the consumer; `onPayload` is its handler, called once per delivery. */
  startConsumer(
    bench: BenchDatabase,
    onPayload: (payload: unknown) => void,
  ): Promise<RunningConsumer>;
  /** True once the consumer is idle-waiting, so that a send wakes it. Default: at once. */
  idleWaiting?: (bench: BenchDatabase) => Promise<boolean>;
}

const holdlineIdleWaiting = async (bench: BenchDatabase): Promise<boolean> =>
  (await waitingConsumerCount(bench.admin, QUEUE)) > 0;

const openHoldlineProducer = (bench: BenchDatabase): Promise<TimedProducer> =>
  Promise.resolve(holdlineProducer(bench.url, QUEUE, PRODUCER_CONNECTIONS));

/**
 * The raw LISTEN/NOTIFY consumer: one connection that LISTENs and, on each notification,
 * leases with SKIP LOCKED, calls the handler, and deletes what it leased, until a lease
 * comes back short. Notifications that arrive meanwhile make it look once more.
 */
async function startRawListener(
  bench: BenchDatabase,
  onPayload: (payload: unknown) => void,
): Promise<RunningConsumer> {
  const client = new pg.Client({
    connectionString: bench.url,
    application_name: 'holdline-bench-consumer',
  });
  await client.connect();
  let failure: { error: unknown } | undefined;
  let again = false;
  let draining: Promise<void> | undefined;
  const drain = async (): Promise<void> => {
    do {
      again = false;
      const { rows } = await client.query<{ id: string; payload: unknown }>(RAW_LEASE, [LEASE_MAX]);
      for (const row of rows) onPayload(row.payload);
      if (rows.length > 0) await client.query(RAW_ACK_BATCH, [rows.map((r) => r.id)]);
      if (rows.length === LEASE_MAX) again = true;
    } while (again);
  };
  const wake = (): void => {
    if (draining !== undefined) {
      again = true;
      return;
    }
    draining = drain()
      .catch((error: unknown) => {
        failure ??= { error };
      })
      .finally(() => {
        draining = undefined;
      });
  };
  client.on('notification', wake);
  await client.query(`LISTEN ${RAW_NOTIFY_CHANNEL}`);
  wake();
  return {
    async stop() {
      client.off('notification', wake);
      await draining;
      await client.end();
      if (failure !== undefined) throw failure.error;
    },
  };
}

const SYSTEMS: readonly System[] = [
  {
    key: 'raw',
    label: 'raw LISTEN/NOTIFY: INSERT + pg_notify, listener leases (SKIP LOCKED) + DELETE',
    settings: {
      producer: 'INSERT … RETURNING + pg_notify in one statement',
      consumer: 'one connection: LISTEN, then lease (SKIP LOCKED) + DELETE per notification',
      leaseMax: LEASE_MAX,
    },
    reset: `TRUNCATE ${RAW_QUEUE_TABLE}`,
    openProducer: (bench) => {
      const pool = createPool({
        connectionString: bench.url,
        max: PRODUCER_CONNECTIONS,
        applicationName: 'holdline-bench-producer',
      });
      return Promise.resolve({
        send: async (payload) => {
          await pool.query(RAW_INSERT_NOTIFY, [JSON.stringify(payload)]);
        },
        close: () => pool.end(),
      });
    },
    startConsumer: startRawListener,
  },
  {
    key: 'holdline-engine',
    label: `holdline engine loop: receive (waitSeconds ${HOLDLINE_ENGINE_SETTINGS.waitSeconds}) + ackBatch`,
    settings: { api: 'QueueEngine.receive + ackBatch, Listener', ...HOLDLINE_ENGINE_SETTINGS },
    target: { p50Ms: 3 },
    reset: HOLDLINE_RESET,
    openProducer: openHoldlineProducer,
    startConsumer: async (bench, onPayload) =>
      startConsumer({
        url: bench.url,
        queue: QUEUE,
        logger,
        ...HOLDLINE_ENGINE_SETTINGS,
        // Each receive returns at least one message or waits out waitSeconds.
        maxReceives: Number.MAX_SAFE_INTEGER,
        inPlace: () => holdlineIdleWaiting(bench),
        inPlaceTimeoutMs: IDLE_WAITING_TIMEOUT_MS,
        onDeliveries: (deliveries) => {
          for (const d of deliveries) onPayload(d.message.payload);
        },
      }),
    idleWaiting: holdlineIdleWaiting,
  },
  {
    key: 'holdline-worker',
    label: `holdline in-process worker: consume(), waitSeconds ${HOLDLINE_WORKER_LATENCY_SETTINGS.waitSeconds}`,
    settings: { api: 'createInProcessClient + consume', ...HOLDLINE_WORKER_LATENCY_SETTINGS },
    target: { p50Ms: 3 },
    reset: HOLDLINE_RESET,
    openProducer: openHoldlineProducer,
    startConsumer: async (bench, onPayload) => {
      const client = await createWorkerClient(bench.url, logger, HOLDLINE_WORKER_LATENCY_SETTINGS);
      const worker = startWorker(
        client,
        QUEUE,
        (message) => onPayload(message.payload),
        HOLDLINE_WORKER_LATENCY_SETTINGS,
      );
      return {
        async stop() {
          await worker.stop();
          await client.close();
        },
      };
    },
    idleWaiting: holdlineIdleWaiting,
  },
  {
    key: 'holdline-subscription',
    label: `holdline service, GraphQL subscription deliveries over WebSocket, prefetch ${SUBSCRIPTION_PREFETCH}`,
    settings: {
      api: 'subscription deliveries(queue, prefetch) over graphql-ws; ackBatch over HTTP',
      prefetch: SUBSCRIPTION_PREFETCH,
      service: BENCH_SERVICE_ENV,
    },
    target: { p50Ms: 5, p99Ms: 25 },
    reset: HOLDLINE_RESET,
    openProducer: openHoldlineProducer,
    startConsumer: async (bench, onPayload) => {
      const service = await startService(bench.url, BENCH_SERVICE_ENV);
      const consumer = startSubscriptionConsumer({
        serviceUrl: service.url,
        queue: QUEUE,
        prefetch: SUBSCRIPTION_PREFETCH,
        onPayload,
      });
      return {
        async stop() {
          try {
            await consumer.stop();
          } finally {
            await service.stop();
          }
        },
      };
    },
    idleWaiting: holdlineIdleWaiting,
  },
  {
    key: 'pg-boss',
    label: `pg-boss ${peerVersion('pg-boss')} work(), pollingIntervalSeconds ${PG_BOSS_LATENCY_SETTINGS.pollingIntervalSeconds}`,
    settings: {
      producer: 'boss.send',
      api: 'boss.work(queue, { pollingIntervalSeconds, batchSize }, handler)',
      ...PG_BOSS_LATENCY_SETTINGS,
    },
    reset: PG_BOSS_RESET,
    openProducer: async (bench) => {
      const boss = await startPgBoss(bench, PRODUCER_CONNECTIONS);
      return {
        send: async (payload) => {
          if ((await boss.send(QUEUE, payload)) === null) throw new Error('pg-boss sent nothing');
        },
        close: () => boss.stop({ graceful: false, wait: true }),
      };
    },
    startConsumer: async (bench, onPayload) => {
      const { pollingIntervalSeconds, batchSize, poolMax } = PG_BOSS_LATENCY_SETTINGS;
      const boss = await startPgBoss(bench, poolMax);
      await boss.work(QUEUE, { pollingIntervalSeconds, batchSize }, (jobs) => {
        for (const job of jobs) onPayload(job.data);
        return Promise.resolve();
      });
      return {
        async stop() {
          await boss.offWork(QUEUE);
          await boss.stop({ graceful: false, wait: true });
        },
      };
    },
  },
  {
    key: 'graphile-worker',
    label: `graphile-worker ${peerVersion('graphile-worker')} run(), concurrency ${GRAPHILE_LATENCY_SETTINGS.concurrency}, no local queue`,
    settings: {
      producer: 'workerUtils.addJob',
      api: 'run({ taskList, concurrency, preset.worker })',
      ...GRAPHILE_LATENCY_SETTINGS,
    },
    reset: GRAPHILE_RESET,
    openProducer: async (bench) => {
      const utils = await graphileWorkerUtils(bench.url, PRODUCER_CONNECTIONS);
      return {
        send: async (payload) => {
          await utils.addJob(QUEUE, payload);
        },
        close: async () => {
          await utils.release();
        },
      };
    },
    startConsumer: async (bench, onPayload) => {
      return runGraphileWorker(bench.url, QUEUE, onPayload, GRAPHILE_LATENCY_SETTINGS);
    },
  },
];

async function startPgBoss(bench: BenchDatabase, max: number): Promise<PgBoss> {
  const boss = new PgBoss(pgBossOptions(bench.url, max));
  boss.on('error', (error) => process.stderr.write(`pg-boss: ${String(error)}\n`));
  await boss.start();
  return boss;
}

interface Measurement extends DeliveryLatencySummary {
  system: string;
  repetition: number;
  ratePerSecond: number;
  messages: number;
  producer: PacedRunResult;
  /** Deliveries of a message already handled. */
  duplicates: number;
  quietBeforeStart: QuietCheck;
}

async function measure(
  bench: BenchDatabase,
  system: System,
  repetition: number,
): Promise<Measurement> {
  await sql.raw(system.reset).execute(bench.admin);
  const latencies = new DeliveryLatencies(WARMUP_MESSAGES + MESSAGES);
  const paced = (first: number, count: number, producer: TimedProducer) =>
    runPacedProducer({
      first,
      count,
      ratePerSecond: RATE_PER_SECOND,
      send: producer.send,
      onCommitted: (n, atMs) => latencies.committed(n, atMs),
      maxInFlight: PRODUCER_CONNECTIONS,
      signal: bench.signal,
    });
  const producer = await system.openProducer(bench);
  try {
    const consumer = await system.startConsumer(bench, (payload) =>
      latencies.handledPayload(payload),
    );
    try {
      await paced(0, WARMUP_MESSAGES, producer);
      await latencies.waitForHandled(WARMUP_MESSAGES, HANDLED_TIMEOUT_MS, bench.signal);
      const idleWaiting = system.idleWaiting;
      if (idleWaiting !== undefined) {
        await waitUntil(
          `a consumer idle-waiting on ${QUEUE}`,
          () => idleWaiting(bench),
          IDLE_WAITING_TIMEOUT_MS,
        );
      }
      const quietBeforeStart = await waitForQuietMachine({
        minIdle: QUIET_MIN_IDLE,
        windowMs: QUIET_WINDOW_MS,
        timeoutMs: QUIET_TIMEOUT_MS,
      });
      const sent = await paced(WARMUP_MESSAGES, MESSAGES, producer);
      await latencies.waitForHandled(WARMUP_MESSAGES + MESSAGES, HANDLED_TIMEOUT_MS, bench.signal);
      return {
        system: system.key,
        repetition,
        ratePerSecond: RATE_PER_SECOND,
        messages: MESSAGES,
        ...latencies.summariseMessages(WARMUP_MESSAGES, WARMUP_MESSAGES + MESSAGES),
        producer: sent,
        duplicates: latencies.duplicates,
        quietBeforeStart,
      };
    } finally {
      await consumer.stop();
    }
  } finally {
    await producer.close();
  }
}

interface Summary {
  system: string;
  label: string;
  runs: number;
  /** Medians over repetitions of each run's percentile; max: the largest of any run. */
  medianCommitToHandlerP50Ms: number;
  medianCommitToHandlerP95Ms: number;
  medianCommitToHandlerP99Ms: number;
  maxCommitToHandlerMs: number;
  medianSendToHandlerP50Ms: number;
  medianSendToHandlerP99Ms: number;
  /** Sends per second the paced producer achieved: below the rate, it could not keep up. */
  medianSentPerSecond: number;
  /** Largest lag of the paced producer behind its schedule in any run. */
  maxProducerLagMs: number;
  target: LatencyTarget | null;
  /** Whether the medians meet the target; null where the issue sets none. */
  targetMet: boolean | null;
}

function summarise(measurements: readonly Measurement[]): Summary[] {
  return SYSTEMS.map((system) => {
    const runs = measurements.filter((m) => m.system === system.key);
    const p50 = median(runs.map((m) => m.commitToHandlerMs.p50));
    const p99 = median(runs.map((m) => m.commitToHandlerMs.p99));
    const target = system.target ?? null;
    return {
      system: system.key,
      label: system.label,
      runs: runs.length,
      medianCommitToHandlerP50Ms: p50,
      medianCommitToHandlerP95Ms: median(runs.map((m) => m.commitToHandlerMs.p95)),
      medianCommitToHandlerP99Ms: p99,
      maxCommitToHandlerMs: Math.max(...runs.map((m) => m.commitToHandlerMs.max)),
      medianSendToHandlerP50Ms: median(runs.map((m) => m.sendToHandlerMs.p50)),
      medianSendToHandlerP99Ms: median(runs.map((m) => m.sendToHandlerMs.p99)),
      medianSentPerSecond: median(runs.map((m) => m.producer.sentPerSecond)),
      maxProducerLagMs: Math.max(...runs.map((m) => m.producer.maxLagMs)),
      target,
      targetMet:
        target === null
          ? null
          : p50 <= target.p50Ms && (target.p99Ms === undefined || p99 <= target.p99Ms),
    };
  });
}

function describeTarget(summary: Summary): string {
  const { target, targetMet } = summary;
  if (target === null) return '–';
  const limits = [
    `p50 ≤ ${target.p50Ms}`,
    ...(target.p99Ms === undefined ? [] : [`p99 ≤ ${target.p99Ms}`]),
  ];
  return `${limits.join(', ')} ms: ${targetMet === true ? 'met' : 'missed'}`;
}

function table(summaries: readonly Summary[]): string {
  const ms = (value: number): string => formatFixed(value, 2);
  return markdownTable(
    [
      'system',
      'p50 ms',
      'p95 ms',
      'p99 ms',
      'max ms',
      'send→handler p50 / p99 ms',
      'sent/s',
      'target (issue 5)',
    ],
    summaries.map((s) => [
      s.label,
      ms(s.medianCommitToHandlerP50Ms),
      ms(s.medianCommitToHandlerP95Ms),
      ms(s.medianCommitToHandlerP99Ms),
      ms(s.maxCommitToHandlerMs),
      `${ms(s.medianSendToHandlerP50Ms)} / ${ms(s.medianSendToHandlerP99Ms)}`,
      formatCount(s.medianSentPerSecond),
      describeTarget(s),
    ]),
  );
}

async function main(): Promise<void> {
  await withBenchDatabase(async (bench) => {
    await installAllSystems(bench, QUEUE);

    await runComparison({
      name: BENCH,
      smoke: args.smoke,
      database: bench,
      parameters: {
        ratePerSecond: RATE_PER_SECOND,
        durationSeconds: DURATION_SECONDS,
        warmupMessages: WARMUP_MESSAGES,
        producerConnections: PRODUCER_CONNECTIONS,
        peers: peerVersions(),
        settings: Object.fromEntries(SYSTEMS.map((s) => [s.key, s.settings])),
      },
      systems: SYSTEMS,
      repetitions: REPETITIONS,
      measure,
      progress: (m) =>
        `p50 ${formatFixed(m.commitToHandlerMs.p50, 2)} ms, ` +
        `p99 ${formatFixed(m.commitToHandlerMs.p99, 2)} ms`,
      summarise,
      caption: ({ measurements, quietRuns }) =>
        `Commit→handler latency at ${formatCount(RATE_PER_SECOND)} msgs/s for ${DURATION_SECONDS} s ` +
        `(one message per transaction, consumer idle-waiting), ${REPETITIONS} repetition(s) ` +
        `interleaved; medians over repetitions, max of all; ${quietRuns} of ${measurements.length} ` +
        `runs started on a machine ≥${QUIET_MIN_IDLE * 100}% idle.`,
      table,
    });
  });
}

await main();
