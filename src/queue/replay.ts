import { validateArchiveSelection } from './archive.ts';
import { badInput, translated } from './errors.ts';
import type { Executor } from './executor.ts';
import {
  ReplayJobCancel,
  ReplayJobGetById,
  ReplayJobListByQueue,
  ReplayJobStart,
  ReplayJobStartRedrive,
} from './sql/index.ts';
import type { ReplayJobRow } from './sql/tables.ts';
import type { ArchiveFilter, ReplayJob, ReplayJobState } from './types.ts';
import { validateInteger, validateQueueName } from './validation.ts';

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
    kind: row.kind === 'redrive' ? 'REDRIVE' : 'REPLAY',
    queue: row.queue,
    into: row.into_queue,
    from: row.from_at,
    to: row.to_at,
    filter,
    ratePerSecond: row.rate_per_second,
    max: row.max_messages === null ? null : Number(row.max_messages),
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
  const rate = validateRate(params.ratePerSecond);
  const dryRun = validateDryRun(params.dryRun);
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

/** A rate above 0 and at most {@link REPLAY_RATE_MAX}, or null for none. */
function validateRate(value: number | null | undefined): number | null {
  const rate = value ?? null;
  if (
    rate !== null &&
    (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0 || rate > REPLAY_RATE_MAX)
  ) {
    throw badInput(
      `ratePerSecond must be a number above 0, at most ${REPLAY_RATE_MAX}; got ${String(rate)}`,
    );
  }
  return rate;
}

function validateDryRun(value: boolean | null | undefined): boolean {
  const dryRun = value ?? false;
  if (typeof dryRun !== 'boolean') throw badInput('dryRun must be true or false');
  return dryRun;
}

/** Parameters of {@link startRedrive}. */
export interface RedriveJobParams {
  /** The origin queue whose dead letters move back into it. */
  queue: string;
  /** Only dead letters whose payload and headers contain these JSON objects. */
  filter?: ArchiveFilter | null;
  /** Most dead letters to move, 1 to {@link REDRIVE_JOB_MAX}; default: all. */
  max?: number | null;
  /** Most moves per second, above 0; default: as fast as batches go. */
  ratePerSecond?: number | null;
  /** Only count what would move. Default false. */
  dryRun?: boolean | null;
}

/** Largest `max` of a redrive job. */
export const REDRIVE_JOB_MAX = 1_000_000_000;

/**
 * Starts a redrive job (holdline.start_redrive): dead letters whose origin is `queue` and
 * that match the filter move back to it in id order, ready at once with attempts reset, in
 * batches run by the leader, at most `max` of them, at most `ratePerSecond` a second. The
 * same kind of job as a replay (replayJob, replayJobs, cancelReplay). Leased dead letters
 * are passed over. QUEUE_NOT_FOUND, or BAD_USER_INPUT before anything is recorded.
 */
export async function startRedrive(db: Executor, params: RedriveJobParams): Promise<ReplayJob> {
  const queue = validateQueueName(params.queue);
  const selection = validateArchiveSelection({ filter: params.filter });
  const max =
    params.max === undefined || params.max === null
      ? null
      : validateInteger(params.max, 'max', 1, REDRIVE_JOB_MAX);
  const rate = validateRate(params.ratePerSecond);
  const dryRun = validateDryRun(params.dryRun);
  const { rows } = await translated(() =>
    ReplayJobStartRedrive.run(db, [
      queue,
      selection.payloadFilterJson,
      selection.headersFilterJson,
      max,
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
