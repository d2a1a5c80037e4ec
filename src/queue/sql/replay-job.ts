/** The engine's statements on holdline.replay_jobs and the functions that run them (0011). */
import type { ReplayJobRow } from './tables.ts';
import { Statement } from '../../db/statement.ts';

/**
 * Starts a replay of queue $1's archive into $2 (holdline.start_replay): sent in [$3, $4),
 * payload containing $5, headers containing $6, at most $7 per second (NULL: unlimited); $8:
 * only count. The job's row.
 */
export const ReplayJobStart = new Statement<
  ReplayJobRow,
  [
    queue: string,
    into: string,
    from: Date | null,
    to: Date | null,
    payloadFilterJson: string | null,
    headersFilterJson: string | null,
    ratePerSecond: number | null,
    dryRun: boolean,
  ]
>(
  'ReplayJobStart',
  `
  SELECT * FROM holdline.start_replay($1, $2, $3::timestamptz, $4::timestamptz, $5::jsonb,
                                      $6::jsonb, $7::double precision, $8::boolean)`,
);

/**
 * Starts a redrive of queue $1's dead letters (holdline.start_redrive): payload containing $2,
 * headers containing $3, at most $4 of them, $5 per second; $6: only count. The job's row.
 */
export const ReplayJobStartRedrive = new Statement<
  ReplayJobRow,
  [
    queue: string,
    payloadFilterJson: string | null,
    headersFilterJson: string | null,
    max: number | null,
    ratePerSecond: number | null,
    dryRun: boolean,
  ]
>(
  'ReplayJobStartRedrive',
  `
  SELECT * FROM holdline.start_redrive($1, $2::jsonb, $3::jsonb, $4::bigint,
                                       $5::double precision, $6::boolean)`,
);

/** Job $1, or no row. */
export const ReplayJobGetById = new Statement<ReplayJobRow, [id: string]>(
  'ReplayJobGetById',
  `SELECT * FROM holdline.replay_jobs WHERE id = $1::bigint`,
);

/** Queue $1's jobs (those replaying its archive), newest first, $2 at most. */
export const ReplayJobListByQueue = new Statement<ReplayJobRow, [queue: string, limit: number]>(
  'ReplayJobListByQueue',
  `SELECT * FROM holdline.replay_jobs WHERE queue = $1 ORDER BY id DESC LIMIT $2::integer`,
);

/** Cancels job $1 if it runs (holdline.cancel_replay); the job as it is after, or no row. */
export const ReplayJobCancel = new Statement<ReplayJobRow, [id: string]>(
  'ReplayJobCancel',
  `SELECT * FROM holdline.cancel_replay($1::bigint)`,
);

/** Ids of running jobs due for a batch as of $2 (NULL: now()), oldest first, $1 at most. */
export const ReplayJobListDue = new Statement<{ id: string }, [limit: number, now: Date | null]>(
  'ReplayJobListDue',
  `
  SELECT id::text AS id FROM holdline.replay_jobs
  WHERE state = 'running' AND next_batch_at <= coalesce($2::timestamptz, now())
  ORDER BY next_batch_at, id
  LIMIT $1::integer`,
);

/** Runs job $1's next batch of at most $2 messages as of $3 (holdline.replay_batch). */
export const ReplayJobRunBatch = new Statement<
  ReplayJobRow,
  [id: string, limit: number, now: Date | null]
>(
  'ReplayJobRunBatch',
  `SELECT * FROM holdline.replay_batch($1::bigint, $2::integer, $3::timestamptz)`,
);
