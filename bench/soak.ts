/**
 * W6, soak: 2,000 messages a second for 10 minutes through the service, and what drifts.
 * Everything goes through a `holdline serve` process with authentication on (scoped tokens,
 * the default rate limit, the reaper running): a paced producer in this process sends each
 * message with the client's `send` over HTTP (8 in flight), and a GraphQL `deliveries`
 * subscription over WebSocket receives them and acks on the same socket. Each minute:
 * throughput, send→handler latency (from the producer's call to the handler: the HTTP send,
 * the commit, the push), the size of holdline.messages and its indexes, its dead tuples, the
 * service's RSS (its peak: read every second) and its CPU per message.
 * Targets (issues 5 and 15): throughput and p99 flat within 20% from minute 1 to the last
 * minute, p99 ≤ 25 ms in every minute, table size within 2× of minute 1, RSS below 200 MiB.
 *
 *   npm run bench:soak                            # 10 minutes at 2,000 msgs/s
 *   npx tsx bench/soak.ts [--minutes N] [--rate R] [--smoke]
 *   npx tsx bench/soak.ts --archive-seconds 120 [--partition-seconds 60]   # archive on
 *
 * --smoke: three windows of 2 s at 100 msgs/s (--minutes then counts windows). Not run by
 * `npm run bench`. Prints one JSON line per minute, then a markdown table and the verdicts.
 * See bench/README.md.
 */
import { sql } from 'kysely';
import { createToken } from '../src/auth/index.ts';
import { createQueue } from '../src/queue/operations.ts';
import { parseBenchArgs } from './harness/args.ts';
import { nowMs, sleep, waitUntil } from './harness/clock.ts';
import { waitingConsumerCount } from './harness/consumer.ts';
import { withBenchDatabase } from './harness/database.ts';
import type { BenchDatabase } from './harness/database.ts';
import { DeliveryLatencies } from './harness/delivery-latency.ts';
import type { DeliveryLatencySummary } from './harness/delivery-latency.ts';
import { describeMachine, machineFacts } from './harness/machine.ts';
import { runPacedProducer, serviceProducer } from './harness/paced-producer.ts';
import type { PacedRunResult, SendTimed } from './harness/paced-producer.ts';
import { formatCount, formatFixed, markdownTable, printJsonLine } from './harness/report.ts';
import { ResidentPeakSampler, startService } from './harness/service.ts';
import type { BenchService } from './harness/service.ts';
import { median } from './harness/stats.ts';
import { startSubscriptionConsumer } from './harness/subscription-consumer.ts';

const BENCH = 'soak';
const args = parseBenchArgs(process.argv.slice(2), [
  'minutes',
  'rate',
  'archive-seconds',
  'partition-seconds',
]);
/**
 * --archive-seconds N: the queue archives what it acks for N seconds, and the service's
 * leader keeps archive partitions --partition-seconds wide (default 60): a compressed clock,
 * so that partitions are created and dropped within the soak (issue 17).
 */
const ARCHIVE_SECONDS = args.numbers['archive-seconds'];
const ARCHIVE_PARTITION_SECONDS = args.numbers['partition-seconds'] ?? 60;

const WINDOWS = args.numbers.minutes ?? (args.smoke ? 3 : 10);
const RATE_PER_SECOND = args.numbers.rate ?? (args.smoke ? 100 : 2_000);
/** One reporting window: a minute, or 2 s in a smoke run. */
const WINDOW_MS = args.smoke ? 2_000 : 60_000;
/** What the table and the verdicts call a window. */
const WINDOW_NAME = args.smoke ? 'window' : 'minute';
const MESSAGES = Math.round((RATE_PER_SECOND * WINDOWS * WINDOW_MS) / 1000);
/** One second's worth, untimed, before the clock: connections warm, the stream running. */
const WARMUP_MESSAGES = Math.ceil(RATE_PER_SECOND);
/** Enough connections that single sends at 1,000/s do not queue behind each other. */
const PRODUCER_CONNECTIONS = 8;
const SUBSCRIPTION_PREFETCH = 100;
/**
 * The service as bench/latency.ts runs it, but with the reaper on, as a deployment runs it:
 * over ten minutes its periodic work is part of what is measured.
 */
/** As production runs: authentication on, the reaper on, the default rate limit (unset below). */
const SOAK_SERVICE_ENV: Record<string, string> = {
  AUTH_REQUIRED: 'true',
  REAPER_ENABLED: 'true',
  POOL_MAX: '10',
  ...(ARCHIVE_SECONDS === undefined
    ? {}
    : { ARCHIVE_PARTITION_SECONDS: String(ARCHIVE_PARTITION_SECONDS) }),
};
const HANDLED_TIMEOUT_MS = 60_000;
const IDLE_WAITING_TIMEOUT_MS = 5_000;
const QUEUE = 'bench';

/** Targets of issue 5. */
const THROUGHPUT_DRIFT_MAX = 0.2;
const P99_RISE_MAX = 0.2;
/** Largest send→handler p99 of any window (issue 15), ms. */
const P99_MAX_MS = 25;
const TABLE_GROWTH_MAX = 2;
const RSS_MAX_BYTES = 200 * 2 ** 20;
/** How often the service's RSS is read; a window reports its largest reading. */
const RSS_SAMPLE_INTERVAL_MS = 1_000;

if (!Number.isInteger(WINDOWS)) {
  process.stderr.write(`--minutes must be a whole number, got ${WINDOWS}\n`);
  process.exit(2);
}

/** holdline.messages on disk and in pg_stat_user_tables. */
interface TableStats {
  /** pg_total_relation_size: heap, indexes, TOAST, free space and visibility maps. */
  totalBytes: number;
  /** pg_relation_size of the heap. */
  heapBytes: number;
  /** pg_relation_size of each index, by name. */
  indexBytes: Record<string, number>;
  liveTuples: number;
  deadTuples: number;
  autovacuumCount: number;
}

async function tableStats(bench: BenchDatabase): Promise<TableStats> {
  const { rows } = await sql<Omit<TableStats, 'indexBytes'>>`
    SELECT pg_total_relation_size(s.relid)::float8 AS "totalBytes",
           pg_relation_size(s.relid)::float8 AS "heapBytes",
           s.n_live_tup::float8 AS "liveTuples",
           s.n_dead_tup::float8 AS "deadTuples",
           s.autovacuum_count::float8 AS "autovacuumCount"
    FROM pg_stat_user_tables s
    WHERE s.relid = 'holdline.messages'::regclass
  `.execute(bench.admin);
  const { rows: indexes } = await sql<{ name: string; bytes: number }>`
    SELECT c.relname AS name, pg_relation_size(i.indexrelid)::float8 AS bytes
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE i.indrelid = 'holdline.messages'::regclass
    ORDER BY c.relname
  `.execute(bench.admin);
  return { ...rows[0]!, indexBytes: Object.fromEntries(indexes.map((i) => [i.name, i.bytes])) };
}

/** The archive's partitions (holdline.message_archive), summed, from pg_stat_user_tables. */
interface ArchiveStats {
  partitions: number;
  totalBytes: number;
  liveTuples: number;
  deadTuples: number;
}

async function archiveStats(bench: BenchDatabase): Promise<ArchiveStats> {
  const { rows } = await sql<ArchiveStats>`
    SELECT count(*)::float8 AS partitions,
           coalesce(sum(pg_total_relation_size(i.inhrelid)), 0)::float8 AS "totalBytes",
           coalesce(sum(s.n_live_tup), 0)::float8 AS "liveTuples",
           coalesce(sum(s.n_dead_tup), 0)::float8 AS "deadTuples"
    FROM pg_inherits i
    LEFT JOIN pg_stat_user_tables s ON s.relid = i.inhrelid
    WHERE i.inhparent = 'holdline.message_archive'::regclass
  `.execute(bench.admin);
  return rows[0]!;
}

const sumOf = (values: Record<string, number>): number =>
  Object.values(values).reduce((a, b) => a + b, 0);

/** What one window (a minute; 2 s in a smoke run) saw. */
interface WindowMeasurement extends DeliveryLatencySummary {
  window: number;
  /** Seconds since the clock started, at the window's start and end. */
  fromSeconds: number;
  toSeconds: number;
  /** Sends committed in the window. */
  sent: number;
  /** Messages first handled in the window, per second. */
  handledPerSecond: number;
  table: TableStats;
  /** With --archive-seconds: the archive at the window's end. */
  archive: ArchiveStats | null;
  /** Largest VmRSS of the service process in the window (read every second); null where
   * /proc is missing. */
  serviceRssBytes: number | null;
  /** CPU the service process used in the window per message handled; null without /proc. */
  serviceCpuMsPerMessage: number | null;
}

/** A target and whether the run met it. */
interface Verdict {
  target: string;
  measured: string;
  met: boolean;
}

function verdicts(windows: readonly WindowMeasurement[]): Verdict[] {
  const first = windows[0];
  const last = windows[windows.length - 1];
  if (first === undefined || last === undefined) return [];
  const lastName = `${WINDOW_NAME} ${last.window}`;
  const throughputRatio = last.handledPerSecond / first.handledPerSecond;
  const p99Ratio = last.sendToHandlerMs.p99 / first.sendToHandlerMs.p99;
  const growth = last.table.totalBytes / first.table.totalBytes;
  const worstP99 = Math.max(...windows.map((w) => w.sendToHandlerMs.p99));
  const rss = windows.map((w) => w.serviceRssBytes ?? Number.NaN);
  const maxRss = Math.max(...rss);
  const mib = (bytes: number): string => `${formatFixed(bytes / 2 ** 20, 1)} MiB`;
  const archiveVerdicts: Verdict[] = [];
  if (last.archive !== null && first.archive !== null) {
    // Full once a retention and a partition have passed: compare the last window with the
    // first window after that.
    const settled =
      windows.find((w) => w.fromSeconds >= (ARCHIVE_SECONDS ?? 0) + ARCHIVE_PARTITION_SECONDS) ??
      last;
    const archiveGrowth = last.archive.totalBytes / settled.archive!.totalBytes;
    const deadMax = Math.max(...windows.map((w) => w.archive?.deadTuples ?? 0));
    const partitionsMax = Math.max(...windows.map((w) => w.archive?.partitions ?? 0));
    archiveVerdicts.push(
      {
        target: `archive flat within ${TABLE_GROWTH_MAX}× once full (${lastName} vs ${WINDOW_NAME} ${settled.window})`,
        measured: `${mib(last.archive.totalBytes)} vs ${mib(settled.archive!.totalBytes)} (${formatFixed(archiveGrowth, 2)}×), at most ${formatCount(partitionsMax)} partitions`,
        met: archiveGrowth <= TABLE_GROWTH_MAX,
      },
      {
        target: 'no dead tuples in the archive (any window)',
        measured: formatCount(deadMax),
        met: deadMax === 0,
      },
    );
  }
  return [
    ...archiveVerdicts,
    {
      target: `throughput flat within ${THROUGHPUT_DRIFT_MAX * 100}% (${lastName} vs ${WINDOW_NAME} 1)`,
      measured: `${formatCount(last.handledPerSecond)} vs ${formatCount(first.handledPerSecond)} msgs/s (${formatFixed(throughputRatio, 2)}×)`,
      met: Math.abs(throughputRatio - 1) <= THROUGHPUT_DRIFT_MAX,
    },
    {
      // A p99 that falls is no regression: only a rise counts against the target.
      target: `p99 latency flat within ${P99_RISE_MAX * 100}% (${lastName} vs ${WINDOW_NAME} 1)`,
      measured: `${formatFixed(last.sendToHandlerMs.p99, 2)} vs ${formatFixed(first.sendToHandlerMs.p99, 2)} ms (${formatFixed(p99Ratio, 2)}×)`,
      met: p99Ratio <= 1 + P99_RISE_MAX,
    },
    {
      target: `send→handler p99 ≤ ${P99_MAX_MS} ms in every ${WINDOW_NAME}`,
      measured: `${formatFixed(worstP99, 2)} ms at the worst`,
      met: worstP99 <= P99_MAX_MS,
    },
    {
      target: `holdline.messages within ${TABLE_GROWTH_MAX}× of ${WINDOW_NAME} 1 (${lastName})`,
      measured: `${mib(last.table.totalBytes)} vs ${mib(first.table.totalBytes)} (${formatFixed(growth, 2)}×)`,
      met: growth <= TABLE_GROWTH_MAX,
    },
    {
      target: `service RSS below ${mib(RSS_MAX_BYTES)} (largest of any ${WINDOW_NAME})`,
      measured: Number.isFinite(maxRss) ? mib(maxRss) : 'n/a (no /proc)',
      met: maxRss < RSS_MAX_BYTES,
    },
  ];
}

function table(windows: readonly WindowMeasurement[]): string {
  const mib = (bytes: number): string => formatFixed(bytes / 2 ** 20, 1);
  return markdownTable(
    [
      WINDOW_NAME,
      'sent/s',
      'handled/s',
      'send→handler p50 ms',
      'p99 ms',
      'max ms',
      'table MiB (total)',
      'heap MiB',
      'indexes MiB',
      'dead tuples',
      'autovacuums',
      'service RSS peak MiB',
      'service CPU ms/msg',
      'archive partitions',
      'archive MiB',
      'archive dead tuples',
    ],
    windows.map((w) => [
      String(w.window),
      formatCount(w.sent / (w.toSeconds - w.fromSeconds)),
      formatCount(w.handledPerSecond),
      formatFixed(w.sendToHandlerMs.p50, 2),
      formatFixed(w.sendToHandlerMs.p99, 2),
      formatFixed(w.sendToHandlerMs.max, 2),
      mib(w.table.totalBytes),
      mib(w.table.heapBytes),
      mib(sumOf(w.table.indexBytes)),
      formatCount(w.table.deadTuples),
      formatCount(w.table.autovacuumCount),
      w.serviceRssBytes === null ? 'n/a' : mib(w.serviceRssBytes),
      w.serviceCpuMsPerMessage === null ? 'n/a' : formatFixed(w.serviceCpuMsPerMessage, 2),
      w.archive === null ? '–' : formatCount(w.archive.partitions),
      w.archive === null ? '–' : mib(w.archive.totalBytes),
      w.archive === null ? '–' : formatCount(w.archive.deadTuples),
    ]),
  );
}

/**
 * Runs the producer for WINDOWS windows and samples at the end of each, printing each
 * window's line as it closes. Returns the windows that closed (fewer when interrupted).
 */
async function soak(
  bench: BenchDatabase,
  service: BenchService,
  latencies: DeliveryLatencies,
  send: SendTimed,
): Promise<{ windows: WindowMeasurement[]; producer: PacedRunResult }> {
  let committed = 0;
  const startedAt = nowMs();
  // The producer stops with the last window: one that fell behind its schedule must not run
  // on past the soak's length to send the rest.
  const windowsOver = new AbortController();
  const producing = runPacedProducer({
    first: WARMUP_MESSAGES,
    count: MESSAGES,
    ratePerSecond: RATE_PER_SECOND,
    send,
    onCommitted: (n, atMs) => {
      committed++;
      latencies.committed(n, atMs);
    },
    maxInFlight: PRODUCER_CONNECTIONS,
    signal: AbortSignal.any([bench.signal, windowsOver.signal]),
  });
  producing.catch(() => undefined);
  const windows: WindowMeasurement[] = [];
  let committedBefore = 0;
  let cpuBefore = await service.cpuMs();
  const rssPeaks = new ResidentPeakSampler(service, RSS_SAMPLE_INTERVAL_MS);
  try {
    for (let window = 1; window <= WINDOWS && !bench.signal.aborted; window++) {
      const fromMs = startedAt + (window - 1) * WINDOW_MS;
      const toMs = startedAt + window * WINDOW_MS;
      await sleep(toMs - nowMs(), bench.signal);
      if (bench.signal.aborted) break;
      const sent = committed - committedBefore;
      committedBefore = committed;
      const delivered = latencies.summariseHandledBetween(fromMs, toMs);
      const rss = await rssPeaks.takePeak();
      const cpu = await service.cpuMs();
      const serviceCpuMs =
        cpu === undefined || cpuBefore === undefined ? undefined : cpu - cpuBefore;
      cpuBefore = cpu;
      const measurement: WindowMeasurement = {
        window,
        fromSeconds: (fromMs - startedAt) / 1000,
        toSeconds: (toMs - startedAt) / 1000,
        sent,
        ...delivered,
        handledPerSecond: (delivered.handled / WINDOW_MS) * 1000,
        table: await tableStats(bench),
        archive: ARCHIVE_SECONDS === undefined ? null : await archiveStats(bench),
        serviceRssBytes: rss ?? null,
        serviceCpuMsPerMessage:
          serviceCpuMs === undefined ? null : serviceCpuMs / Math.max(1, delivered.handled),
      };
      windows.push(measurement);
      printJsonLine({ bench: BENCH, kind: 'measurement', ...measurement });
      process.stderr.write(
        `${window}/${WINDOWS}: ${formatCount(measurement.handledPerSecond)} msgs/s, ` +
          `p99 ${formatFixed(delivered.sendToHandlerMs.p99, 2)} ms, ` +
          `table ${formatFixed(measurement.table.totalBytes / 2 ** 20, 1)} MiB, ` +
          `RSS peak ${rss === undefined ? 'n/a' : formatFixed(rss / 2 ** 20, 1)} MiB\n`,
      );
    }
  } finally {
    rssPeaks.stop();
    windowsOver.abort();
  }
  return { windows, producer: await producing };
}

async function main(): Promise<void> {
  await withBenchDatabase(async (bench) => {
    const machine = await machineFacts(bench.admin);
    printJsonLine({
      bench: BENCH,
      kind: 'machine',
      ...machine,
      ratePerSecond: RATE_PER_SECOND,
      windows: WINDOWS,
      windowSeconds: WINDOW_MS / 1000,
      smoke: args.smoke,
      settings: {
        archiveSeconds: ARCHIVE_SECONDS ?? 0,
        producer: `the client's send over HTTP from the bench process, ${PRODUCER_CONNECTIONS} in flight, token send:${QUEUE}`,
        consumer: `subscription deliveries(queue, prefetch ${SUBSCRIPTION_PREFETCH}) over graphql-ws, ackBatch on the same socket, token receive:${QUEUE}`,
        service: SOAK_SERVICE_ENV,
      },
    });
    await createQueue(bench.admin, {
      name: QUEUE,
      config: ARCHIVE_SECONDS === undefined ? {} : { archiveSeconds: ARCHIVE_SECONDS },
    });
    const latencies = new DeliveryLatencies(WARMUP_MESSAGES + MESSAGES);
    const producerToken = await createToken(bench.admin, {
      name: 'soak-producer',
      scopes: `send:${QUEUE}`,
    });
    const consumerToken = await createToken(bench.admin, {
      name: 'soak-consumer',
      scopes: `receive:${QUEUE}`,
    });
    const service = await startService(bench.url, SOAK_SERVICE_ENV, {
      unset: ['RATE_LIMIT_PER_SECOND', 'RATE_LIMIT_BURST'],
    });
    const producer = serviceProducer(service.url, producerToken.secret, QUEUE);
    const consumer = startSubscriptionConsumer({
      serviceUrl: service.url,
      queue: QUEUE,
      prefetch: SUBSCRIPTION_PREFETCH,
      onPayload: (payload) => latencies.handledPayload(payload),
      token: consumerToken.secret,
      acks: 'websocket',
    });
    let result: Awaited<ReturnType<typeof soak>>;
    try {
      await runPacedProducer({
        first: 0,
        count: WARMUP_MESSAGES,
        ratePerSecond: RATE_PER_SECOND,
        send: producer.send,
        onCommitted: (n, atMs) => latencies.committed(n, atMs),
        maxInFlight: PRODUCER_CONNECTIONS,
        signal: bench.signal,
      });
      await latencies.waitForHandled(WARMUP_MESSAGES, HANDLED_TIMEOUT_MS, bench.signal);
      await waitUntil(
        `the subscription idle-waiting on ${QUEUE}`,
        async () => (await waitingConsumerCount(bench.admin, QUEUE)) > 0,
        IDLE_WAITING_TIMEOUT_MS,
      );
      result = await soak(bench, service, latencies, producer.send);
      if (!bench.signal.aborted) {
        await latencies.waitForHandled(
          WARMUP_MESSAGES + result.producer.sent,
          HANDLED_TIMEOUT_MS,
          bench.signal,
        );
      }
    } finally {
      try {
        await consumer.stop();
      } finally {
        await producer.close();
        await service.stop();
      }
    }

    const { windows, producer: produced } = result;
    const results = verdicts(windows);
    printJsonLine({
      bench: BENCH,
      kind: 'summary',
      system: 'holdline-subscription',
      label: 'holdline service, GraphQL subscription deliveries over WebSocket',
      windows: windows.length,
      medianPerSecond: median(windows.map((w) => w.handledPerSecond)),
      sent: produced.sent,
      handled: latencies.handled - WARMUP_MESSAGES,
      duplicates: latencies.duplicates,
      maxProducerLagMs: produced.maxLagMs,
      verdicts: results,
    });
    const command = `npx tsx bench/soak.ts${process.argv
      .slice(2)
      .map((a) => ` ${a}`)
      .join('')}`;
    process.stdout.write(
      `\n${bench.signal.aborted ? 'Interrupted: ' : ''}Soak at ${formatCount(RATE_PER_SECOND)} msgs/s, ` +
        `${windows.length} of ${WINDOWS} window(s) of ${WINDOW_MS / 1000} s; ` +
        `${formatCount(produced.sent)} sent, ${formatCount(latencies.handled - WARMUP_MESSAGES)} handled, ` +
        `${formatCount(latencies.duplicates)} delivered twice; the producer's largest lag ` +
        `behind its schedule ${formatFixed(produced.maxLagMs, 1)} ms. Latency: send→handler of ` +
        `the messages first handled in the window.\n` +
        `${describeMachine(machine)}\n\`${command}\`\n\n${table(windows)}\n\n` +
        markdownTable(
          ['target (issues 5, 15)', 'measured', 'verdict'],
          results.map((v) => [v.target, v.measured, v.met ? 'met' : 'missed']),
        ) +
        '\n',
    );
  });
}

await main();
