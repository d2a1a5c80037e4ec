/**
 * W8's operations, this checkout against a baseline checkout, interleaved: the service's CPU
 * per operation (or per message) of two `holdline serve` processes side by side on one
 * database, one from each checkout, measured in turns (A B, B A, A B, …) after a warm-up
 * round, with authentication on and a scoped token as in W8. For a change to the service
 * on a shared, noisy machine: the ratio of medians says more than two separate runs.
 *
 *   BASELINE=/path/to/other/checkout npx tsx bench/service-ab.ts [--smoke] [--operations N] [--repetitions N]
 *
 * The baseline is a checkout with its build in dist/ (`npm run build`; its node_modules
 * may be a symlink to this one's), e.g. made with
 * `git archive <commit> | tar -x -C /tmp/base && ln -s $PWD/node_modules /tmp/base/ &&
 * (cd /tmp/base && npm run build)`. Build this checkout too, or its service runs through tsx.
 * Operations: `{ __typename }`, single send, single ack (8 clients each), receive 100 and
 * 1,000 + ackBatch (4 consumers; per message). Prints one JSON line per measurement, then a
 * markdown table: medians, B/A (B is this checkout).
 */
import path from 'node:path';
import { sql } from 'kysely';
import { createToken } from '../src/auth/index.ts';
import { createClient } from '../src/client/index.ts';
import type { HoldlineClient } from '../src/client/index.ts';
import { parseBenchArgs } from './harness/args.ts';
import { nowMs, sleep } from './harness/clock.ts';
import { withBenchDatabase } from './harness/database.ts';
import { formatFixed, markdownTable } from './harness/report.ts';
import { startService } from './harness/service.ts';
import type { BenchService } from './harness/service.ts';
import { median } from './harness/stats.ts';

const args = parseBenchArgs(process.argv.slice(2), ['operations', 'repetitions']);
const OPERATIONS = args.numbers.operations ?? (args.smoke ? 100 : 3_000);
const REPETITIONS = args.numbers.repetitions ?? (args.smoke ? 1 : 5);
const SINGLE_CLIENTS = 8;
const BATCH_CLIENTS = 4;
const SEND_BATCH = 500;
const QUEUE = 'bench';
const SIDES = ['A', 'B'] as const;
type Side = (typeof SIDES)[number];

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

async function prefill(client: HoldlineClient, count: number): Promise<void> {
  for (let sent = 0; sent < count; sent += SEND_BATCH) {
    const n = Math.min(SEND_BATCH, count - sent);
    await client.sendBatch(
      QUEUE,
      Array.from({ length: n }, (_, i) => ({ payload: { i } })),
    );
  }
}

interface SideRun {
  service: BenchService;
  client: HoldlineClient;
  token: string;
}

/** One operation: unmeasured set-up, then the measured work resolving with its units. */
type Operation = (side: SideRun) => Promise<() => Promise<number>>;

const operations: Record<string, Operation> = {
  floor: ({ service, token }) => {
    const body = JSON.stringify({ query: '{ __typename }' });
    return Promise.resolve(async () => {
      await loops(SINGLE_CLIENTS, OPERATIONS, async () => {
        const response = await fetch(`${service.url}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body,
        });
        await response.json();
      });
      return OPERATIONS;
    });
  },
  send: ({ client }) =>
    Promise.resolve(async () => {
      await loops(SINGLE_CLIENTS, OPERATIONS, (i) => client.send(QUEUE, { payload: { i } }));
      return OPERATIONS;
    }),
  ack: async ({ client }) => {
    await prefill(client, OPERATIONS);
    const receipts: string[] = [];
    while (receipts.length < OPERATIONS) {
      const got = await client.receive(QUEUE, { max: 1000, visibilityTimeoutSeconds: 600 });
      if (got.length === 0) throw new Error(`only ${receipts.length} leased`);
      receipts.push(...got.map((d) => d.receipt));
    }
    return async () => {
      await loops(SINGLE_CLIENTS, receipts.length, (i) => client.ack(receipts[i]!));
      return receipts.length;
    };
  },
  ...Object.fromEntries(
    [100, 1000].map((max): [string, Operation] => [
      `receive-${max}-ack-batch`,
      async ({ client }) => {
        const messages = max === 100 ? OPERATIONS : OPERATIONS * 5;
        await prefill(client, messages);
        return async () => {
          let done = 0;
          await loops(BATCH_CLIENTS, Math.ceil(messages / max), async () => {
            const got = await client.receive(QUEUE, { max });
            const acked = got.length > 0 ? await client.ackBatch(got.map((d) => d.receipt)) : 0;
            done += acked;
          });
          return done;
        };
      },
    ]),
  ),
};

async function main(): Promise<void> {
  const baseline = process.env.BASELINE;
  if (baseline === undefined || baseline === '') {
    process.stderr.write('BASELINE must name the baseline checkout (see the header)\n');
    process.exit(2);
  }
  const baselineHarness = (await import(path.resolve(baseline, 'bench/harness/service.ts'))) as {
    startService: typeof startService;
  };
  await withBenchDatabase(async (bench) => {
    const admin = await createToken(bench.admin, { name: 'ab-admin', scopes: 'admin' });
    const scoped = await createToken(bench.admin, {
      name: 'ab-scoped',
      scopes: `send:${QUEUE}*,receive:${QUEUE}*`,
    });
    const env = { AUTH_REQUIRED: 'true', REAPER_ENABLED: 'false' };
    const services: Record<Side, BenchService> = {
      A: await baselineHarness.startService(bench.url, env, { unset: ['RATE_LIMIT_PER_SECOND'] }),
      B: await startService(bench.url, env, { unset: ['RATE_LIMIT_PER_SECOND'] }),
    };
    const sides = Object.fromEntries(
      SIDES.map((side) => [
        side,
        {
          service: services[side],
          client: createClient({ url: services[side].url, token: scoped.secret }),
          token: scoped.secret,
        },
      ]),
    ) as Record<Side, SideRun>;
    const setup = createClient({ url: services.A.url, token: admin.secret });
    const micros: Record<string, Record<Side, number[]>> = {};
    try {
      await setup.createQueue(QUEUE);
      // Repetition -1 warms both services (V8's compiled code, connections); not counted.
      for (let repetition = -1; repetition < REPETITIONS; repetition++) {
        for (const [name, operation] of Object.entries(operations)) {
          const order = repetition % 2 === 0 ? SIDES : [...SIDES].reverse();
          for (const side of order) {
            await sql`TRUNCATE holdline.messages`.execute(bench.admin);
            const measured = await operation(sides[side]);
            await sleep(200);
            const service = services[side];
            const cpuBefore = (await service.cpuMs()) ?? NaN;
            const started = nowMs();
            const units = await measured();
            const elapsedMs = nowMs() - started;
            const cpuMs = ((await service.cpuMs()) ?? NaN) - cpuBefore;
            const perUnit = (cpuMs * 1000) / units;
            if (repetition >= 0) (micros[name] ??= { A: [], B: [] })[side].push(perUnit);
            process.stdout.write(
              `${JSON.stringify({ kind: 'measurement', operation: name, side, repetition, units, serviceMicrosPerUnit: perUnit, perSecond: (units / elapsedMs) * 1000 })}\n`,
            );
          }
        }
      }
    } finally {
      await setup.close();
      for (const side of SIDES) await sides[side].client.close();
      for (const side of SIDES) await services[side].stop();
    }
    const rows = Object.entries(micros).map(([name, bySide]) => {
      const a = median(bySide.A);
      const b = median(bySide.B);
      process.stdout.write(
        `${JSON.stringify({ kind: 'summary', operation: name, medianA: a, medianB: b, ratio: b / a })}\n`,
      );
      const runs = (side: Side): string => bySide[side].map((v) => formatFixed(v, 0)).join(', ');
      return [
        name,
        formatFixed(a, 1),
        formatFixed(b, 1),
        formatFixed(b / a, 2),
        runs('A'),
        runs('B'),
      ];
    });
    process.stdout.write(
      `\nService CPU µs per operation (per message for receive + ackBatch), A = ${baseline}, ` +
        `B = this checkout; ${REPETITIONS} repetitions interleaved, ${OPERATIONS} operations each.\n\n` +
        markdownTable(['operation', 'A (median)', 'B (median)', 'B/A', 'A runs', 'B runs'], rows) +
        '\n',
    );
  });
}

await main();
