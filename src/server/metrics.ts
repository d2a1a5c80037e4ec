import { getOperationAST } from 'graphql';
import type { ExecutionArgs } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Queue, QueueEngine, RateLimit } from '../queue/index.ts';
import type { Reaper } from '../reaper/reaper.ts';

/** Latency buckets in seconds, from a millisecond wake-up to a minute-long backlog. */
const LATENCY_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

/** The Prometheus registry of one process and the GraphQL plugin that feeds it. */
export interface Metrics {
  registry: Registry;
  /** A yoga plugin counting GraphQL operations and timing them. */
  graphqlPlugin: Plugin;
}

/**
 * Creates the process's metrics: queue depths read from holdline.queue_stats at scrape time,
 * counters fed by the engine's and the reaper's events, latency histograms, GraphQL request
 * metrics, all prefixed `holdline_`; and Node's process metrics (RSS, CPU, event loop lag)
 * under their standard names (`process_*`, `nodejs_*`), which Node dashboards look for.
 */
export function createMetrics(engine: QueueEngine, reaper: Reaper | undefined): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  // prom-client collects a registry's metrics concurrently, each gauge reading its own values
  // once its collect() is done: gauges filled from one read must each await that read.
  const statsOfScrape = sharedWhilePending(() => engine.allQueueStats());
  const queuesOfScrape = sharedWhilePending(() => engine.listQueues());

  const depth = new Gauge({
    name: 'holdline_queue_messages',
    help: 'Messages in a queue by state (ready, delayed, leased), read at scrape time.',
    labelNames: ['queue', 'state'] as const,
    // Not in prom-client's global registry (its default): a second service in one process
    // (tests, embedders) would fail on the duplicate name.
    registers: [registry],
    async collect() {
      const stats = await statsOfScrape();
      depth.reset();
      for (const s of stats) {
        depth.set({ queue: s.queue, state: 'ready' }, s.ready);
        depth.set({ queue: s.queue, state: 'delayed' }, s.delayed);
        depth.set({ queue: s.queue, state: 'leased' }, s.leased);
      }
    },
  });
  const oldest = new Gauge({
    name: 'holdline_queue_oldest_ready_age_seconds',
    help: 'Seconds the longest-waiting ready message of a queue has been ready (0 with none).',
    labelNames: ['queue'] as const,
    registers: [registry],
    async collect() {
      const stats = await statsOfScrape();
      oldest.reset();
      for (const s of stats) oldest.set({ queue: s.queue }, s.oldestReadyAgeSeconds ?? 0);
    },
  });

  // Flow limits, read from the queues' settings at scrape time; only queues that have one.
  const queueSettingGauge = (
    name: string,
    help: string,
    value: (config: Queue['config']) => number | null,
  ): void => {
    const gauge = new Gauge({
      name,
      help,
      labelNames: ['queue'] as const,
      registers: [registry],
      async collect() {
        const queues = await queuesOfScrape();
        gauge.reset();
        for (const q of queues) {
          const v = value(q.config);
          if (v !== null) gauge.set({ queue: q.name }, v);
        }
      },
    });
  };
  const perSecond = (limit: RateLimit | null): number | null =>
    limit === null ? null : limit.count / limit.perSeconds;
  queueSettingGauge(
    'holdline_queue_max_in_flight',
    "A queue's concurrency cap (maxInFlight): most messages leased at once.",
    (c) => c.maxInFlight,
  );
  queueSettingGauge(
    'holdline_queue_rate_limit_per_second',
    "Deliveries per second a queue's rate limit allows (rateLimit count / perSeconds).",
    (c) => perSecond(c.rateLimit),
  );
  queueSettingGauge(
    'holdline_queue_group_rate_limit_per_second',
    "Deliveries per second of each message group a queue's groupRateLimit allows.",
    (c) => perSecond(c.groupRateLimit),
  );

  const scheduleNext = new Gauge({
    name: 'holdline_schedule_next_tick_timestamp_seconds',
    help: 'When a cron schedule fires next (Unix time); absent while it is paused.',
    labelNames: ['schedule', 'queue'] as const,
    registers: [registry],
    async collect() {
      const schedules = await engine.listSchedules();
      scheduleNext.reset();
      for (const s of schedules) {
        if (!s.paused) {
          scheduleNext.set({ schedule: s.name, queue: s.queue }, s.nextTickAt.getTime() / 1000);
        }
      }
    },
  });

  const counter = (name: string, help: string, labelNames: readonly string[]) =>
    new Counter({ name, help, labelNames, registers: [registry] });
  const sent = counter('holdline_messages_sent_total', 'Messages sent through this process.', [
    'queue',
  ]);
  const delivered = counter(
    'holdline_messages_delivered_total',
    'Deliveries (leases) made by this process.',
    ['queue'],
  );
  const acked = counter(
    'holdline_messages_acked_total',
    'Deliveries acknowledged through this process.',
    ['queue'],
  );
  const nacked = counter(
    'holdline_messages_nacked_total',
    'Deliveries nacked through this process, by outcome.',
    ['queue', 'outcome'],
  );
  const deadLettered = counter(
    'holdline_messages_dead_lettered_total',
    'Messages moved to a dead-letter queue by a nack or by the reaper, by origin queue.',
    ['queue'],
  );
  const expired = counter(
    'holdline_leases_expired_total',
    'Expired leases handled by this process as reaper leader.',
    ['queue'],
  );
  const ticksFired = counter(
    'holdline_schedule_ticks_fired_total',
    'Cron ticks fired (one message each) by this process as reaper leader.',
    ['schedule'],
  );
  const receiveWait = new Histogram({
    name: 'holdline_receive_wait_seconds',
    help: 'Time long-poll receives spent waiting, by whether they got a message.',
    labelNames: ['received'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const endToEnd = new Histogram({
    name: 'holdline_end_to_end_latency_seconds',
    help: 'From a message being sent (its created_at) to its ack.',
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });

  engine.on('sent', (queue, n) => sent.inc({ queue }, n));
  engine.on('delivered', (queue, n) => delivered.inc({ queue }, n));
  engine.on('acked', (queue, age) => {
    acked.inc({ queue });
    endToEnd.observe(Math.max(0, age));
  });
  engine.on('nacked', (queue, outcome) => {
    nacked.inc({ queue, outcome });
    if (outcome === 'dead_lettered') deadLettered.inc({ queue });
  });
  engine.on('waited', (_queue, seconds, received) =>
    receiveWait.observe({ received: String(received) }, seconds),
  );
  reaper?.on('fired', (f) => ticksFired.inc({ schedule: f.schedule }, f.ticks.length));
  reaper?.on('reaped', (r) => {
    expired.inc({ queue: r.queue }, r.messages);
    if (r.deadLetterQueue !== null) deadLettered.inc({ queue: r.queue }, r.messages);
  });

  return { registry, graphqlPlugin: graphqlMetricsPlugin(registry) };
}

/** Counts GraphQL operations by type and outcome and times them (subscriptions: setup only). */
function graphqlMetricsPlugin(registry: Registry): Plugin {
  const requests = new Counter({
    name: 'holdline_graphql_operations_total',
    help: 'GraphQL operations executed, by type and whether the result had errors.',
    labelNames: ['type', 'result'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'holdline_graphql_operation_duration_seconds',
    help: 'Time to execute a GraphQL query or mutation.',
    labelNames: ['type'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  return {
    onExecute({ args }) {
      const type = operationType(args, 'unknown');
      const stop = duration.startTimer({ type });
      return {
        onExecuteDone({ result }) {
          stop();
          const failed =
            'errors' in result && result.errors !== undefined && result.errors.length > 0;
          requests.inc({ type, result: failed ? 'error' : 'ok' });
        },
      };
    },
    onSubscribe({ args }) {
      const type = operationType(args, 'subscription');
      requests.inc({ type, result: 'ok' });
    },
  };
}

/** `args` comes untyped from the plugin API; it is graphql's ExecutionArgs. */
function operationType(args: unknown, fallback: string): string {
  const { document, operationName } = args as ExecutionArgs;
  return getOperationAST(document, operationName)?.operation ?? fallback;
}

/**
 * `read`, shared by the callers that come while one call is in flight (the gauges of one
 * scrape), and called afresh by the next caller after it settles.
 */
function sharedWhilePending<T>(read: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () =>
    (pending ??= read().finally(() => {
      pending = undefined;
    }));
}
