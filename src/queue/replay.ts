import { validateArchiveSelection } from './archive.ts';
import { badInput, translated } from './errors.ts';
import type { Executor } from './executor.ts';
import {
  ReplayJobCancel,
  ReplayJobGetById,
  ReplayJobListByQueue,
  ReplayJobStart,
} from './sql/index.ts';
import type { ReplayJobRow } from './sql/tables.ts';
import type { ArchiveFilter, ReplayJob, ReplayJobState } from './types.ts';
import { validateQueueName } from './validation.ts';

/** Fastest replay rate a caller may ask for, in messages per second (far above what runs). */
export const REPLAY_RATE_MAX = 1_000_000;
/** Most jobs replayJobs(queue) lists, newest first. */
export const REPLAY_JOBS_LIST_LIMIT = 100;

const JOB_ID_PATTERN = /^[1-9][0-9]{0,18}$/;

const STATES: Record<ReplayJobRow['state'], ReplayJobState> = {
  running: 'RUNNING',
  done: 'DONE',
  cancelled: 'CANCELLED',
  failed: 'FAILED',
};

/** Parameters of {@link startReplay}. */
export interface ReplayParams {
  /** The queue whose archive is replayed. */
  queue: string;
  /** Where the copies go; default: `queue` itself. */
  into?: string | null;
  /** Only messages sent at or after this time. */
  from?: Date | null;
  /** Only messages sent before this time. */
  to?: Date | null;
  filter?: ArchiveFilter | null;
  /** Most copies per second, above 0; default: as fast as batches go. */
  ratePerSecond?: number | null;
  /** Only count what would be replayed. Default false. */
  dryRun?: boolean | null;
}

/** Maps a replay_jobs row to the API's ReplayJob. */
export function toReplayJob(row: ReplayJobRow): ReplayJob {
  const filter =
    row.payload_filter === null && row.headers_filter === null
      ? null
      : { payload: row.payload_filter, headers: row.headers_filter };
  return {
    id: String(row.id),
    queue: row.queue,
    into: row.into_queue,
    from: row.from_at,
    to: row.to_at,
    filter,
    ratePerSecond: row.rate_per_second,
    dryRun: row.dry_run,
    state: STATES[row.state],
    matched: Number(row.matched),
    replayed: Number(row.replayed),
    lastError: row.last_error,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    finishedAt: row.finished_at,
  };
}

/**
 * Starts a replay job (holdline.start_replay): the archived messages of `queue` that match
 * are re-enqueued into `into` by the leader, in batches, in their original send order, each
 * with a new id and header `holdline-original-id`. The job covers what is archived when it
 * starts. A dry run only counts (`matched`) and is DONE at once. Checked before anything is
 * recorded: QUEUE_NOT_FOUND for either queue, BAD_USER_INPUT for a bad range, filter or rate.
 */
export async function startReplay(db: Executor, params: ReplayParams): Promise<ReplayJob> {
  const queue = validateQueueName(params.queue);
  const into = validateQueueName(params.into ?? queue, 'into');
  const selection = validateArchiveSelection(params);
  const rate = params.ratePerSecond ?? null;
  if (
    rate !== null &&
    (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0 || rate > REPLAY_RATE_MAX)
  ) {
    throw badInput(
      `ratePerSecond must be a number above 0, at most ${REPLAY_RATE_MAX}; got ${String(rate)}`,
    );
  }
  const dryRun = params.dryRun ?? false;
  if (typeof dryRun !== 'boolean') throw badInput('dryRun must be true or false');
  const { rows } = await translated(() =>
    ReplayJobStart.run(db, [
      queue,
      into,
      selection.from,
      selection.to,
      selection.payloadFilterJson,
      selection.headersFilterJson,
      rate,
      dryRun,
    ]),
  );
  return toReplayJob(rows[0]!);
}

function validateJobId(id: unknown): string {
  if (typeof id !== 'string' || !JOB_ID_PATTERN.test(id)) {
    throw badInput('id must be a replay job id (a positive integer)');
  }
  return id;
}

/** One job, or undefined when there is none with that id. */
export async function getReplayJob(
  db: Executor,
  params: { id: string },
): Promise<ReplayJob | undefined> {
  const id = validateJobId(params.id);
  const { rows } = await translated(() => ReplayJobGetById.run(db, [id]));
  return rows[0] === undefined ? undefined : toReplayJob(rows[0]);
}

/** The newest {@link REPLAY_JOBS_LIST_LIMIT} jobs replaying `queue`'s archive, newest first. */
export async function listReplayJobs(
  db: Executor,
  params: { queue: string },
): Promise<ReplayJob[]> {
  const queue = validateQueueName(params.queue);
  const { rows } = await translated(() =>
    ReplayJobListByQueue.run(db, [queue, REPLAY_JOBS_LIST_LIMIT]),
  );
  return rows.map(toReplayJob);
}

/**
 * Cancels a running job: no batch starts after this returns (one in flight finishes first).
 * Copies already enqueued stay. A job that had ended is returned as it is; undefined when
 * there is no such job.
 */
export async function cancelReplay(
  db: Executor,
  params: { id: string },
): Promise<ReplayJob | undefined> {
  const id = validateJobId(params.id);
  const { rows } = await translated(() => ReplayJobCancel.run(db, [id]));
  return rows[0] === undefined ? undefined : toReplayJob(rows[0]);
}
