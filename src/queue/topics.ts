import { translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { queueNotFound } from './queues.ts';
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
    const exists = await db
      .selectFrom('holdline.queues')
      .select('name')
      .where('name', '=', queue)
      .executeTakeFirst();
    if (exists === undefined) throw queueNotFound(queue);
    await db
      .insertInto('holdline.topic_bindings')
      .values({ queue, pattern })
      .onConflict((oc) => oc.columns(['queue', 'pattern']).doNothing())
      .execute();
  });
}

/** Removes a binding; false when there was none. */
export async function unbindQueue(
  db: Executor,
  params: { queue: string; pattern: string },
): Promise<boolean> {
  const queue = validateQueueName(params.queue);
  const pattern = validateTopicPattern(params.pattern);
  const result = await translated(() =>
    db
      .deleteFrom('holdline.topic_bindings')
      .where('queue', '=', queue)
      .where('pattern', '=', pattern)
      .executeTakeFirst(),
  );
  return result.numDeletedRows > 0n;
}

/** A queue's bound patterns. */
export async function listBindings(db: Executor, params: { queue: string }): Promise<string[]> {
  const queue = validateQueueName(params.queue);
  const rows = await translated(() =>
    db
      .selectFrom('holdline.topic_bindings')
      .select('pattern')
      .where('queue', '=', queue)
      .orderBy('pattern')
      .execute(),
  );
  return rows.map((r) => r.pattern);
}
