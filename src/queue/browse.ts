import { badInput, translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { toMessage } from './message-row.ts';
import { queueNotFound } from './queues.ts';
import { MessageListPage, QueueGetByName } from './sql/index.ts';
import type { Message, MessageState } from './types.ts';
import { validateInteger, validateQueueName } from './validation.ts';

/** Messages one page of {@link listMessages} returns when `first` is not given. */
export const LIST_MESSAGES_FIRST_DEFAULT = 50;
/** Most messages one page of {@link listMessages} may return. */
export const LIST_MESSAGES_FIRST_MAX = 1000;

const MESSAGE_ID_PATTERN = /^[1-9][0-9]{0,18}$/;
const MESSAGE_STATES: readonly MessageState[] = ['READY', 'DELAYED', 'LEASED'];

/** Parameters of {@link listMessages}. */
export interface ListMessagesParams {
  queue: string;
  /** Only messages in this state; default all. States are judged at the database's now(). */
  state?: MessageState | null;
  /** Page size, 1 to {@link LIST_MESSAGES_FIRST_MAX}. Default {@link LIST_MESSAGES_FIRST_DEFAULT}. */
  first?: number | null;
  /** Cursor: only messages with a greater id (pass the last id of the previous page). */
  after?: string | null;
}

/**
 * One page of a queue's messages in send order (id ascending), for inspection: what is
 * waiting, what is held, what sits in a dead-letter queue. Keyset-paginated by id, so a page
 * costs the same wherever it starts and messages acked meanwhile never shift later pages.
 * Read-only and lock-free: it takes no row locks and may show a message in the state it had
 * a moment ago. Fails with QUEUE_NOT_FOUND when the queue does not exist, BAD_USER_INPUT on a
 * bad state, page size or cursor.
 *
 * Not for the hot path: there is no (queue, id) index, so it walks the primary key from the
 * cursor and filters by queue; fine for browsing, too slow to poll on a large table.
 */
export async function listMessages(db: Executor, params: ListMessagesParams): Promise<Message[]> {
  const queue = validateQueueName(params.queue);
  const first = validateInteger(
    params.first ?? LIST_MESSAGES_FIRST_DEFAULT,
    'first',
    1,
    LIST_MESSAGES_FIRST_MAX,
  );
  const state = params.state ?? null;
  if (state !== null && !MESSAGE_STATES.includes(state)) {
    throw badInput(`state must be one of ${MESSAGE_STATES.join(', ')}`);
  }
  const after = params.after ?? null;
  if (after !== null && !MESSAGE_ID_PATTERN.test(after)) {
    throw badInput('after must be a message id (a positive integer)');
  }

  return translated(async () => {
    const { rows: queues } = await QueueGetByName.run(db, [queue]);
    if (queues.length === 0) throw queueNotFound(queue);
    // The state filter and the state reported use the same clock, the statement's now().
    const { rows } = await MessageListPage.run(db, [queue, state, first, after]);
    return rows.map((row) => toMessage(row, row.observed_at));
  });
}
