/** The engine's statements on holdline.dequeue_counts: deliveries per queue and minute. */
import { Statement } from '../../db/statement.ts';

/** Adds deliveries $2[i] to queue $1[i]'s count of the current minute. */
export const DequeueCountAddMany = new Statement<never, [queues: string[], deliveries: number[]]>(
  'DequeueCountAddMany',
  `
  INSERT INTO holdline.dequeue_counts (queue, minute, deliveries)
  SELECT q, date_trunc('minute', now()), n
  FROM unnest($1::text[], $2::bigint[]) AS c(q, n)
  ON CONFLICT (queue, minute)
  DO UPDATE SET deliveries = holdline.dequeue_counts.deliveries + excluded.deliveries`,
);

/** Deletes counts older than $1 (an interval text such as '1 hour'). */
export const DequeueCountDeleteOlderThan = new Statement<never, [keep: string]>(
  'DequeueCountDeleteOlderThan',
  `DELETE FROM holdline.dequeue_counts WHERE minute < now() - $1::interval`,
);

/** Deletes queue $1's counts (the queue is being deleted). */
export const DequeueCountDeleteByQueue = new Statement<never, [queue: string]>(
  'DequeueCountDeleteByQueue',
  `DELETE FROM holdline.dequeue_counts WHERE queue = $1`,
);
