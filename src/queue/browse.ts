import { badInput, translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { validateMessageSelection } from './message-filter.ts';
import { toMessage } from './message-row.ts';
import { requireQueue } from './queues.ts';
import { MessageCountMatching, MessageListPage } from './sql/index.ts';
import type { Message, MessageFilter, MessageState } from './types.ts';
import { validateInteger, validateQueueName } from './validation.ts';

/** Messages one page of {@link listMessages} returns when `first` is not given. */
export const LIST_MESSAGES_FIRST_DEFAULT = 50;
/** Most messages one page of {@link listMessages} may return. */
export const LIST_MESSAGES_FIRST_MAX = 1000;
/** How far {@link countMessages} counts when `max` is not given. */
export const COUNT_MESSAGES_MAX_DEFAULT = 100_000;
/** The most `max` of {@link countMessages} may be. */
export const COUNT_MESSAGES_MAX_LIMIT = 1_000_000;

const MESSAGE_ID_PATTERN = /^[1-9][0-9]{0,18}$/;

/** Parameters of {@link listMessages}. */
export interface ListMessagesParams {
  queue: string;
  /** Only messages in this state; default all. States are judged at the database's now(). */
  state?: MessageState | null;
  /** Only messages matching every part given (see MessageFilter). Default: all. */
  filter?: MessageFilter | null;
  /** Page size, 1 to {@link LIST_MESSAGES_FIRST_MAX}. Default {@link LIST_MESSAGES_FIRST_DEFAULT}. */
  first?: number | null;
  /** Cursor: only messages with a greater id (pass the last id of the previous page). */
  after?: string | null;
}

/** Parameters of {@link countMessages}. */
export interface CountMessagesParams {
  queue: string;
  /** Only messages in this state; default all. */
  state?: MessageState | null;
  /** Only messages matching every part given. Default: all. */
  filter?: MessageFilter | null;
  /**
   * Counting stops here, 1 to {@link COUNT_MESSAGES_MAX_LIMIT}: a result equal to it means
   * "at least this many". Default {@link COUNT_MESSAGES_MAX_DEFAULT}.
   */
  max?: number | null;
}

/**
 * One page of a queue's messages in send order (id ascending), for inspection: what is
 * waiting, what is held, what sits in a dead-letter queue, narrowed by a state and a filter.
 * Keyset-paginated by id, so messages acked meanwhile never shift later pages. Read-only and
 * lock-free: it takes no row locks and may show a message in the state it had a moment ago.
 * Fails with QUEUE_NOT_FOUND when the queue does not exist, BAD_USER_INPUT on a bad state,
 * filter, page size or cursor.
 *
 * Not for the hot path: there is no (queue, id) index, so it walks the primary key from the
 * cursor and filters by queue; a filter that matches rarely walks further for a page.
 */
export async function listMessages(db: Executor, params: ListMessagesParams): Promise<Message[]> {
  const queue = validateQueueName(params.queue);
  const first = validateInteger(
    params.first ?? LIST_MESSAGES_FIRST_DEFAULT,
    'first',
    1,
    LIST_MESSAGES_FIRST_MAX,
  );
  const selection = validateMessageSelection(params.state, params.filter);
  const after = params.after ?? null;
  if (after !== null && !MESSAGE_ID_PATTERN.test(after)) {
    throw badInput('after must be a message id (a positive integer)');
  }

  return translated(async () => {
    await requireQueue(db, queue);
    // The state filter and the state reported use the same clock, the statement's now().
    const { rows } = await MessageListPage.run(db, [queue, first, after, ...selection]);
    return rows.map((row) => toMessage(row, row.observed_at));
  });
}

/**
 * How many of a queue's messages are in `state` and match `filter`, counted up to `max`: the
 * number a confirmation shows before a bulk action ("Redrive 37 messages?"). Its cost is
 * bounded by `max`: the scan stops at the max-th match (a filter that matches rarely still
 * reads the queue's messages up to there). A snapshot: messages sent, leased or acked after
 * it change what an action then finds. Same errors as {@link listMessages}.
 */
export async function countMessages(db: Executor, params: CountMessagesParams): Promise<number> {
  const queue = validateQueueName(params.queue);
  const max = validateInteger(
    params.max ?? COUNT_MESSAGES_MAX_DEFAULT,
    'max',
    1,
    COUNT_MESSAGES_MAX_LIMIT,
  );
  const selection = validateMessageSelection(params.state, params.filter);
  return translated(async () => {
    await requireQueue(db, queue);
    const { rows } = await MessageCountMatching.run(db, [queue, max, ...selection]);
    return rows[0]?.matching ?? 0;
  });
}
