/**
 * W11, storage layouts (issue 16): what the shape of the messages table alone costs, apart
 * from the engine's SQL functions. The same three workloads as W1–W3 (single sends from 8
 * connections, batches of 500 from 4, a drain of lease 1,000 + batched delete from 4), each
 * done with bare statements on scratch tables of each layout the issue's leads propose,
 * beside pgmq's own table and functions and holdline's functions on holdline.messages:
 *
 * - `shared-text`: holdline.messages as it is (LIKE … INCLUDING ALL: the queue's name leads
 *   the receive index, five partial indexes);
 * - `shared-int`: the same with an integer queue id in place of the name;
 * - `partitioned`: LIST-partitioned by queue id, a partition per queue, whose receive index
 *   loses the leading queue column; sends name the parent (tuple routing), or
 *   `partition-direct` the queue's partition itself (what routing costs);
 * - `partitioned-narrow`: partitioned, with the optional columns (dedup and group keys,
 *   origin, last error, dead-lettered time) and their indexes out of the row;
 * - `raw`: bare statements on pgmq's table (its functions without their dynamic SQL).
 *
 *   npx tsx bench/storage-layouts.ts [--smoke]
 *
 * The layouts' statements leave out what the functions do besides storage (validation,
 * wake-ups, dedup, groups): the gap between a layout and the function on it is the
 * function's own cost. Prints JSON lines and a table per workload. See bench/README.md.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type pg from 'pg';
import { createPool } from '../src/db/pool.ts';
import { createQueue } from '../src/queue/operations.ts';
import { parseBenchArgs } from './harness/args.ts';
import { nowMs } from './harness/clock.ts';
import { runComparison } from './harness/comparison.ts';
import { checkpoint, withBenchDatabase } from './harness/database.ts';
import type { BenchDatabase } from './harness/database.ts';
import {
  CONSUMER_LOOPS,
  LEASE_MAX,
  onPoolClient,
  receiveLoops,
} from './harness/drain-consumers.ts';
import { selectedSystems, summariseRates } from './harness/interleave.ts';
import type { RateSummary } from './harness/interleave.ts';
import {
  PGMQ_KEY,
  PGMQ_SEND,
  PGMQ_SEND_BATCH,
  installPgmq,
  pgmqReadAndDelete,
  pgmqTable,
} from './harness/pgmq.ts';
import { runProducers } from './harness/producers.ts';
import type { Producer } from './harness/producers.ts';
import { waitForQuietMachine } from './harness/quiet.ts';
import type { QuietCheck } from './harness/quiet.ts';
import { formatCount, formatFixed, formatRatio, markdownTable } from './harness/report.ts';

const BENCH = 'storage-layouts';
const args = parseBenchArgs(process.argv.slice(2));

const SINGLE_PRODUCERS = 8;
const SINGLE_SENDS = args.smoke ? 400 : 20_000;
const BATCH_PRODUCERS = 4;
const BATCH_SIZE = 500;
const BATCH_MESSAGES = args.smoke ? 2_000 : 100_000;
const DRAIN_MESSAGES = args.smoke ? 1_000 : 50_000;
const REPETITIONS = args.smoke ? 1 : 3;
const RUN_TIME_LIMIT_MS = 120_000;
const QUIET_MIN_IDLE = 0.9;
const QUIET_WINDOW_MS = args.smoke ? 50 : 1_000;
const QUIET_TIMEOUT_MS = args.smoke ? 0 : 10_000;
const QUEUE = 'bench';
/** The queue id of QUEUE in the integer layouts; two more queues sit beside it. */
const QUEUE_ID = 1;
const PAD = 'x'.repeat(100);
const APPLICATION_NAME = 'holdline-bench-layouts';

function payloadJson(n: number): string {
  return JSON.stringify({ n, pad: PAD });
}

/** The columns every message needs: the narrow row. */
const HOT_COLUMNS = `
    id bigint NOT NULL DEFAULT nextval('layout.ids'),
    queue_id integer NOT NULL,
    payload jsonb NOT NULL,
    headers jsonb,
    priority integer NOT NULL DEFAULT 0,
    run_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    lease_token uuid,
    lease_expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()`;

/**
 * The scratch tables. Each integer layout has queues 1–3, so that a partitioned send routes
 * among several partitions as it would in a real installation.
 */
const CREATE_LAYOUTS = `
  CREATE SCHEMA layout;
  -- With its own identity, as holdline.messages has (LIKE copies it).
  CREATE TABLE layout.shared_text (LIKE holdline.messages INCLUDING ALL);
  CREATE SEQUENCE layout.ids;

  -- holdline.messages's columns, with queue ids for names.
  CREATE TABLE layout.shared_int (${HOT_COLUMNS},
    dedup_key text,
    group_key text,
    origin_queue_id integer,
    last_error text,
    dead_lettered_at timestamptz,
    PRIMARY KEY (id)
  ) WITH (fillfactor = 80);
  CREATE INDEX ON layout.shared_int (queue_id, priority DESC, run_at, id) WHERE lease_token IS NULL;
  CREATE INDEX ON layout.shared_int (queue_id, lease_expires_at) WHERE lease_token IS NOT NULL;
  CREATE UNIQUE INDEX ON layout.shared_int (queue_id, dedup_key) WHERE dedup_key IS NOT NULL;
  CREATE INDEX ON layout.shared_int (queue_id, group_key, id) WHERE group_key IS NOT NULL;
  CREATE INDEX ON layout.shared_int (origin_queue_id, id) WHERE origin_queue_id IS NOT NULL;

  CREATE TABLE layout.partitioned (LIKE layout.shared_int INCLUDING DEFAULTS)
    PARTITION BY LIST (queue_id);
  CREATE TABLE layout.partitioned_narrow (${HOT_COLUMNS}) PARTITION BY LIST (queue_id);
  DO $$
  BEGIN
    FOR q IN 1..3 LOOP
      EXECUTE format('CREATE TABLE layout.partitioned_%s PARTITION OF layout.partitioned
                        FOR VALUES IN (%s) WITH (fillfactor = 80)', q, q);
      EXECUTE format('ALTER TABLE layout.partitioned_%s ADD PRIMARY KEY (id)', q);
      EXECUTE format('CREATE INDEX ON layout.partitioned_%s (priority DESC, run_at, id)
                        WHERE lease_token IS NULL', q);
      EXECUTE format('CREATE INDEX ON layout.partitioned_%s (lease_expires_at)
                        WHERE lease_token IS NOT NULL', q);
      EXECUTE format('CREATE UNIQUE INDEX ON layout.partitioned_%s (dedup_key)
                        WHERE dedup_key IS NOT NULL', q);
      EXECUTE format('CREATE INDEX ON layout.partitioned_%s (group_key, id)
                        WHERE group_key IS NOT NULL', q);
      EXECUTE format('CREATE TABLE layout.partitioned_narrow_%s PARTITION OF
                        layout.partitioned_narrow FOR VALUES IN (%s) WITH (fillfactor = 80)', q, q);
      EXECUTE format('ALTER TABLE layout.partitioned_narrow_%s ADD PRIMARY KEY (id)', q);
      EXECUTE format('CREATE INDEX ON layout.partitioned_narrow_%s (priority DESC, run_at, id)
                        WHERE lease_token IS NULL', q);
      EXECUTE format('CREATE INDEX ON layout.partitioned_narrow_%s (lease_expires_at)
                        WHERE lease_token IS NOT NULL', q);
    END LOOP;
  END
  $$;`;

/** How one system sends and drains; `queueFilter` is its WHERE for QUEUE's rows. */
interface System {
  key: string;
  label: string;
  /** Empties what this system writes. */
  reset: string;
  /** Rows of QUEUE still there. */
  count: string;
  /** Tables to VACUUM ANALYZE before a drain. */
  tables: readonly string[];
  /** One message, one transaction: the statement and its parameters. */
  send: (n: number) => [string, unknown[]];
  /** A batch of payloads (JSON texts) in one statement. */
  sendBatch: (payloads: string[]) => [string, unknown[]];
  /** Leases up to `max` and deletes them, in two statements. */
  leaseAndDelete: (client: pg.PoolClient, max: number) => Promise<number>;
}

/** The bare statements of a layout table, its rows of QUEUE picked by `queueColumn`. */
function layoutSystem(options: {
  key: string;
  label: string;
  table: string;
  /** The table sends insert into (a partition, to leave routing out); default `table`. */
  sendTable?: string;
  queueColumn: 'queue' | 'queue_id';
  /** Tables the reset truncates and the drain vacuums. */
  tables: readonly string[];
}): System {
  const { table, queueColumn } = options;
  const sendTable = options.sendTable ?? table;
  const queueValue = queueColumn === 'queue' ? QUEUE : QUEUE_ID;
  const queueLiteral = queueColumn === 'queue' ? `'${QUEUE}'` : String(QUEUE_ID);
  const queueCast = queueColumn === 'queue' ? 'text' : 'integer';
  // The receive statement's shape (holdline.receive without groups, caps and rate limits):
  // a SKIP LOCKED CTE over the receive index, and an UPDATE that sets the lease.
  const lease = `
    WITH next AS (
      SELECT id FROM ${table}
      WHERE ${queueColumn} = $1::${queueCast} AND lease_token IS NULL AND run_at <= now()
      ORDER BY priority DESC, run_at, id
      LIMIT $2
      FOR UPDATE SKIP LOCKED
    )
    UPDATE ${table} m
    SET lease_token = $3::uuid, lease_expires_at = now() + interval '30 seconds',
        attempts = m.attempts + 1
    FROM next WHERE m.id = next.id AND m.${queueColumn} = $1::${queueCast}
    RETURNING m.id`;
  const ack = `
    DELETE FROM ${table}
    WHERE ${queueColumn} = $1::${queueCast} AND id = ANY($2::bigint[]) AND lease_token = $3::uuid`;
  return {
    key: options.key,
    label: options.label,
    reset: `TRUNCATE ${options.tables.join(', ')}`,
    count: `SELECT count(*)::integer AS n FROM ${table} WHERE ${queueColumn} = ${queueLiteral}`,
    tables: options.tables,
    send: (n) => [
      `INSERT INTO ${sendTable} (${queueColumn}, payload) VALUES ($1, $2::jsonb) RETURNING id`,
      [queueValue, payloadJson(n)],
    ],
    sendBatch: (payloads) => [
      `INSERT INTO ${sendTable} (${queueColumn}, payload)
       SELECT $1, p FROM unnest($2::jsonb[]) AS p RETURNING id`,
      [queueValue, payloads],
    ],
    leaseAndDelete: async (client, max) => {
      const token = randomUUID();
      const { rows } = await client.query<{ id: string }>(lease, [queueValue, max, token]);
      if (rows.length > 0) {
        await client.query(ack, [queueValue, rows.map((r) => r.id), token]);
      }
      return rows.length;
    },
  };
}

const ALL_SYSTEMS: readonly System[] = [
  {
    key: PGMQ_KEY,
    label: 'pgmq functions: send, send_batch, read + delete(ids[])',
    reset: `TRUNCATE ${pgmqTable(QUEUE)}`,
    count: `SELECT count(*)::integer AS n FROM ${pgmqTable(QUEUE)}`,
    tables: [pgmqTable(QUEUE)],
    send: (n) => [PGMQ_SEND, [QUEUE, payloadJson(n)]],
    sendBatch: (payloads) => [PGMQ_SEND_BATCH, [QUEUE, payloads]],
    leaseAndDelete: (client, max) => pgmqReadAndDelete(client, QUEUE, max),
  },
  {
    // The leanest layout, so the ratios' denominator (× raw).
    key: 'raw',
    label: "pgmq's table, bare statements",
    reset: `TRUNCATE ${pgmqTable(QUEUE)}`,
    count: `SELECT count(*)::integer AS n FROM ${pgmqTable(QUEUE)}`,
    tables: [pgmqTable(QUEUE)],
    send: (n) => [
      `INSERT INTO ${pgmqTable(QUEUE)} (vt, message) VALUES (now(), $1::jsonb) RETURNING msg_id`,
      [payloadJson(n)],
    ],
    sendBatch: (payloads) => [
      `INSERT INTO ${pgmqTable(QUEUE)} (vt, message)
       SELECT now(), p FROM unnest($1::jsonb[]) AS p RETURNING msg_id`,
      [payloads],
    ],
    leaseAndDelete: async (client, max) => {
      const { rows } = await client.query<{ msg_id: string }>(
        `WITH next AS (SELECT msg_id FROM ${pgmqTable(QUEUE)} WHERE vt <= now()
                       ORDER BY msg_id LIMIT $1 FOR UPDATE SKIP LOCKED)
         UPDATE ${pgmqTable(QUEUE)} m SET vt = now() + interval '30 seconds', read_ct = read_ct + 1
         FROM next WHERE m.msg_id = next.msg_id RETURNING m.msg_id`,
        [max],
      );
      if (rows.length > 0) {
        await client.query(`DELETE FROM ${pgmqTable(QUEUE)} WHERE msg_id = ANY($1::bigint[])`, [
          rows.map((r) => r.msg_id),
        ]);
      }
      return rows.length;
    },
  },
  {
    key: 'holdline-functions',
    label: 'holdline functions: send_at, send_many, receive + ack_batch',
    reset: 'TRUNCATE holdline.messages',
    count: `SELECT count(*)::integer AS n FROM holdline.messages WHERE queue = '${QUEUE}'`,
    tables: ['holdline.messages'],
    send: (n) => ['SELECT holdline.send_at($1, $2::jsonb) AS id', [QUEUE, payloadJson(n)]],
    sendBatch: (payloads) => [
      'SELECT holdline.send_many($1, $2::jsonb) AS ids',
      [QUEUE, JSON.stringify(payloads.map((p) => ({ payload: JSON.parse(p) as unknown })))],
    ],
    leaseAndDelete: async (client, max) => {
      const { rows } = await client.query<{ id: string; lease_token: string }>(
        'SELECT id, lease_token FROM holdline.receive($1, $2::integer)',
        [QUEUE, max],
      );
      if (rows.length > 0) {
        await client.query('SELECT count(*) FROM holdline.ack_batch($1::bigint[], $2::uuid[])', [
          rows.map((r) => r.id),
          rows.map((r) => r.lease_token),
        ]);
      }
      return rows.length;
    },
  },
  layoutSystem({
    key: 'shared-text',
    label: 'shared table, queue name in the indexes (today)',
    table: 'layout.shared_text',
    queueColumn: 'queue',
    tables: ['layout.shared_text'],
  }),
  layoutSystem({
    key: 'shared-int',
    label: 'shared table, integer queue id in the indexes',
    table: 'layout.shared_int',
    queueColumn: 'queue_id',
    tables: ['layout.shared_int'],
  }),
  layoutSystem({
    key: 'partitioned',
    label: 'a partition per queue (sends routed through the parent)',
    table: 'layout.partitioned',
    queueColumn: 'queue_id',
    tables: ['layout.partitioned'],
  }),
  layoutSystem({
    key: 'partition-direct',
    label: "a partition per queue (sends into the queue's partition: no routing)",
    table: 'layout.partitioned',
    sendTable: `layout.partitioned_${QUEUE_ID}`,
    queueColumn: 'queue_id',
    tables: ['layout.partitioned'],
  }),
  layoutSystem({
    key: 'partitioned-narrow',
    label: 'a partition per queue, optional columns out of the row',
    table: 'layout.partitioned_narrow',
    queueColumn: 'queue_id',
    tables: ['layout.partitioned_narrow'],
  }),
];
/** BENCH_SYSTEMS=pgmq,partitioned runs those (and raw: pgmq's table, bare) alone. */
const SYSTEMS = selectedSystems(ALL_SYSTEMS);

type Workload = 'single-sends' | 'batch-sends' | 'drain';

interface Measurement {
  workload: Workload;
  system: string;
  repetition: number;
  messages: number;
  elapsedMs: number;
  messagesPerSecond: number;
  quietBeforeStart: QuietCheck;
}

async function count(bench: BenchDatabase, system: System): Promise<number> {
  const { rows } = await sql.raw<{ n: number }>(system.count).execute(bench.admin);
  return rows[0]!.n;
}

function quiet(): Promise<QuietCheck> {
  return waitForQuietMachine({
    minIdle: QUIET_MIN_IDLE,
    windowMs: QUIET_WINDOW_MS,
    timeoutMs: QUIET_TIMEOUT_MS,
  });
}

/** Producers that each pin one connection of `pool` and run `statement(n)` per send. */
function producerOn(pool: pg.Pool, statement: (n: number) => [string, unknown[]]): Producer {
  return async (work) => {
    const client = await pool.connect();
    try {
      await work(async (n) => {
        const [text, values] = statement(n);
        await client.query(text, values);
      });
    } finally {
      client.release();
    }
  };
}

function batchPayloads(batch: number): string[] {
  return Array.from({ length: BATCH_SIZE }, (_, i) => payloadJson(batch * BATCH_SIZE + i));
}

async function measureSends(
  bench: BenchDatabase,
  system: System,
  repetition: number,
  workload: 'single-sends' | 'batch-sends',
): Promise<Measurement> {
  const single = workload === 'single-sends';
  const producers = single ? SINGLE_PRODUCERS : BATCH_PRODUCERS;
  const pool = createPool({
    connectionString: bench.url,
    max: producers,
    applicationName: APPLICATION_NAME,
  });
  let quietBeforeStart: QuietCheck = { idle: null, waitedMs: 0, quiet: true };
  try {
    const result = await runProducers({
      producers,
      total: single ? SINGLE_SENDS : BATCH_MESSAGES / BATCH_SIZE,
      warmupPerProducer: single ? 20 : 1,
      timeLimitMs: RUN_TIME_LIMIT_MS,
      signal: bench.signal,
      producer: producerOn(pool, (n) =>
        single ? system.send(n) : system.sendBatch(batchPayloads(n)),
      ),
      beforeStart: async () => {
        await sql.raw(system.reset).execute(bench.admin);
        await checkpoint(bench.admin);
        quietBeforeStart = await quiet();
      },
    });
    const messages = result.sends * (single ? 1 : BATCH_SIZE);
    const rows = await count(bench, system);
    if (rows !== messages) throw new Error(`${system.key}: ${messages} sent but ${rows} rows`);
    return {
      workload,
      system: system.key,
      repetition,
      messages,
      elapsedMs: result.elapsedMs,
      messagesPerSecond: (messages / result.elapsedMs) * 1000,
      quietBeforeStart,
    };
  } finally {
    await pool.end();
  }
}

async function measureDrain(
  bench: BenchDatabase,
  system: System,
  repetition: number,
): Promise<Measurement> {
  await sql.raw(system.reset).execute(bench.admin);
  const fill = createPool({
    connectionString: bench.url,
    max: 1,
    applicationName: APPLICATION_NAME,
  });
  try {
    for (let first = 0; first < DRAIN_MESSAGES; first += BATCH_SIZE) {
      const [text, values] = system.sendBatch(batchPayloads(first / BATCH_SIZE));
      await fill.query(text, values);
    }
  } finally {
    await fill.end();
  }
  for (const table of system.tables) await sql.raw(`VACUUM ANALYZE ${table}`).execute(bench.admin);
  await checkpoint(bench.admin);
  const pool = createPool({
    connectionString: bench.url,
    max: CONSUMER_LOOPS,
    applicationName: APPLICATION_NAME,
  });
  try {
    const quietBeforeStart = await quiet();
    const startedAt = nowMs();
    const drain = receiveLoops(DRAIN_MESSAGES, (max) =>
      onPoolClient(pool, (client) => system.leaseAndDelete(client, max)),
    );
    await drain.done;
    const elapsedMs = nowMs() - startedAt;
    const left = await count(bench, system);
    if (left !== 0) throw new Error(`${system.key}: ${left} left after the drain`);
    return {
      workload: 'drain',
      system: system.key,
      repetition,
      messages: DRAIN_MESSAGES,
      elapsedMs,
      messagesPerSecond: (DRAIN_MESSAGES / elapsedMs) * 1000,
      quietBeforeStart,
    };
  } finally {
    await pool.end();
  }
}

type Summary = RateSummary & { workload: Workload };

async function main(): Promise<void> {
  await withBenchDatabase(async (bench) => {
    await createQueue(bench.admin, { name: QUEUE });
    const pgmq = await installPgmq(bench, QUEUE);
    if (!pgmq.installed) {
      // Every layout is measured against pgmq's table: without it there is nothing to say.
      process.stderr.write(`storage-layouts: skipped, pgmq is needed here (${pgmq.reason})\n`);
      return;
    }
    await sql.raw(CREATE_LAYOUTS).execute(bench.admin);
    const systems = SYSTEMS;
    for (const workload of ['single-sends', 'batch-sends', 'drain'] as const) {
      await runComparison<System, Measurement, Summary>({
        name: BENCH,
        smoke: args.smoke,
        database: bench,
        parameters: {
          workload,
          singleProducers: SINGLE_PRODUCERS,
          batchProducers: BATCH_PRODUCERS,
          consumerLoops: CONSUMER_LOOPS,
          leaseMax: LEASE_MAX,
        },
        systems,
        repetitions: REPETITIONS,
        measure: (db, system, repetition) =>
          workload === 'drain'
            ? measureDrain(db, system, repetition)
            : measureSends(db, system, repetition, workload),
        progress: (m) => `${workload} ${formatCount(m.messagesPerSecond)} msgs/s`,
        summarise: (measurements) =>
          summariseRates(systems, measurements, (m) => m.messagesPerSecond).map(({ rate }) => ({
            ...rate,
            workload,
          })),
        caption: ({ measurements, quietRuns }) =>
          `${workload}: storage layouts with bare statements, ${REPETITIONS} repetition(s) ` +
          `interleaved; median and min–max; × raw is against pgmq's table, bare; ` +
          `${quietRuns} of ${measurements.length} runs started on a machine ` +
          `≥${QUIET_MIN_IDLE * 100}% idle.`,
        table: (summaries) =>
          markdownTable(
            ['layout', 'msgs/s (median)', 'min–max', '× pgmq table', '× pgmq functions'],
            summaries.map((s) => [
              s.label,
              formatCount(s.medianPerSecond),
              `${formatCount(s.minPerSecond)}–${formatCount(s.maxPerSecond)}`,
              `${formatFixed(s.ratioToRaw, 2)}×`,
              formatRatio(s.ratioToPgmq),
            ]),
          ),
      });
    }
  });
}

await main();
