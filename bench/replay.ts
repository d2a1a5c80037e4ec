/**
 * W9, replay: how fast does a replay job re-enqueue an archive into an empty queue, against
 * W2's batch sends (sendBatch of 500, 4 producers) of the same messages, in one run,
 * interleaved? The replay runs in-process as the leader runs it (Reaper.runReplays, batches
 * of 1,000, one transaction each). Target (issue 17): replay ≥ 0.5× the batch-send rate.
 *
 *   npx tsx bench/replay.ts [--smoke] [--messages N]
 *
 * The archive is filled by SQL (the bench measures the replay, not the archiving acks: W3
 * with BENCH_SYSTEMS=holdline-engine,holdline-engine-archive measures those). Prints one JSON
 * line per measurement, then a markdown table. See bench/README.md.
 */
import { sql } from 'kysely';
import pino from 'pino';
import { createDatabase, createPool } from '../src/db/pool.ts';
import { createQueue, sendBatch, startReplay } from '../src/queue/operations.ts';
import { Reaper } from '../src/reaper/reaper.ts';
import { parseBenchArgs } from './harness/args.ts';
import { nowMs } from './harness/clock.ts';
import { checkpoint, withBenchDatabase } from './harness/database.ts';
import type { BenchDatabase } from './harness/database.ts';
import { formatCount, formatFixed, markdownTable, printJsonLine } from './harness/report.ts';

const args = parseBenchArgs(process.argv.slice(2), ['messages']);
const MESSAGES = args.numbers.messages ?? (args.smoke ? 2_000 : 100_000);
const REPETITIONS = args.smoke ? 1 : 3;
const PRODUCERS = 4;
const BATCH_SIZE = 500;
const PAD = 'x'.repeat(100);
const SOURCE = 'bench.source';
const TARGET = 'bench.target';
const logger = pino({ level: process.env.LOG_LEVEL ?? 'warn' }, pino.destination(2));

/** Fills the source queue's archive with MESSAGES rows, acked now, payloads as W2's. */
async function fillArchive(bench: BenchDatabase): Promise<void> {
  await sql`SELECT holdline.archive_create_partitions()`.execute(bench.admin);
  await sql`
    INSERT INTO holdline.message_archive (id, queue, payload, priority, attempts, sent_at, acked_at)
    SELECT nextval('holdline.messages_id_seq'), ${SOURCE}, jsonb_build_object('n', g, 'pad', ${PAD}::text),
           0, 1, now(), now()
    FROM generate_series(1, ${MESSAGES}::int) g
  `.execute(bench.admin);
  await sql`VACUUM ANALYZE holdline.message_archive`.execute(bench.admin);
}

async function emptyTarget(bench: BenchDatabase): Promise<void> {
  // The source's messages live in the archive only: the live table holds the target's alone.
  await sql`TRUNCATE holdline.messages`.execute(bench.admin);
  await checkpoint(bench.admin);
}

/** The replay job, run to its end by an in-process leader; msgs/s. */
async function measureReplay(bench: BenchDatabase): Promise<number> {
  const db = createDatabase(createPool({ connectionString: bench.url, max: 2 }));
  const reaper = new Reaper({ db, connectionString: bench.url, logger });
  try {
    const started = nowMs();
    const job = await startReplay(db, { queue: SOURCE, into: TARGET });
    while ((await reaper.runReplays()) > 0) {
      // runReplays returns after a second's slice; go on until no batch is due.
    }
    const elapsedMs = nowMs() - started;
    const { rows } = await sql<{ replayed: string; state: string }>`
      SELECT replayed, state FROM holdline.replay_jobs WHERE id = ${job.id}::bigint
    `.execute(bench.admin);
    if (rows[0]?.state !== 'done' || Number(rows[0].replayed) !== MESSAGES) {
      throw new Error(`replay ended ${JSON.stringify(rows[0])}, not done with ${MESSAGES}`);
    }
    return (MESSAGES / elapsedMs) * 1000;
  } finally {
    await db.destroy();
  }
}

/** W2's holdline system: PRODUCERS producers each sending batches of BATCH_SIZE; msgs/s. */
async function measureBatchSends(bench: BenchDatabase): Promise<number> {
  const db = createDatabase(createPool({ connectionString: bench.url, max: PRODUCERS }));
  try {
    let next = 0;
    const started = nowMs();
    await Promise.all(
      Array.from({ length: PRODUCERS }, () =>
        db.connection().execute(async (connection) => {
          for (;;) {
            const first = next;
            next += BATCH_SIZE;
            if (first >= MESSAGES) return;
            const count = Math.min(BATCH_SIZE, MESSAGES - first);
            await sendBatch(connection, {
              queue: TARGET,
              messages: Array.from({ length: count }, (_, i) => ({
                payload: { n: first + i, pad: PAD },
              })),
            });
          }
        }),
      ),
    );
    return (MESSAGES / (nowMs() - started)) * 1000;
  } finally {
    await db.destroy();
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

await withBenchDatabase(async (bench) => {
  await createQueue(bench.admin, { name: SOURCE, config: { archiveSeconds: 86_400 } });
  await createQueue(bench.admin, { name: TARGET });
  await fillArchive(bench);
  const rates: Record<'replay' | 'batch-sends', number[]> = { replay: [], 'batch-sends': [] };
  for (let repetition = 1; repetition <= REPETITIONS; repetition++) {
    for (const system of ['replay', 'batch-sends'] as const) {
      if (bench.signal.aborted) return;
      await emptyTarget(bench);
      const rate =
        system === 'replay' ? await measureReplay(bench) : await measureBatchSends(bench);
      rates[system].push(rate);
      printJsonLine({
        kind: 'measurement',
        bench: 'replay',
        system,
        repetition,
        messages: MESSAGES,
        messagesPerSecond: rate,
      });
      process.stderr.write(`replay: ${system} #${repetition}: ${formatCount(rate)} msgs/s\n`);
    }
  }
  const replay = median(rates.replay);
  const sends = median(rates['batch-sends']);
  printJsonLine({
    kind: 'summary',
    bench: 'replay',
    replay,
    batchSends: sends,
    ratio: replay / sends,
  });
  process.stdout.write(
    `\n${markdownTable(
      ['system', 'msgs/s (median)', '× batch sends'],
      [
        [
          'replay job, in-process leader, batches of 1,000',
          formatCount(replay),
          `${formatFixed(replay / sends, 2)}×`,
        ],
        [`sendBatch of ${BATCH_SIZE}, ${PRODUCERS} producers (W2)`, formatCount(sends), '1.00×'],
      ],
    )}\n\nReplay of ${formatCount(MESSAGES)} archived messages into an empty queue, ${REPETITIONS} repetition(s) interleaved.\n`,
  );
});
