import type { Logger } from 'pino';
import { QueueError } from '../queue/index.ts';
import type { QueueEngine, ReplayJob } from '../queue/index.ts';
import { pause } from './abortable-iterator.ts';

/** How often a replayJob subscription looks: progress moves in batches, a few a second. */
export const REPLAY_JOB_INTERVAL_MS_DEFAULT = 250;

/** Options of {@link streamReplayJob}. */
export interface ReplayJobStreamOptions {
  engine: QueueEngine;
  logger: Logger;
  id: string;
  /** Time between looks, in ms. Default {@link REPLAY_JOB_INTERVAL_MS_DEFAULT}. */
  intervalMs?: number;
}

/**
 * A replay job: as it is at once, then each time its state or counts change, ending after
 * the job ends (DONE, CANCELLED, FAILED). It polls the job's row: the job is run by whichever
 * process leads, often not this one, and a batch sends no NOTIFY.
 */
export async function* streamReplayJob(
  options: ReplayJobStreamOptions,
  signal: AbortSignal,
): AsyncGenerator<ReplayJob, void, undefined> {
  const { engine, id, logger } = options;
  const intervalMs = options.intervalMs ?? REPLAY_JOB_INTERVAL_MS_DEFAULT;
  let lastSent: string | undefined;
  while (!signal.aborted && !engine.stopping) {
    let job: ReplayJob | undefined;
    try {
      job = await engine.replayJob(id);
    } catch (error) {
      if (engine.stopping || signal.aborted) break;
      if (error instanceof QueueError && error.code === 'UNAVAILABLE') {
        logger.warn({ err: error.cause ?? error, job: id }, 'replayJob: database unavailable');
        await pause(engine.pollInterval, signal);
        continue;
      }
      throw error;
    }
    if (job === undefined) return;
    const key = [job.state, job.replayed, job.matched].join('/');
    if (key !== lastSent) {
      lastSent = key;
      yield job;
    }
    if (job.state !== 'RUNNING') return;
    await pause(intervalMs, signal);
  }
}
