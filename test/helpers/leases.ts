import { sql } from 'kysely';
import type { Executor } from '../../src/queue/operations.ts';
import type { TestDatabase } from './database.ts';

/** Committed leases of a queue, as any other session sees them. */
export async function leasedCount(db: Executor, queue: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    SELECT count(*)::integer AS n FROM holdline.messages
    WHERE queue = ${queue} AND lease_token IS NOT NULL
  `.execute(db);
  return rows[0]!.n;
}

/** A running {@link sampleLeases}: what it has read so far, and how to stop it. */
export interface LeaseSampler {
  /** Committed leases of the queue at each reading, in order. */
  readonly samples: number[];
  /** Stops reading, waits for the reading in progress, closes the session. */
  stop(): Promise<void>;
}

/**
 * Reads a queue's committed leases every few milliseconds on a session of its own, as any
 * other client would see them, until stopped: the witness that a cap held at every instant.
 */
export async function sampleLeases(t: TestDatabase, queue: string): Promise<LeaseSampler> {
  const sampler = await t.connect();
  const samples: number[] = [];
  let done = false;
  const sampling = (async () => {
    while (!done) {
      const { rows } = await sampler.query<{ n: number }>(
        `SELECT count(*)::integer AS n FROM holdline.messages
         WHERE queue = $1 AND lease_token IS NOT NULL`,
        [queue],
      );
      samples.push(rows[0]!.n);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  })();
  return {
    samples,
    async stop() {
      done = true;
      await sampling;
      await sampler.end();
    },
  };
}
