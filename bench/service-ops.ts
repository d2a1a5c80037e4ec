/**
 * W8, the service's cost per operation: the CPU time a `holdline serve` process spends on
 * each GraphQL operation over HTTP, with authentication on and a scoped token (as
 * production runs), at the default per-token rate limit. Single sends and single acks (8
 * clients each), receive of 100 + ackBatch (4 consumers; per message), sendBatch of 500 (4
 * producers; per message). Targets: ≤ 200 µs of service CPU for a single send or ack, ≤ 100
 * µs per message in batches of 100.
 *
 *   npx tsx bench/service-ops.ts [--smoke]
 *
 * Prints one JSON line per measurement, then a markdown table. See bench/README.md.
 */
import { sql } from 'kysely';
import { createToken } from '../src/auth/index.ts';
import { createClient } from '../src/client/index.ts';
import type { HoldlineClient } from '../src/client/index.ts';
import { parseBenchArgs } from './harness/args.ts';
import { nowMs } from './harness/clock.ts';
import { runComparison } from './harness/comparison.ts';
import { committedTransactions, withBenchDatabase } from './harness/database.ts';
import type { BenchDatabase } from './harness/database.ts';
import { waitForQuietMachine } from './harness/quiet.ts';
import type { QuietCheck } from './harness/quiet.ts';
import { formatCount, formatFixed, markdownTable } from './harness/report.ts';
import { startService } from './harness/service.ts';
import type { BenchService } from './harness/service.ts';
import { median } from './harness/stats.ts';

const BENCH = 'service-ops';
const args = parseBenchArgs(process.argv.slice(2));

const OPERATIONS_PER_RUN = args.smoke ? 200 : 5_000;
const REPETITIONS = args.smoke ? 1 : 3;
const SINGLE_CLIENTS = 8;
const BATCH_CLIENTS = 4;
const RECEIVE_MAX = 100;
const SEND_BATCH = 500;
const QUEUE = 'bench';
const QUIET_MIN_IDLE = 0.9;
const QUIET_WINDOW_MS = args.smoke ? 50 : 1_000;
const QUIET_TIMEOUT_MS = args.smoke ? 0 : 10_000;

/** What a run's operation is counted in: requests, or messages for the batch operations. */
interface Operation {
  key: string;
  label: string;
  /** The service CPU target per unit, µs; none for the floor, which only explains the rest. */
  targetMicros: number | undefined;
  /** Unmeasured set-up, then the measured work; resolves with how many units it did. */
  run(
    client: HoldlineClient,
    units: number,
    service: ServiceEndpoint,
  ): Promise<{ measured: () => Promise<number> }>;
}

/** Where the service listens and the scoped token, for requests the client does not make. */
interface ServiceEndpoint {
  url: string;
  token: string;
}

/** Runs `work(i)` for i in 0..total-1 on `concurrency` loops. */
async function loops(
  concurrency: number,
  total: number,
  work: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) await work(next++);
    }),
  );
}

/** Sends `count` messages in batches (unmeasured set-up) and leases them all for a while. */
async function leased(client: HoldlineClient, count: number): Promise<string[]> {
  for (let sent = 0; sent < count; sent += SEND_BATCH) {
    const n = Math.min(SEND_BATCH, count - sent);
    await client.sendBatch(
      QUEUE,
      Array.from({ length: n }, (_, i) => ({ payload: { i } })),
    );
  }
  const receipts: string[] = [];
  while (receipts.length < count) {
    const got = await client.receive(QUEUE, { max: 1000, visibilityTimeoutSeconds: 600 });
    if (got.length === 0) throw new Error(`only ${receipts.length} of ${count} leased`);
    receipts.push(...got.map((d) => d.receipt));
  }
  return receipts;
}

const OPERATIONS: readonly Operation[] = [
  {
    // No engine work, no database: what every request pays for HTTP, GraphQL and the token
    // check, so that the rows below can be read as this floor plus the operation's own cost.
    key: 'floor',
    label: `{ __typename } with the token, ${SINGLE_CLIENTS} clients (per request)`,
    targetMicros: undefined,
    run(_client, units, service) {
      const body = JSON.stringify({ query: '{ __typename }' });
      const request = async (): Promise<void> => {
        const response = await fetch(`${service.url}/graphql`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            authorization: `Bearer ${service.token}`,
          },
          body,
        });
        const result = (await response.json()) as { data?: { __typename?: string } };
        if (result.data?.__typename !== 'Query') {
          throw new Error(`unexpected answer: ${JSON.stringify(result)}`);
        }
      };
      return Promise.resolve({
        measured: async () => {
          await loops(SINGLE_CLIENTS, units, request);
          return units;
        },
      });
    },
  },
  {
    key: 'send',
    label: `single send, ${SINGLE_CLIENTS} clients (per send)`,
    targetMicros: 200,
    run(client, units) {
      return Promise.resolve({
        measured: async () => {
          await loops(SINGLE_CLIENTS, units, (i) => client.send(QUEUE, { payload: { i } }));
          return units;
        },
      });
    },
  },
  {
    key: 'ack',
    label: `single ack, ${SINGLE_CLIENTS} clients (per ack)`,
    targetMicros: 200,
    async run(client, units) {
      const receipts = await leased(client, units);
      return {
        measured: async () => {
          await loops(SINGLE_CLIENTS, receipts.length, (i) => client.ack(receipts[i]!));
          return receipts.length;
        },
      };
    },
  },
  {
    key: 'receive-ack-batch',
    label: `receive ${RECEIVE_MAX} + ackBatch, ${BATCH_CLIENTS} consumers (per message)`,
    targetMicros: 100,
    async run(client, units) {
      for (let sent = 0; sent < units; sent += SEND_BATCH) {
        await client.sendBatch(
          QUEUE,
          Array.from({ length: Math.min(SEND_BATCH, units - sent) }, () => ({ payload: {} })),
        );
      }
      return {
        measured: async () => {
          let done = 0;
          await loops(BATCH_CLIENTS, Math.ceil(units / RECEIVE_MAX), async () => {
            const got = await client.receive(QUEUE, { max: RECEIVE_MAX });
            // Awaited first: `done += await …` would read `done` before the wait and lose
            // the other consumers' counts meanwhile.
            const acked = got.length > 0 ? await client.ackBatch(got.map((d) => d.receipt)) : 0;
            done += acked;
          });
          return done;
        },
      };
    },
  },
  {
    key: 'send-batch',
    label: `sendBatch of ${SEND_BATCH}, ${BATCH_CLIENTS} producers (per message)`,
    targetMicros: 100,
    run(client, units) {
      const batches = Math.max(1, Math.round(units / SEND_BATCH));
      return Promise.resolve({
        measured: async () => {
          await loops(BATCH_CLIENTS, batches, () =>
            client.sendBatch(
              QUEUE,
              Array.from({ length: SEND_BATCH }, (_, i) => ({ payload: { i } })),
            ),
          );
          return batches * SEND_BATCH;
        },
      });
    },
  },
];

interface Measurement {
  system: string;
  repetition: number;
  units: number;
  perSecond: number;
  serviceMicrosPerUnit: number;
  /** Committed transactions per unit (pg_stat_database): how many statements it took. */
  transactionsPerUnit: number;
  quietBeforeStart: QuietCheck;
}

async function measure(
  bench: BenchDatabase,
  service: BenchService,
  client: HoldlineClient,
  endpoint: ServiceEndpoint,
  operation: Operation,
  repetition: number,
): Promise<Measurement> {
  await sql`TRUNCATE holdline.messages`.execute(bench.admin);
  const { measured } = await operation.run(client, OPERATIONS_PER_RUN, endpoint);
  const quietBeforeStart = await waitForQuietMachine({
    minIdle: QUIET_MIN_IDLE,
    windowMs: QUIET_WINDOW_MS,
    timeoutMs: QUIET_TIMEOUT_MS,
  });
  const transactionsBefore = await committedTransactions(bench);
  const cpuBefore = (await service.cpuMs()) ?? NaN;
  const started = nowMs();
  const units = await measured();
  const elapsedMs = nowMs() - started;
  const cpuMs = ((await service.cpuMs()) ?? NaN) - cpuBefore;
  const transactions = (await committedTransactions(bench)) - transactionsBefore;
  return {
    system: operation.key,
    repetition,
    units,
    perSecond: (units / elapsedMs) * 1000,
    serviceMicrosPerUnit: (cpuMs * 1000) / units,
    transactionsPerUnit: transactions / units,
    quietBeforeStart,
  };
}

interface Summary {
  system: string;
  label: string;
  medianPerSecond: number;
  medianServiceMicros: number;
  minServiceMicros: number;
  maxServiceMicros: number;
  medianTransactionsPerUnit: number;
  targetMicros: number | undefined;
  met: boolean | undefined;
}

function summarise(measurements: readonly Measurement[]): Summary[] {
  return OPERATIONS.map((op) => {
    const runs = measurements.filter((m) => m.system === op.key);
    const micros = runs.map((m) => m.serviceMicrosPerUnit);
    const medianServiceMicros = median(micros);
    return {
      system: op.key,
      label: op.label,
      medianPerSecond: median(runs.map((m) => m.perSecond)),
      medianServiceMicros,
      minServiceMicros: Math.min(...micros),
      maxServiceMicros: Math.max(...micros),
      medianTransactionsPerUnit: median(runs.map((m) => m.transactionsPerUnit)),
      targetMicros: op.targetMicros,
      met: op.targetMicros === undefined ? undefined : medianServiceMicros <= op.targetMicros,
    };
  });
}

function table(summaries: readonly Summary[]): string {
  return markdownTable(
    [
      'operation',
      'per second (median)',
      'service CPU µs (median)',
      'min–max',
      'transactions per unit',
      'target',
    ],
    summaries.map((s) => [
      s.label,
      formatCount(s.medianPerSecond),
      formatFixed(s.medianServiceMicros, 0),
      `${formatFixed(s.minServiceMicros, 0)}–${formatFixed(s.maxServiceMicros, 0)}`,
      formatFixed(s.medianTransactionsPerUnit, 2),
      s.targetMicros === undefined
        ? '– (the floor)'
        : `≤ ${s.targetMicros} µs: ${s.met === true ? 'met' : 'missed'}`,
    ]),
  );
}

async function main(): Promise<void> {
  await withBenchDatabase(async (bench) => {
    const admin = await createToken(bench.admin, { name: 'bench-admin', scopes: 'admin' });
    const scoped = await createToken(bench.admin, {
      name: 'bench-scoped',
      scopes: `send:${QUEUE}*,receive:${QUEUE}*`,
    });
    // Authentication on, at the default rate limit: what a deployment runs with.
    const service = await startService(bench.url, {
      AUTH_REQUIRED: 'true',
      REAPER_ENABLED: 'false',
    });
    const setup = createClient({ url: service.url, token: admin.secret });
    const client = createClient({ url: service.url, token: scoped.secret });
    try {
      await setup.createQueue(QUEUE);
      // Warm-up: connections, prepared statements, V8's compiled code.
      await loops(SINGLE_CLIENTS, args.smoke ? 20 : 500, (i) =>
        client.send(QUEUE, { payload: { i } }),
      );
      await runComparison({
        name: BENCH,
        smoke: args.smoke,
        database: bench,
        parameters: {
          operationsPerRun: OPERATIONS_PER_RUN,
          singleClients: SINGLE_CLIENTS,
          batchClients: BATCH_CLIENTS,
          receiveMax: RECEIVE_MAX,
          sendBatch: SEND_BATCH,
          auth: 'on, token scoped to send/receive on bench*',
          rateLimit: 'the service default',
        },
        systems: OPERATIONS,
        repetitions: REPETITIONS,
        measure: (b, op, repetition) =>
          measure(b, service, client, { url: service.url, token: scoped.secret }, op, repetition),
        progress: (m) =>
          `${formatCount(m.perSecond)}/s, service ${formatFixed(m.serviceMicrosPerUnit, 0)} µs`,
        summarise,
        caption: ({ measurements, quietRuns }) =>
          `The service's own CPU time (user + system, /proc) per operation over HTTP, ` +
          `authentication on with a scoped token; ${formatCount(OPERATIONS_PER_RUN)} ` +
          `operations per run, ${REPETITIONS} repetition(s) interleaved, medians; ` +
          `${quietRuns} of ${measurements.length} runs started on a machine ` +
          `≥${QUIET_MIN_IDLE * 100}% idle.`,
        table,
      });
    } finally {
      await client.close();
      await setup.close();
      await service.stop();
    }
  });
}

await main();
