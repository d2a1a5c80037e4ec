import type { ReplayJob } from '../queue/index.ts';
import { PeriodicService } from './periodic-service.ts';
import type { MaintenanceServiceOptions } from './periodic-service.ts';

/** Archived messages one replay batch enqueues (one transaction), rate permitting. */
export const REPLAY_BATCH_SIZE_DEFAULT = 1_000;
/**
 * Longest a run keeps taking batches before it yields to the loop (so that stop() and
 * other jobs are not held up by one long replay).
 */
const REPLAY_RUN_SLICE_MS = 1_000;
/** Due jobs fetched at once. */
const DUE_JOBS_PER_QUERY = 20;

/** Options for {@link ReplayRunner}. */
export interface ReplayRunnerOptions extends MaintenanceServiceOptions {
  /** Default {@link REPLAY_BATCH_SIZE_DEFAULT}. */
  batchSize?: number;
  /** Told of each batch run, with the job as it is after it. */
  onProgress?: (job: ReplayJob) => void;
}

/**
 * Runs replay jobs while this process leads: every due job gets its
 * next batch, in which the copies and the job's cursor commit together, so a leader killed
 * mid-job leaves it exactly where its last batch ended and the next leader resumes there (no
 * message replayed twice or skipped). A job with a rate is due again when its rate allows.
 */
export class ReplayRunner extends PeriodicService {
  private readonly options: ReplayRunnerOptions;

  constructor(options: ReplayRunnerOptions) {
    super(options.logger, options.intervalMs, 'replay pass failed');
    this.options = options;
  }

  /**
   * Runs batches of the jobs due as of `now` (default: the database clock) until none is due
   * or `sliceMs` has passed, whether or not this process leads. Returns the batches run.
   */
  async runDue(now?: Date, sliceMs = REPLAY_RUN_SLICE_MS): Promise<number> {
    const { maintenance } = this.options;
    const batchSize = this.options.batchSize ?? REPLAY_BATCH_SIZE_DEFAULT;
    const started = Date.now();
    let batches = 0;
    for (;;) {
      const due = await maintenance.dueReplayJobs(DUE_JOBS_PER_QUERY, now);
      if (due.length === 0) return batches;
      for (const id of due) {
        const job = await maintenance.runReplayBatch(id, batchSize, now);
        batches += 1;
        if (job === undefined) continue;
        this.options.onProgress?.(job);
        if (job.state !== 'RUNNING') {
          this.logger.info(
            {
              job: job.id,
              queue: job.queue,
              into: job.into,
              state: job.state,
              replayed: job.replayed,
            },
            'replay job ended',
          );
        }
      }
      // With an injected clock a job without a rate stays due at that same instant after its
      // batch: one round is the whole pass, or it would never end.
      if (now !== undefined || Date.now() - started >= sliceMs) return batches;
    }
  }

  protected override async runOnce(): Promise<void> {
    if (!this.options.isLeader()) return;
    await this.runDue();
  }
}
