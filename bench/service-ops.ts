/**
 * W8, the service's cost per operation: the CPU time a `holdline serve` process spends on
 * each GraphQL operation over HTTP, with authentication on and a scoped token (as
 * production runs), at the default per-token rate limit. Single sends and single acks (8
 * clients each), receive of 100 + ackBatch (4 consumers; per message), sendBatch of 500 (4
 * producers; per message). Targets: ≤ 200 µs of service CPU for a single send or ack, ≤ 100
 * µs per message in batches of 100. In the same run, the peers of issue 15's target 3:
 * RabbitMQ's confirmed publishes (persistent, 8 confirm channels, one publish in flight on
 * each, as the 8 GraphQL clients; skipped with a note when the broker does not answer), which
 * single sends over GraphQL should match, and the in-process sendBatch of 500 (the engine's
 * own call over a pg pool, 4 producers), which sendBatch over GraphQL should reach 0.8× of.
 *
 *   npx tsx bench/service-ops.ts [--smoke]
 *
 * Prints one JSON line per measurement, then a markdown table. See bench/README.md.
 */
import { sql } from 'kysely';
import { createToken } from '../src/auth/index.ts';
import { createClient } from '../src/client/index.ts';
import { sendBatch } from '../src/queue/operations.ts';
import type { HoldlineClient } from '../src/client/index.ts';
import { parseBenchArgs } from './harness/args.ts';
import { nowMs } from './harness/clock.ts';
import { processCpuMs } from './harness/cpu.ts';
import { runComparison } from './harness/comparison.ts';
import { committedTransactions, withBenchDatabase } from './harness/database.ts';
import type { BenchDatabase } from './harness/database.ts';
import { waitForQuietMachine } from './harness/quiet.ts';
import type { QuietCheck } from './harness/quiet.ts';
import { formatCount, formatFixed, markdownTable } from './harness/report.ts';
import {
  openRabbitMq,
  rabbitMqAddress,
  rabbitMqBrokerPid,
  rabbitMqProducer,
  rabbitMqUrl,
} from './harness/rabbitmq.ts';
import type { RabbitMqPeer } from './harness/rabbitmq.ts';
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
/** The peer rows' keys. */
const IN_PROCESS_SEND_BATCH = 'in-process-send-batch';
const RABBITMQ_PUBLISH = 'rabbitmq-publish';
const QUIET_MIN_IDLE = 0.9;
const QUIET_WINDOW_MS = args.smoke ? 50 : 1_000;
const QUIET_TIMEOUT_MS = args.smoke ? 0 : 10_000;

/** What a run's operation is counted in: requests, or messages for the batch operations. */
interface Operation {
  key: string;
  label: string;
  /** The service CPU target per unit, µs; none for the floor, which only explains the rest. */
  targetMicros: number | undefined;
  /**
   * Whose CPU time is counted: the service's; the broker's (a peer row); none (in-process,
   * where the bench process itself does the work and counts no service).
   */
  cpu: 'service' | 'broker' | 'none';
  /** Unmeasured set-up, then the measured work; resolves with how many units it did. */
  run(context: OperationContext, units: number): Promise<{ measured: () => Promise<number> }>;
}

/** What an operation may use. */
interface OperationContext {
  /** The HTTP client with the scoped token. */
  client: HoldlineClient;
  /** Where the service listens and the scoped token, for requests the client does not make. */
  service: { url: string; token: string };
  bench: BenchDatabase;
  /** The broker, when it answered (only the RabbitMQ row runs then). */
  rabbitMq: RabbitMqPeer | undefined;
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
    cpu: 'service',
    run({ service }, units) {
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
    cpu: 'service',
    run({ client }, units) {
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
    cpu: 'service',
    async run({ client }, units) {
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
    cpu: 'service',
    async run({ client }, units) {
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
    cpu: 'service',
    run({ client }, units) {
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
  {
    key: IN_PROCESS_SEND_BATCH,
    label: `in-process sendBatch of ${SEND_BATCH}, ${BATCH_CLIENTS} producers (per message; peer)`,
    targetMicros: undefined,
    cpu: 'none',
    run({ bench }, units) {
      const batches = Math.max(1, Math.round(units / SEND_BATCH));
      return Promise.resolve({
        measured: async () => {
          await loops(BATCH_CLIENTS, batches, () =>
            sendBatch(bench.admin, {
              queue: QUEUE,
              messages: Array.from({ length: SEND_BATCH }, (_, i) => ({ payload: { i } })),
            }),
          );
          return batches * SEND_BATCH;
        },
      });
    },
  },
  {
    key: RABBITMQ_PUBLISH,
    label: `RabbitMQ publish + confirm, ${SINGLE_CLIENTS} channels (per publish; peer)`,
    targetMicros: undefined,
    cpu: 'broker',
    async run({ rabbitMq }, units) {
      if (rabbitMq === undefined) throw new Error('RabbitMQ did not answer');
      await rabbitMq.purge();
      const producer = await rabbitMqProducer(rabbitMq, SINGLE_CLIENTS);
      return {
        measured: async () => {
          try {
            // One publish in flight per channel: as the 8 clients, each awaiting its answer.
            await loops(SINGLE_CLIENTS, units, (i) =>
              producer.send({ n: i, sentAtMs: 0, pad: '' }),
            );
          } finally {
            await producer.close();
          }
          return units;
        },
      };
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

/** The CPU time so far of whoever does an operation's work (see Operation.cpu), ms. */
async function workerCpuMs(
  operation: Operation,
  service: BenchService,
  brokerPid: number | undefined,
): Promise<number> {
  if (operation.cpu === 'service') return (await service.cpuMs()) ?? NaN;
  if (operation.cpu === 'broker' && brokerPid !== undefined) {
    return (await processCpuMs(brokerPid)) ?? NaN;
  }
  return NaN;
}

async function measure(
  context: OperationContext,
  service: BenchService,
  brokerPid: number | undefined,
  operation: Operation,
  repetition: number,
): Promise<Measurement> {
  const { bench } = context;
  await sql`TRUNCATE holdline.messages`.execute(bench.admin);
  const { measured } = await operation.run(context, OPERATIONS_PER_RUN);
  const quietBeforeStart = await waitForQuietMachine({
    minIdle: QUIET_MIN_IDLE,
    windowMs: QUIET_WINDOW_MS,
    timeoutMs: QUIET_TIMEOUT_MS,
  });
  const transactionsBefore = await committedTransactions(bench);
  const cpuBefore = await workerCpuMs(operation, service, brokerPid);
  const started = nowMs();
  const units = await measured();
  const elapsedMs = nowMs() - started;
  const cpuMs = (await workerCpuMs(operation, service, brokerPid)) - cpuBefore;
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
  /** CPU µs per unit of whoever did the work (Operation.cpu); null when none is counted. */
  medianServiceMicros: number | null;
  minServiceMicros: number | null;
  maxServiceMicros: number | null;
  medianTransactionsPerUnit: number;
  targetMicros: number | undefined;
  met: boolean | undefined;
  /** The throughput target against a peer measured in the same run (issue 15, target 3). */
  peer?: {
    system: string;
    medianPerSecond: number | null;
    /** At least this share of the peer's rate. */
    shareTarget: number;
    ratio: number | null;
    met: boolean | null;
  };
}

/** Issue 15's target 3: over GraphQL against the peer, in the same run. */
const PEER_TARGETS: Readonly<Record<string, { peer: string; shareTarget: number }>> = {
  send: { peer: RABBITMQ_PUBLISH, shareTarget: 1 },
  'send-batch': { peer: IN_PROCESS_SEND_BATCH, shareTarget: 0.8 },
};

const nullableMedian = (values: number[]): number | null => {
  const finite = values.filter(Number.isFinite);
  return finite.length === 0 ? null : median(finite);
};

function summarise(measurements: readonly Measurement[]): Summary[] {
  const perSecond = (key: string): number | null =>
    nullableMedian(measurements.filter((m) => m.system === key).map((m) => m.perSecond));
  return OPERATIONS.filter((op) => measurements.some((m) => m.system === op.key)).map((op) => {
    const runs = measurements.filter((m) => m.system === op.key);
    const micros = runs.map((m) => m.serviceMicrosPerUnit).filter(Number.isFinite);
    const medianServiceMicros = nullableMedian(micros);
    const medianPerSecond = median(runs.map((m) => m.perSecond));
    const target = PEER_TARGETS[op.key];
    const peerPerSecond = target === undefined ? null : perSecond(target.peer);
    const ratio = peerPerSecond === null ? null : medianPerSecond / peerPerSecond;
    return {
      system: op.key,
      label: op.label,
      medianPerSecond,
      medianServiceMicros,
      minServiceMicros: micros.length === 0 ? null : Math.min(...micros),
      maxServiceMicros: micros.length === 0 ? null : Math.max(...micros),
      medianTransactionsPerUnit: median(runs.map((m) => m.transactionsPerUnit)),
      targetMicros: op.targetMicros,
      met:
        op.targetMicros === undefined || medianServiceMicros === null
          ? undefined
          : medianServiceMicros <= op.targetMicros,
      ...(target === undefined
        ? {}
        : {
            peer: {
              system: target.peer,
              medianPerSecond: peerPerSecond,
              shareTarget: target.shareTarget,
              ratio,
              met: ratio === null ? null : ratio >= target.shareTarget,
            },
          }),
    };
  });
}

function cpuTarget(s: Summary): string {
  if (s.targetMicros === undefined) {
    return s.system === 'floor' ? '– (the floor)' : '– (a peer)';
  }
  return `≤ ${s.targetMicros} µs: ${s.met === true ? 'met' : 'missed'}`;
}

function peerTarget(s: Summary): string {
  if (s.peer === undefined) return '–';
  const peer = s.peer;
  const name = OPERATIONS.find((op) => op.key === peer.system)?.label.split(',')[0] ?? '';
  const target = `target ≥ ${formatFixed(peer.shareTarget, 1)}×`;
  if (peer.ratio === null) return `${name}: not measured (${target})`;
  return `${formatFixed(peer.ratio, 2)}× ${name} (${target}): ${peer.met === true ? 'met' : 'missed'}`;
}

function table(summaries: readonly Summary[]): string {
  const micros = (v: number | null): string => (v === null ? 'n/a' : formatFixed(v, 0));
  return markdownTable(
    [
      'operation',
      'per second (median)',
      'CPU µs (median)',
      'min–max',
      'transactions per unit',
      'CPU target',
      'throughput against the peer',
    ],
    summaries.map((s) => [
      s.label,
      formatCount(s.medianPerSecond),
      micros(s.medianServiceMicros),
      s.minServiceMicros === null
        ? 'n/a'
        : `${micros(s.minServiceMicros)}–${micros(s.maxServiceMicros)}`,
      formatFixed(s.medianTransactionsPerUnit, 2),
      cpuTarget(s),
      peerTarget(s),
    ]),
  );
}

async function main(): Promise<void> {
  const rabbit = await openRabbitMq(rabbitMqUrl());
  if (rabbit.peer === undefined) {
    process.stderr.write(
      `RabbitMQ at ${rabbitMqAddress(rabbitMqUrl())} did not answer: its row is skipped (${rabbit.reason})\n`,
    );
  }
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
      const context: OperationContext = {
        client,
        service: { url: service.url, token: scoped.secret },
        bench,
        rabbitMq: rabbit.peer,
      };
      const brokerPid = rabbit.peer === undefined ? undefined : await rabbitMqBrokerPid();
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
          rabbitMq:
            rabbit.peer === undefined
              ? `skipped: ${rabbit.reason}`
              : { version: rabbit.peer.version, address: rabbitMqAddress(rabbit.peer.url) },
        },
        systems: OPERATIONS.filter(
          (op) => op.key !== RABBITMQ_PUBLISH || rabbit.peer !== undefined,
        ),
        repetitions: REPETITIONS,
        measure: (_bench, op, repetition) => measure(context, service, brokerPid, op, repetition),
        progress: (m) =>
          `${formatCount(m.perSecond)}/s, CPU ${formatFixed(m.serviceMicrosPerUnit, 0)} µs`,
        summarise,
        caption: ({ measurements, quietRuns }) =>
          `The service's own CPU time (user + system, /proc) per operation over HTTP, ` +
          `authentication on with a scoped token (the RabbitMQ row: the broker's; the ` +
          `in-process row counts none); ${formatCount(OPERATIONS_PER_RUN)} ` +
          `operations per run, ${REPETITIONS} repetition(s) interleaved, medians; ` +
          `${quietRuns} of ${measurements.length} runs started on a machine ` +
          `≥${QUIET_MIN_IDLE * 100}% idle.`,
        table,
      });
    } finally {
      await client.close();
      await setup.close();
      await service.stop();
      await rabbit.peer?.close();
    }
  });
}

await main();
