import { translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { queueNotFound } from './queues.ts';
import {
  QueueGetByName,
  TopicBindingDelete,
  TopicBindingInsert,
  TopicBindingListByQueue,
} from './sql/index.ts';
import { validateQueueName, validateTopicPattern } from './validation.ts';

/**
 * Binds a queue to a topic pattern: `publish` copies messages whose topic matches into it.
 * Words are dot-separated; `*` matches one word, `#` any number (AMQP topic rules).
 * Idempotent: binding twice is one binding. QUEUE_NOT_FOUND when the queue does not exist.
 */
export async function bindQueue(
  db: Executor,
  params: { queue: string; pattern: string },
): Promise<void> {
  const queue = validateQueueName(params.queue);
  const pattern = validateTopicPattern(params.pattern);
  await translated(async () => {
    const { rows } = await QueueGetByName.run(db, [queue]);
    if (rows.length === 0) throw queueNotFound(queue);
    await TopicBindingInsert.run(db, [queue, pattern]);
  });
}

/** Removes a binding; false when there was none. */
export async function unbindQueue(
  db: Executor,
  params: { queue: string; pattern: string },
): Promise<boolean> {
  const queue = validateQueueName(params.queue);
  const pattern = validateTopicPattern(params.pattern);
  const result = await translated(() => TopicBindingDelete.run(db, [queue, pattern]));
  return (result.numAffectedRows ?? 0n) > 0n;
}

/** A queue's bound patterns. */
export async function listBindings(db: Executor, params: { queue: string }): Promise<string[]> {
  const queue = validateQueueName(params.queue);
  const { rows } = await translated(() => TopicBindingListByQueue.run(db, [queue]));
  return rows.map((r) => r.pattern);
}
