/** The engine's statements on holdline.topic_bindings. */
import { Statement } from '../../db/statement.ts';

/** Binds queue $1 to pattern $2; binding twice is one binding. */
export const TopicBindingInsert = new Statement<never, [queue: string, pattern: string]>(
  'TopicBindingInsert',
  `INSERT INTO holdline.topic_bindings (queue, pattern) VALUES ($1, $2)
   ON CONFLICT (queue, pattern) DO NOTHING`,
);

/** Removes the binding of queue $1 to pattern $2; rowCount 0 when there was none. */
export const TopicBindingDelete = new Statement<never, [queue: string, pattern: string]>(
  'TopicBindingDelete',
  `DELETE FROM holdline.topic_bindings WHERE queue = $1 AND pattern = $2`,
);

/** Queue $1's bound patterns, in order. */
export const TopicBindingListByQueue = new Statement<{ pattern: string }, [queue: string]>(
  'TopicBindingListByQueue',
  `SELECT pattern FROM holdline.topic_bindings WHERE queue = $1 ORDER BY pattern`,
);
