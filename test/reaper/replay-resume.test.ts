import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ackBatch, getReplayJob, receive, startReplay } from '../../src/queue/operations.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { idleReaper, makeQueue, sendMessages } from '../helpers/factories.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

const FIXTURE = fileURLToPath(new URL('../fixtures/replay-runner-process.ts', import.meta.url));
const MESSAGES = 1_500;

/**
 * Runs the replay leader as a child process and SIGKILLs it once a job has enqueued at least
 * `atLeast` copies (it may be in the middle of its next batch then). Resolves with the count
 * it last printed.
 */
async function runAndKill(jobId: string, atLeast: number): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
    env: { ...process.env, DATABASE_URL: t.url, REPLAY_BATCH_SIZE: '20' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const lastPrinted = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('no progress from the replay leader'));
    }, 20_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      const [word, id, replayed] = line.split(' ');
      if (word !== 'progress' || id !== jobId || Number(replayed) < atLeast) return;
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(Number(replayed));
    });
  });
  await exited;
  return lastPrinted;
}

describe('replay job across SIGKILL', () => {
  it('resumes where it stopped: no archived message replayed twice or skipped (ledger)', async () => {
    await makeQueue(t.db, 'ledger', { archiveSeconds: 86_400 });
    await makeQueue(t.db, 'ledger.copy');
    const sent = await sendMessages(t.db, 'ledger', MESSAGES, (i) => ({ payload: { i } }));
    for (;;) {
      const deliveries = await receive(t.db, { queue: 'ledger', max: 1000 });
      if (deliveries.length === 0) break;
      await ackBatch(t.db, { receipts: deliveries.map((d) => d.receipt) });
    }
    // 1,000 a second in batches of 20: slow enough that each kill lands mid-job.
    const job = await startReplay(t.db, {
      queue: 'ledger',
      into: 'ledger.copy',
      ratePerSecond: 1000,
    });
    expect(job.matched).toBe(MESSAGES);

    const firstKill = await runAndKill(job.id, 300);
    const secondKill = await runAndKill(job.id, 900);
    const killed = await getReplayJob(t.db, { id: job.id });
    expect(killed!.state).toBe('RUNNING');
    expect(killed!.replayed).toBeGreaterThanOrEqual(secondKill);
    expect(killed!.replayed).toBeLessThan(MESSAGES);
    expect(firstKill).toBeLessThan(secondKill);

    // Another leader (this process) finishes the job.
    const reaper = idleReaper(t);
    for (let pass = 0; pass < 1000; pass++) {
      if ((await getReplayJob(t.db, { id: job.id }))!.state !== 'RUNNING') break;
      await reaper.runReplays();
      // The rate spaces batches 20 ms apart; wait for the next rather than spin.
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(await getReplayJob(t.db, { id: job.id })).toMatchObject({
      state: 'DONE',
      replayed: MESSAGES,
    });

    // The ledger: every copy in the target names its original; each original exactly once,
    // and the copies' ids run in the originals' send order across both kills.
    const { rows } = await sql<{ original: string; id: string }>`
      SELECT headers->>'holdline-original-id' AS original, id::text AS id
      FROM holdline.messages WHERE queue = 'ledger.copy' ORDER BY id
    `.execute(t.db);
    const originals = rows.map((r) => r.original);
    expect(rows).toHaveLength(MESSAGES);
    expect(new Set(originals).size).toBe(MESSAGES);
    expect(originals).toEqual(sent.map((m) => m.id));
  });
});
