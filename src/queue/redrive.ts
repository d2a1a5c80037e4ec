import { translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { MessageRedrive } from './sql/index.ts';
import { validateInteger, validateQueueName } from './validation.ts';

/** Most dead letters one redrive moves when `max` is not given. */
export const REDRIVE_MAX_DEFAULT = 10_000;

/**
 * Moves up to `max` dead letters that came from `queue` back into it, deliverable now and
 * with attempts reset. Leased dead letters (someone is consuming the DLQ) are left alone.
 * Returns how many moved; QUEUE_NOT_FOUND when the origin queue does not exist.
 */
export async function redrive(
  db: Executor,
  params: { queue: string; max?: number | null },
): Promise<number> {
  const queue = validateQueueName(params.queue);
  const max = validateInteger(params.max ?? REDRIVE_MAX_DEFAULT, 'max', 1, 1_000_000);
  const { rows } = await translated(() => MessageRedrive.run(db, [queue, max]));
  return rows[0]?.moved ?? 0;
}
