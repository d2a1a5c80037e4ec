import { badInput, translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { latencyQuantile } from './latency-histogram.ts';
import { requireQueue } from './queues.ts';
import { QueueHistoryRead } from './sql/index.ts';
import type { QueueHistoryPoint } from './types.ts';
import { validateInteger, validateOptionalDate, validateQueueName } from './validation.ts';

/** Width of a history point when `step` is not given: a minute, the rollup's own width. */
export const HISTORY_STEP_SECONDS_DEFAULT = 60;
/** The widest point: a day. */
export const HISTORY_STEP_SECONDS_MAX = 86_400;
/** Most points one queueHistory answers: a week of minutes. */
export const HISTORY_POINTS_MAX = 10_080;

/** Parameters of {@link queueHistory}. */
export interface QueueHistoryParams {
  queue: string;
  from: Date;
  to: Date;
  /**
   * Seconds per point, a multiple of 60 up to {@link HISTORY_STEP_SECONDS_MAX}. Default
   * {@link HISTORY_STEP_SECONDS_DEFAULT}.
   */
  stepSeconds?: number | null;
}

/**
 * A queue's stats history over [from, to) in points of `stepSeconds`: each point a bucket
 * whose start is a multiple of the step since the Unix epoch (so points stay put as a chart
 * moves on), from the bucket holding `from` to the one holding the last moment before `to`,
 * every bucket present (counts 0, depth null where nothing was recorded). Counts are summed
 * over the bucket's minutes; depth and oldest ready age are the bucket's last sample; the
 * latency percentiles come from the bucket's summed histogram. QUEUE_NOT_FOUND when the
 * queue does not exist; BAD_USER_INPUT on a bad range (reversed or empty), a step that is
 * not a whole number of minutes, or more than {@link HISTORY_POINTS_MAX} points.
 */
export async function queueHistory(
  db: Executor,
  params: QueueHistoryParams,
): Promise<QueueHistoryPoint[]> {
  const queue = validateQueueName(params.queue);
  const from = validateOptionalDate(params.from, 'from');
  const to = validateOptionalDate(params.to, 'to');
  if (from === null || to === null) throw badInput('from and to are both needed');
  const step = validateInteger(
    params.stepSeconds ?? HISTORY_STEP_SECONDS_DEFAULT,
    'step',
    60,
    HISTORY_STEP_SECONDS_MAX,
  );
  if (step % 60 !== 0) throw badInput(`step must be a whole number of minutes; got ${step}`);
  if (from.getTime() >= to.getTime()) {
    throw badInput(`from (${from.toISOString()}) must be before to (${to.toISOString()})`);
  }
  const stepMs = step * 1000;
  const firstMs = Math.floor(from.getTime() / stepMs) * stepMs;
  const points = Math.ceil((to.getTime() - firstMs) / stepMs);
  if (points > HISTORY_POINTS_MAX) {
    throw badInput(
      `from–to at step ${step} is ${points} points, over ${HISTORY_POINTS_MAX}: ask for a larger step`,
    );
  }
  return translated(async () => {
    await requireQueue(db, queue);
    const { rows } = await QueueHistoryRead.run(db, [queue, firstMs / 1000, points, step]);
    return rows.map((row) => {
      const latency = row.latency_buckets?.map(Number) ?? [];
      return {
        at: new Date(firstMs + row.n * stepMs),
        sent: row.sent,
        delivered: row.delivered,
        acked: row.acked,
        nacked: row.nacked,
        deadLettered: row.dead_lettered,
        leaseExpired: row.lease_expired,
        depth: row.depth,
        oldestReadyAgeSeconds: row.oldest_ready_age,
        deliveryLatencyP50Seconds: latencyQuantile(latency, 0.5),
        deliveryLatencyP95Seconds: latencyQuantile(latency, 0.95),
        deliveryLatencyP99Seconds: latencyQuantile(latency, 0.99),
      };
    });
  });
}
