/**
 * W7, push capacity (tracker issue 15, target 1): the highest paced rate at which a consumer
 * pushed to by the service handles every message with commit→handler p99 ≤ 100 ms, through
 * a `holdline serve` process with authentication on and a scoped token, against RabbitMQ in
 * the same run. A rate ladder (250, 500, 1,000, 2,000, 4,000, 8,000 msgs/s, 10 s a step),
 * systems interleaved per rate; a system stops climbing after its first failed step, but
 * still runs 500/s, the rate of the p50 target, so that the target has a figure.
 *
 * - worker over HTTP: the TypeScript client's consume(queue, handler, { concurrency: 64 });
 * - graphql-ws: a `deliveries(queue, prefetch: 64)` subscription over WebSocket, acked with
 *   ackBatch mutations on the same socket (first receipt at once, the rest batched while one
 *   is in flight);
 * - SSE + ack each: `deliveries(queue, prefetch: 64)` over Server-Sent Events and one HTTP
 *   `ack(receipt)` request per delivery, a few in flight;
 * - RabbitMQ (amqplib): durable queue, persistent messages, publisher confirms, prefetch 64,
 *   one ack per delivery. Skipped with a note on stderr when the broker does not answer.
 *
 * Producer: one message per transaction at a fixed rate (the harness's paced producer, as
 * W4); a message's clock starts when its send committed (holdline) or was confirmed
 * (RabbitMQ). Targets: worker and graphql-ws capacity ≥ RabbitMQ's, SSE ≥ half of it, each
 * p50 ≤ 5 ms at 500/s.
 *
 *   npx tsx bench/push.ts [--smoke] [--seconds N] [--repetitions N] [--rate R]
 *
 * Prints one JSON line per step, one summary per system, then two markdown tables (every
 * step; capacity and targets). See bench/README.md.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { sql } from 'kysely';
import { createToken } from '../src/auth/index.ts';
import { createClient } from '../src/client/index.ts';
import { createQueue } from '../src/queue/operations.ts';
import { parseBenchArgs } from './harness/args.ts';
import { waitUntil } from './harness/clock.ts';
import { waitingConsumerCount } from './harness/consumer.ts';
import { processCpuMs } from './harness/cpu.ts';
import { committedTransactions, withBenchDatabase } from './harness/database.ts';
import type { BenchDatabase } from './harness/database.ts';
import { DeliveryLatencies } from './harness/delivery-latency.ts';
import { runComparison } from './harness/comparison.ts';
import type { BenchSystem } from './harness/interleave.ts';
import { holdlineProducer, runPacedProducer } from './harness/paced-producer.ts';
import type { PacedRunResult, TimedProducer } from './harness/paced-producer.ts';
import { waitForQuietMachine } from './harness/quiet.ts';
import type { QuietCheck } from './harness/quiet.ts';
import {
  openRabbitMq,
  rabbitMqAddress,
  rabbitMqBrokerPid,
  rabbitMqProducer,
  rabbitMqUrl,
  startRabbitMqConsumer,
} from './harness/rabbitmq.ts';
import type { RabbitMqPeer } from './harness/rabbitmq.ts';
import { formatCount, formatFixed, markdownTable } from './harness/report.ts';
import { startService } from './harness/service.ts';
import { median } from './harness/stats.ts';
import type { LatencySummary } from './harness/stats.ts';
import { startSseConsumer } from './harness/sse-consumer.ts';
import { startSubscriptionConsumer } from './harness/subscription-consumer.ts';

const BENCH = 'push';
const args = parseBenchArgs(process.argv.slice(2), ['seconds', 'repetitions', 'rate']);

/**
 * The issue's ladder; the smoke run's two tiny rates only check that every path runs.
 * `--rate N` runs that one rate instead: to compare the cost per message of two commits.
 */
const RATES: readonly number[] =
  args.numbers.rate !== undefined
    ? [Math.round(args.numbers.rate)]
    : args.smoke
      ? [20, 40]
      : [250, 500, 1_000, 2_000, 4_000, 8_000];
const STEP_SECONDS = args.numbers.seconds ?? (args.smoke ? 1 : 10);
const REPETITIONS = Math.round(args.numbers.repetitions ?? 1);
/** Untimed messages first, at the step's rate: connections warm, JIT warm, consumer running. */
const WARMUP_SECONDS = 0.5;
const WARMUP_MESSAGES_MIN = 10;
/** A step passes with commit→handler p99 at most this, nothing lost, the rate held. */
const P99_LIMIT_MS = 100;
/** The producer held the rate when it sent at least this share of it. */
const RATE_HELD_SHARE = 0.95;
/** How long after a step's last send every message must have been handled. */
const GRACE_MS = 5_000;
/** The issue's median target, and the rate it applies at (the smoke run: its top rate). */
const P50_TARGET_MS = 5;
const P50_TARGET_RATE = args.smoke ? RATES[RATES.length - 1]! : 500;
const IDLE_WAITING_TIMEOUT_MS = 5_000;
const QUIET_MIN_IDLE = 0.9;
const QUIET_WINDOW_MS = args.smoke ? 50 : 1_000;
const QUIET_TIMEOUT_MS = args.smoke ? 0 : 10_000;

/** Unacked deliveries per consumer (subscription prefetch, basic.qos): the issue's 64. */
const PREFETCH = 64;
const WORKER_CONCURRENCY = 64;
/** SSE's ack requests in flight at once: a few, on fetch's keep-alive connections. */
const SSE_ACKS_IN_FLIGHT = 4;
/**
 * Sends in flight for holdline's producer, one connection each: single sends commit in
 * about a millisecond, so 16 keep 8,000/s from queueing behind each other when the machine
 * can commit that fast at all (W1: 8 producers reach about 4,800/s on their own).
 */
const HOLDLINE_PRODUCER_CONNECTIONS = 16;
/** RabbitMQ's producer: confirm channels, and publishes awaiting their confirm at once. */
const RABBITMQ_CONFIRM_CHANNELS = 4;
const RABBITMQ_PUBLISHES_IN_FLIGHT = 64;

const QUEUE = 'bench';
/** Not admin: what a producer and a consumer of the bench queues need, nothing more. */
const TOKEN_SCOPES = 'send:bench*,receive:bench*';
const TOKEN_NAME = 'bench-push';
const HOLDLINE_RESET =
  'TRUNCATE holdline.messages, holdline.dequeue_counts, holdline.waiting_consumers';
/**
 * The service as production runs it: authentication on (HOST is loopback, where it would be
 * off by default), and the per-token rate limit at the service's DEFAULT — this bench
 * measures the default, whatever it is at the commit measured, so RATE_LIMIT_PER_SECOND
 * and RATE_LIMIT_BURST are neither set here nor inherited from the shell. The reaper is off
 * as in the other benches (no lease expires in a run that passes).
 */
const PUSH_SERVICE_ENV = { AUTH_REQUIRED: 'true', REAPER_ENABLED: 'false', POOL_MAX: '10' };
const RATE_LIMIT_VARIABLES = ['RATE_LIMIT_PER_SECOND', 'RATE_LIMIT_BURST'] as const;

const require = createRequire(import.meta.url);
/** amqplib's exports leave out its package.json: read it beside the resolved entry point. */
const AMQPLIB_VERSION = (
  JSON.parse(
    readFileSync(path.join(path.dirname(require.resolve('amqplib')), 'package.json'), 'utf8'),
  ) as { version: string }
).version;

/** What every system's runs share: the bench database, the token, the broker if it answered. */
interface PushContext {
  bench: BenchDatabase;
  /** The scoped token's secret. */
  token: string;
  rabbitMq: RabbitMqPeer | undefined;
  /** Why RabbitMQ is left out, when it is. */
  rabbitMqSkipped: string | undefined;
  /** The broker's pid on this machine, for its CPU time; undefined where not visible. */
  brokerPid: number | undefined;
}

/** Counts against the token's rate limit during a run (undefined for RabbitMQ). */
interface RequestCounts {
  /** HTTP requests and WebSocket operations made (each counts one against the limit). */
  requests: number;
  /** Of those, refused with RATE_LIMITED. */
  rateLimited: number;
  /** Failures the worker survived (its workerError events); undefined for the others. */
  workerErrors?: number;
}

/** A consumer running for one step, and the server (service or broker) behind it. */
interface RunningPush {
  /** CPU ms the server process has used so far; undefined where it cannot be read. */
  serverCpuMs(): Promise<number | undefined>;
  /** True once the consumer is idle-waiting, so that a send wakes it. Default: at once. */
  inPlace?: () => Promise<boolean>;
  counts(): RequestCounts | undefined;
  /** Stops it; rethrows a failure it had while running. */
  stop(): Promise<void>;
}

/** A target of the issue on a system's capacity, relative to RabbitMQ's. */
interface CapacityTarget {
  /** Share of RabbitMQ's capacity to reach: 1, or 0.5 for SSE. */
  shareOfRabbitMq: number;
}

interface System extends BenchSystem {
  settings: Record<string, unknown>;
  capacityTarget?: CapacityTarget;
  /** Whether the p50 target at P50_TARGET_RATE applies. */
  p50Target: boolean;
  /** Most sends in flight for its producer. */
  producerInFlight: number;
  /** Whether its messages live in the bench database (its transactions are counted). */
  usesPostgres: boolean;
  reset(context: PushContext): Promise<void>;
  openProducer(context: PushContext): Promise<TimedProducer>;
  start(context: PushContext, onPayload: (payload: unknown) => void): Promise<RunningPush>;
}

/** One rung of the ladder for one system: the unit the interleave runs. */
interface Step extends BenchSystem {
  system: System;
  ratePerSecond: number;
}

const holdlineIdleWaiting = async (bench: BenchDatabase): Promise<boolean> =>
  (await waitingConsumerCount(bench.admin, QUEUE)) > 0;

const resetHoldline = async (context: PushContext): Promise<void> => {
  // No service runs between steps, so no wait registration is live: the table is emptied
  // too, or a killed service's rows (the reaper, which removes them, is off) would make
  // every send NOTIFY and fake the idle-waiting check.
  await sql.raw(HOLDLINE_RESET).execute(context.bench.admin);
};

const openHoldlineProducer = (context: PushContext): Promise<TimedProducer> =>
  Promise.resolve(holdlineProducer(context.bench.url, QUEUE, HOLDLINE_PRODUCER_CONNECTIONS));

const startPushService = (context: PushContext) =>
  startService(context.bench.url, PUSH_SERVICE_ENV, { unset: RATE_LIMIT_VARIABLES });

/** A fetch that counts the requests it makes and the 429s (RATE_LIMITED) it gets back. */
function countingFetch(): { counts: RequestCounts; fetch: typeof fetch } {
  const counts: RequestCounts = { requests: 0, rateLimited: 0 };
  return {
    counts,
    fetch: async (input, init) => {
      counts.requests++;
      const response = await fetch(input, init);
      if (response.status === 429) counts.rateLimited++;
      return response;
    },
  };
}

/** Runs `work` on a started service; stops the service if `work` fails. */
async function onService(
  context: PushContext,
  work: (service: Awaited<ReturnType<typeof startPushService>>) => Promise<RunningPush>,
): Promise<RunningPush> {
  const service = await startPushService(context);
  try {
    return await work(service);
  } catch (error) {
    await service.stop();
    throw error;
  }
}

const SYSTEMS: readonly System[] = [
  {
    key: 'worker-http',
    usesPostgres: true,
    label: `holdline worker over HTTP: consume(), concurrency ${WORKER_CONCURRENCY}`,
    settings: {
      api: 'createClient({ url, token }).consume(queue, handler, { concurrency })',
      concurrency: WORKER_CONCURRENCY,
      clientDefaults: 'waitSeconds, ackDelayMs, ackBatchSize and retries as shipped',
    },
    capacityTarget: { shareOfRabbitMq: 1 },
    p50Target: true,
    producerInFlight: HOLDLINE_PRODUCER_CONNECTIONS,
    reset: resetHoldline,
    openProducer: openHoldlineProducer,
    start: (context, onPayload) =>
      onService(context, (service) => {
        const counted = countingFetch();
        // The client's own retries stay on, as a user gets them: a RATE_LIMITED request is
        // retried with its backoff; the counting fetch sees every attempt.
        const client = createClient({
          url: service.url,
          token: context.token,
          fetch: counted.fetch,
        });
        let workerErrors = 0;
        const worker = client.consume(QUEUE, (message) => onPayload(message.payload), {
          concurrency: WORKER_CONCURRENCY,
        });
        worker.on('workerError', () => workerErrors++);
        return Promise.resolve({
          serverCpuMs: () => service.cpuMs(),
          inPlace: () => holdlineIdleWaiting(context.bench),
          counts: () => ({ ...counted.counts, workerErrors }),
          async stop() {
            try {
              await worker.stop({ timeoutMs: 5_000 });
              await client.close();
            } finally {
              await service.stop();
            }
          },
        });
      }),
  },
  {
    key: 'graphql-ws',
    usesPostgres: true,
    label: `holdline graphql-ws subscription, prefetch ${PREFETCH}, ackBatch on the socket`,
    settings: {
      api: 'subscription deliveries(queue, prefetch) over graphql-ws; ackBatch mutations on the same socket',
      prefetch: PREFETCH,
      acks: 'first at once, the rest batched while one is in flight; RATE_LIMITED retried after Retry-After',
    },
    capacityTarget: { shareOfRabbitMq: 1 },
    p50Target: true,
    producerInFlight: HOLDLINE_PRODUCER_CONNECTIONS,
    reset: resetHoldline,
    openProducer: openHoldlineProducer,
    start: (context, onPayload) =>
      onService(context, (service) => {
        const consumer = startSubscriptionConsumer({
          serviceUrl: service.url,
          queue: QUEUE,
          prefetch: PREFETCH,
          onPayload,
          token: context.token,
          acks: 'websocket',
        });
        return Promise.resolve({
          serverCpuMs: () => service.cpuMs(),
          inPlace: () => holdlineIdleWaiting(context.bench),
          // The subscription is one operation; each ackBatch another.
          counts: () => ({ requests: 1 + consumer.ackCalls, rateLimited: consumer.rateLimited }),
          async stop() {
            try {
              await consumer.stop();
            } finally {
              await service.stop();
            }
          },
        });
      }),
  },
  {
    key: 'sse-ack-each',
    usesPostgres: true,
    label: `holdline SSE subscription, prefetch ${PREFETCH}, one HTTP ack per delivery`,
    settings: {
      api: 'subscription deliveries(queue, prefetch) over SSE (POST, Accept: text/event-stream); ack(receipt) over HTTP',
      prefetch: PREFETCH,
      acksInFlight: SSE_ACKS_IN_FLIGHT,
      acks: 'one request per delivery; RATE_LIMITED retried after Retry-After',
    },
    capacityTarget: { shareOfRabbitMq: 0.5 },
    p50Target: true,
    producerInFlight: HOLDLINE_PRODUCER_CONNECTIONS,
    reset: resetHoldline,
    openProducer: openHoldlineProducer,
    start: (context, onPayload) =>
      onService(context, async (service) => {
        const consumer = await startSseConsumer({
          serviceUrl: service.url,
          queue: QUEUE,
          prefetch: PREFETCH,
          onPayload,
          token: context.token,
          acksInFlight: SSE_ACKS_IN_FLIGHT,
        });
        return {
          serverCpuMs: () => service.cpuMs(),
          inPlace: () => holdlineIdleWaiting(context.bench),
          counts: () => ({ requests: 1 + consumer.ackCalls, rateLimited: consumer.rateLimited }),
          async stop() {
            try {
              await consumer.stop();
            } finally {
              await service.stop();
            }
          },
        };
      }),
  },
  {
    key: 'rabbitmq',
    usesPostgres: false,
    label: `RabbitMQ (amqplib ${AMQPLIB_VERSION}): durable queue, confirms, prefetch ${PREFETCH}, ack each`,
    settings: {
      producer: `persistent sendToQueue on ${RABBITMQ_CONFIRM_CHANNELS} confirm channels, sent when confirmed`,
      publishesInFlight: RABBITMQ_PUBLISHES_IN_FLIGHT,
      consumer: 'channel.consume, noAck false, channel.prefetch, channel.ack per delivery',
      prefetch: PREFETCH,
      queue: 'durable, classic',
    },
    p50Target: false,
    producerInFlight: RABBITMQ_PUBLISHES_IN_FLIGHT,
    reset: (context) => rabbitMqOf(context).purge(),
    openProducer: (context) => rabbitMqProducer(rabbitMqOf(context), RABBITMQ_CONFIRM_CHANNELS),
    start: async (context, onPayload) => {
      const consumer = await startRabbitMqConsumer(rabbitMqOf(context), PREFETCH, onPayload);
      const pid = context.brokerPid;
      return {
        serverCpuMs: () => (pid === undefined ? Promise.resolve(undefined) : processCpuMs(pid)),
        counts: () => undefined,
        stop: () => consumer.stop(),
      };
    },
  },
];

/** The broker of a context; only called for runs that `skip` let through. */
function rabbitMqOf(context: PushContext): RabbitMqPeer {
  if (context.rabbitMq === undefined) throw new Error('RabbitMQ is not connected');
  return context.rabbitMq;
}

/** Rate-major, so that each rung runs every system before the next rung (A B C D, A B C D). */
const STEPS: readonly Step[] = RATES.flatMap((ratePerSecond) =>
  SYSTEMS.map((system) => ({
    key: `${system.key}@${ratePerSecond}`,
    label: `${system.label} at ${formatCount(ratePerSecond)}/s`,
    system,
    ratePerSecond,
  })),
);

interface Measurement {
  system: string;
  repetition: number;
  ratePerSecond: number;
  warmupMessages: number;
  messages: number;
  producer: PacedRunResult;
  /** Measured messages a handler got within GRACE_MS of the last send. */
  handled: number;
  /** Sent but not handled within the grace period (must be 0). */
  lost: number;
  /** Deliveries of a message already handled (at-least-once redeliveries). */
  duplicates: number;
  /** From the send's commit (holdline) or confirm (RabbitMQ) to the handler being called. */
  commitToHandlerMs: LatencySummary;
  /** From the send's start (the time in the payload) to the handler: adds the commit. */
  sendToHandlerMs: LatencySummary;
  /** CPU µs of the service process (RabbitMQ: the broker) per handled measured message. */
  serverCpuUsPerMessage: number | null;
  /**
   * Committed transactions of the bench database per handled measured message (the send's
   * own included): what the push path costs PostgreSQL. Null for RabbitMQ.
   */
  transactionsPerMessage: number | null;
  /** Requests against the token's rate limit during the measured window, per second. */
  requestsPerSecond: number | null;
  /** Of those, refused with RATE_LIMITED (each waited out and retried). */
  rateLimited: number | null;
  workerErrors: number | null;
  /** Whether the consumer was idle-waiting when the measured sends began. */
  idleWaitingAtStart: boolean | null;
  passed: boolean;
  /** Why the step failed; empty when it passed. */
  failures: string[];
  quietBeforeStart: QuietCheck;
}

/** Waits for `count` handled messages; false when GRACE_MS passes first. */
async function handledWithin(
  latencies: DeliveryLatencies,
  count: number,
  signal: AbortSignal,
): Promise<boolean> {
  try {
    await latencies.waitForHandled(count, GRACE_MS, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * The first failed step per repetition and system: the ladder climbs no further for them,
 * except to the p50 target's rate, which runs anyway so that the target has a figure.
 */
const failedAt = new Map<string, number>();
const failureKey = (repetition: number, system: System): string => `${repetition}:${system.key}`;

async function measure(context: PushContext, step: Step, repetition: number): Promise<Measurement> {
  const { system, ratePerSecond } = step;
  const { bench } = context;
  await system.reset(context);
  const warmupMessages = Math.max(WARMUP_MESSAGES_MIN, Math.ceil(ratePerSecond * WARMUP_SECONDS));
  const messages = Math.round(ratePerSecond * STEP_SECONDS);
  const latencies = new DeliveryLatencies(warmupMessages + messages);
  const failures: string[] = [];
  const producer = await system.openProducer(context);
  try {
    const paced = (first: number, count: number) =>
      runPacedProducer({
        first,
        count,
        ratePerSecond,
        send: producer.send,
        onCommitted: (n, atMs) => latencies.committed(n, atMs),
        maxInFlight: system.producerInFlight,
        signal: bench.signal,
      });
    const running = await system.start(context, (payload) => latencies.handledPayload(payload));
    try {
      await paced(0, warmupMessages);
      if (!(await handledWithin(latencies, warmupMessages, bench.signal))) {
        failures.push(`warm-up not handled within ${GRACE_MS} ms`);
      }
      let idleWaitingAtStart: boolean | null = null;
      const inPlace = running.inPlace;
      if (inPlace !== undefined) {
        idleWaitingAtStart = await waitUntil(
          'an idle-waiting consumer',
          inPlace,
          IDLE_WAITING_TIMEOUT_MS,
        )
          .then(() => true)
          .catch(() => false);
      }
      const quietBeforeStart = await waitForQuietMachine({
        minIdle: QUIET_MIN_IDLE,
        windowMs: QUIET_WINDOW_MS,
        timeoutMs: QUIET_TIMEOUT_MS,
      });
      const countsBefore = running.counts();
      const transactionsBefore = system.usesPostgres ? await committedTransactions(bench) : 0;
      const cpuBefore = await running.serverCpuMs();
      const sent = await paced(warmupMessages, messages);
      const end = warmupMessages + messages;
      await handledWithin(latencies, warmupMessages + sent.sent, bench.signal);
      const cpuAfter = await running.serverCpuMs();
      const transactionsAfter = system.usesPostgres ? await committedTransactions(bench) : 0;
      const countsAfter = running.counts();
      const latency = latencies.summariseMessages(warmupMessages, end);
      const lost = sent.sent - latency.handled;
      if (sent.sentPerSecond < RATE_HELD_SHARE * ratePerSecond) {
        failures.push(`producer held only ${formatCount(sent.sentPerSecond)}/s`);
      }
      if (lost > 0) failures.push(`${formatCount(lost)} not handled within ${GRACE_MS} ms`);
      if (!(latency.commitToHandlerMs.p99 <= P99_LIMIT_MS)) {
        failures.push(
          `p99 ${formatFixed(latency.commitToHandlerMs.p99, 1)} ms > ${P99_LIMIT_MS} ms`,
        );
      }
      const windowSeconds = sent.elapsedMs / 1000;
      const measurement: Measurement = {
        system: system.key,
        repetition,
        ratePerSecond,
        warmupMessages,
        messages,
        producer: sent,
        handled: latency.handled,
        lost,
        duplicates: latencies.duplicates,
        commitToHandlerMs: latency.commitToHandlerMs,
        sendToHandlerMs: latency.sendToHandlerMs,
        serverCpuUsPerMessage:
          cpuBefore === undefined || cpuAfter === undefined || latency.handled === 0
            ? null
            : ((cpuAfter - cpuBefore) * 1000) / latency.handled,
        transactionsPerMessage:
          !system.usesPostgres || latency.handled === 0
            ? null
            : (transactionsAfter - transactionsBefore) / latency.handled,
        requestsPerSecond:
          countsBefore === undefined || countsAfter === undefined
            ? null
            : (countsAfter.requests - countsBefore.requests) / windowSeconds,
        rateLimited:
          countsBefore === undefined || countsAfter === undefined
            ? null
            : countsAfter.rateLimited - countsBefore.rateLimited,
        workerErrors:
          countsBefore?.workerErrors === undefined || countsAfter?.workerErrors === undefined
            ? null
            : countsAfter.workerErrors - countsBefore.workerErrors,
        idleWaitingAtStart,
        passed: failures.length === 0,
        failures,
        quietBeforeStart,
      };
      const key = failureKey(repetition, system);
      if (!measurement.passed && !failedAt.has(key)) failedAt.set(key, ratePerSecond);
      return measurement;
    } finally {
      await running.stop();
    }
  } finally {
    await producer.close();
  }
}

/** One rung of one system over the repetitions that ran it. */
interface StepSummary {
  ratePerSecond: number;
  runs: number;
  passedRuns: number;
  medianSentPerSecond: number;
  medianCommitToHandlerP50Ms: number;
  medianCommitToHandlerP95Ms: number;
  medianCommitToHandlerP99Ms: number;
  maxCommitToHandlerMs: number;
  medianSendToHandlerP99Ms: number;
  maxLost: number;
  maxDuplicates: number;
  medianServerCpuUsPerMessage: number | null;
  medianTransactionsPerMessage: number | null;
  medianRequestsPerSecond: number | null;
  maxRateLimited: number | null;
  failures: string[];
}

/** A target of the issue and whether it was met; null: not measurable in this run. */
interface TargetVerdict {
  target: string;
  met: boolean | null;
  note?: string;
}

interface Summary {
  system: string;
  label: string;
  /** False when the system was left out (RabbitMQ did not answer). */
  available: boolean;
  skippedReason: string | null;
  /** Highest passing rate, median over repetitions; 0 when none passed; null when n/a. */
  capacityPerSecond: number | null;
  capacitiesPerRepetition: number[];
  /** True when it passed the ladder's top rate: its capacity is at least that. */
  passedTopRate: boolean;
  p50TargetRatePerSecond: number;
  /** Median commit→handler p50 at P50_TARGET_RATE; null where that rung did not run. */
  p50AtTargetRateMs: number | null;
  targets: TargetVerdict[];
  steps: StepSummary[];
}

const nullableMedian = (values: readonly (number | null)[]): number | null => {
  const known = values.filter((v): v is number => v !== null);
  return known.length === 0 ? null : median(known);
};

const nullableMax = (values: readonly (number | null)[]): number | null => {
  const known = values.filter((v): v is number => v !== null);
  return known.length === 0 ? null : Math.max(...known);
};

function summariseSteps(runs: readonly Measurement[]): StepSummary[] {
  return RATES.flatMap((ratePerSecond) => {
    const at = runs.filter((m) => m.ratePerSecond === ratePerSecond);
    if (at.length === 0) return [];
    return [
      {
        ratePerSecond,
        runs: at.length,
        passedRuns: at.filter((m) => m.passed).length,
        medianSentPerSecond: median(at.map((m) => m.producer.sentPerSecond)),
        medianCommitToHandlerP50Ms: median(at.map((m) => m.commitToHandlerMs.p50)),
        medianCommitToHandlerP95Ms: median(at.map((m) => m.commitToHandlerMs.p95)),
        medianCommitToHandlerP99Ms: median(at.map((m) => m.commitToHandlerMs.p99)),
        maxCommitToHandlerMs: Math.max(...at.map((m) => m.commitToHandlerMs.max)),
        medianSendToHandlerP99Ms: median(at.map((m) => m.sendToHandlerMs.p99)),
        maxLost: Math.max(...at.map((m) => m.lost)),
        maxDuplicates: Math.max(...at.map((m) => m.duplicates)),
        medianServerCpuUsPerMessage: nullableMedian(at.map((m) => m.serverCpuUsPerMessage)),
        medianTransactionsPerMessage: nullableMedian(at.map((m) => m.transactionsPerMessage)),
        medianRequestsPerSecond: nullableMedian(at.map((m) => m.requestsPerSecond)),
        maxRateLimited: nullableMax(at.map((m) => m.rateLimited)),
        failures: [...new Set(at.flatMap((m) => m.failures))],
      },
    ];
  });
}

function summarise(context: PushContext, measurements: readonly Measurement[]): Summary[] {
  const base = SYSTEMS.map((system) => {
    const runs = measurements.filter((m) => m.system === system.key);
    const available = !(system.key === 'rabbitmq' && context.rabbitMq === undefined);
    // The highest rate reached climbing from the bottom without a failure: a pass at the p50
    // target's rate after a failure below it does not count.
    const capacities = Array.from({ length: REPETITIONS }, (_, i) => {
      let capacity = 0;
      for (const rate of RATES) {
        const run = runs.find((m) => m.repetition === i + 1 && m.ratePerSecond === rate);
        if (run === undefined || !run.passed) break;
        capacity = rate;
      }
      return capacity;
    });
    const top = RATES[RATES.length - 1]!;
    const atTarget = runs.filter((m) => m.ratePerSecond === P50_TARGET_RATE);
    return {
      system,
      summary: {
        system: system.key,
        label: system.label,
        available,
        skippedReason: available ? null : (context.rabbitMqSkipped ?? null),
        capacityPerSecond: available ? median(capacities) : null,
        capacitiesPerRepetition: available ? capacities : [],
        passedTopRate: available && capacities.every((c) => c === top),
        p50TargetRatePerSecond: P50_TARGET_RATE,
        p50AtTargetRateMs:
          atTarget.length === 0 ? null : median(atTarget.map((m) => m.commitToHandlerMs.p50)),
        targets: [] as TargetVerdict[],
        steps: summariseSteps(runs),
      } satisfies Summary,
    };
  });
  const rabbit = base.find((b) => b.system.key === 'rabbitmq')?.summary.capacityPerSecond ?? null;
  for (const { system, summary } of base) {
    const target = system.capacityTarget;
    if (target !== undefined) {
      const share =
        target.shareOfRabbitMq === 1 ? "RabbitMQ's" : `${target.shareOfRabbitMq}× RabbitMQ's`;
      summary.targets.push(
        rabbit === null || summary.capacityPerSecond === null
          ? { target: `capacity ≥ ${share}`, met: null, note: 'RabbitMQ not measured' }
          : {
              target: `capacity ≥ ${share} (${formatCount(rabbit * target.shareOfRabbitMq)}/s)`,
              met: summary.capacityPerSecond >= rabbit * target.shareOfRabbitMq,
            },
      );
    }
    if (system.p50Target) {
      const p50 = summary.p50AtTargetRateMs;
      // The target's rung runs even after a failure below it (see `skip`); a system that
      // was not run there at all (a run cut short) has no figure and misses it.
      summary.targets.push({
        target: `p50 ≤ ${P50_TARGET_MS} ms at ${formatCount(P50_TARGET_RATE)}/s`,
        met: p50 === null ? false : p50 <= P50_TARGET_MS,
        ...(p50 === null ? { note: 'not measured' } : {}),
      });
    }
  }
  return base.map((b) => b.summary);
}

const ms = (value: number): string => formatFixed(value, 1);

function describeCapacity(summary: Summary): string {
  if (summary.capacityPerSecond === null) return 'n/a (skipped)';
  if (summary.capacityPerSecond === 0) return `< ${formatCount(RATES[0]!)}`;
  const text = formatCount(summary.capacityPerSecond);
  return summary.passedTopRate ? `≥ ${text} (top of the ladder)` : text;
}

function describeTargets(summary: Summary): string {
  if (summary.targets.length === 0) return '–';
  return summary.targets
    .map((t) => {
      const verdict = t.met === null ? 'n/a' : t.met ? 'met' : 'missed';
      return `${t.target}: ${verdict}${t.note === undefined ? '' : ` (${t.note})`}`;
    })
    .join('; ');
}

/** The columns of the table of every step. */
const STEP_COLUMNS = [
  'system',
  'rate/s',
  'sent/s',
  'p50 ms',
  'p95 ms',
  'p99 ms',
  'max ms',
  'send→handler p99 ms',
  'lost',
  'dup',
  'server CPU µs/msg',
  'PG transactions/msg',
  'token requests/s (429s)',
  'step',
] as const;

function table(summaries: readonly Summary[]): string {
  const steps = markdownTable(
    STEP_COLUMNS,
    summaries.flatMap((s) => {
      if (!s.available) {
        return [
          [
            s.system,
            ...STEP_COLUMNS.slice(2).map(() => 'n/a'),
            `skipped: ${s.skippedReason ?? ''}`,
          ],
        ];
      }
      return s.steps.map((step) => [
        s.system,
        formatCount(step.ratePerSecond),
        formatCount(step.medianSentPerSecond),
        ms(step.medianCommitToHandlerP50Ms),
        ms(step.medianCommitToHandlerP95Ms),
        ms(step.medianCommitToHandlerP99Ms),
        ms(step.maxCommitToHandlerMs),
        ms(step.medianSendToHandlerP99Ms),
        formatCount(step.maxLost),
        formatCount(step.maxDuplicates),
        step.medianServerCpuUsPerMessage === null
          ? 'n/a'
          : formatCount(step.medianServerCpuUsPerMessage),
        step.medianTransactionsPerMessage === null
          ? '–'
          : formatFixed(step.medianTransactionsPerMessage, 2),
        step.medianRequestsPerSecond === null
          ? '–'
          : `${formatCount(step.medianRequestsPerSecond)} (${formatCount(step.maxRateLimited ?? 0)})`,
        step.passedRuns === step.runs
          ? 'passed'
          : `failed ${step.runs - step.passedRuns}/${step.runs}: ${step.failures.join(', ')}`,
      ]);
    }),
  );
  const capacity = markdownTable(
    [
      'system',
      'capacity msgs/s',
      `p50 at ${formatCount(P50_TARGET_RATE)}/s ms`,
      'targets (issue 15)',
    ],
    summaries.map((s) => [
      s.label,
      describeCapacity(s),
      s.p50AtTargetRateMs === null ? 'n/a' : ms(s.p50AtTargetRateMs),
      describeTargets(s),
    ]),
  );
  return `${steps}\n\n${capacity}`;
}

async function main(): Promise<void> {
  for (const name of RATE_LIMIT_VARIABLES) {
    if (process.env[name] !== undefined) {
      process.stderr.write(`${name} is set here; the service runs without it (its default)\n`);
    }
  }
  const url = rabbitMqUrl();
  const opened = await openRabbitMq(url);
  let rabbitMqSkipped: string | undefined;
  if (opened.peer === undefined) {
    rabbitMqSkipped = `RabbitMQ at ${rabbitMqAddress(url)} did not answer`;
    process.stderr.write(`${rabbitMqSkipped}: skipped (${opened.reason})\n`);
  }
  try {
    await withBenchDatabase(async (bench) => {
      // Set up before any service starts: the queue, and the scoped token its consumers use.
      await createQueue(bench.admin, { name: QUEUE });
      const { secret } = await createToken(bench.admin, { name: TOKEN_NAME, scopes: TOKEN_SCOPES });
      const context: PushContext = {
        bench,
        token: secret,
        rabbitMq: opened.peer,
        rabbitMqSkipped,
        brokerPid: opened.peer === undefined ? undefined : await rabbitMqBrokerPid(),
      };

      await runComparison({
        name: BENCH,
        smoke: args.smoke,
        database: bench,
        parameters: {
          rates: RATES,
          stepSeconds: STEP_SECONDS,
          warmupSeconds: WARMUP_SECONDS,
          p99LimitMs: P99_LIMIT_MS,
          graceMs: GRACE_MS,
          rateHeldShare: RATE_HELD_SHARE,
          holdlineProducerConnections: HOLDLINE_PRODUCER_CONNECTIONS,
          service: PUSH_SERVICE_ENV,
          rateLimit: 'the service default (RATE_LIMIT_PER_SECOND and RATE_LIMIT_BURST unset)',
          tokenScopes: TOKEN_SCOPES,
          rabbitMq:
            opened.peer === undefined
              ? { skipped: rabbitMqSkipped }
              : {
                  version: opened.peer.version,
                  address: rabbitMqAddress(url),
                  amqplib: AMQPLIB_VERSION,
                },
          settings: Object.fromEntries(SYSTEMS.map((s) => [s.key, s.settings])),
        },
        systems: STEPS,
        repetitions: REPETITIONS,
        measure: (_bench, step, repetition) => measure(context, step, repetition),
        skip: (step, repetition) => {
          if (step.system.key === 'rabbitmq' && context.rabbitMq === undefined) {
            return rabbitMqSkipped;
          }
          const failed = failedAt.get(failureKey(repetition, step.system));
          if (failed === undefined) return undefined;
          if (step.system.p50Target && step.ratePerSecond === P50_TARGET_RATE) return undefined;
          return `it failed at ${formatCount(failed)}/s`;
        },
        progress: (m) =>
          `${m.passed ? 'passed' : `failed (${m.failures.join(', ')})`}: ` +
          `p50 ${ms(m.commitToHandlerMs.p50)} ms, p99 ${ms(m.commitToHandlerMs.p99)} ms, ` +
          `sent ${formatCount(m.producer.sentPerSecond)}/s`,
        summarise: (measurements) => summarise(context, measurements),
        caption: ({ measurements, quietRuns }) =>
          `Push capacity: paced sends (one per transaction; RabbitMQ: persistent, confirmed) at ` +
          `${RATES.map(formatCount).join(', ')} msgs/s for ${STEP_SECONDS} s a step, systems ` +
          `interleaved per rate, ${REPETITIONS} repetition(s); a step passes with ` +
          `commit→handler p99 ≤ ${P99_LIMIT_MS} ms, nothing lost within ${GRACE_MS / 1000} s, ` +
          `and the rate held (≥ ${RATE_HELD_SHARE * 100}%). The service runs with ` +
          `authentication on, a token scoped ${TOKEN_SCOPES}, and the default per-token rate ` +
          `limit. Latency is from the send's commit (RabbitMQ: its publisher confirm) to the ` +
          `handler, negative where the broker delivered a message before its confirm reached ` +
          `the producer; in ms, medians over repetitions (max: of all); ${quietRuns} of ` +
          `${measurements.length} runs started on a machine ≥${QUIET_MIN_IDLE * 100}% idle.`,
        table,
      });
    });
  } finally {
    await opened.peer?.close();
  }
}

await main();
