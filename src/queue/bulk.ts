import { badInput, translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { QUEUE_LOCK_NAMESPACE, inTransaction } from './executor.ts';
import { validateMessageSelection } from './message-filter.ts';
import type { MessageSelection } from './message-filter.ts';
import { queueNotFound, requireQueue } from './queues.ts';
import {
  MessageDeleteChunk,
  MessageGetIdRange,
  MessageListDeadLetterOrigins,
  MessageMoveChunk,
  MessageRedriveChunk,
  MessageRetryChunk,
  QueueGetByName,
  QueueLockShared,
  QueueWake,
} from './sql/index.ts';
import type { MessageChunkResult } from './sql/index.ts';
import type { MessageFilter, MessageState } from './types.ts';
import { validateInteger, validateQueueName } from './validation.ts';

/**
 * Most messages one chunk of a bulk action changes, in one transaction of its own: small
 * enough that no chunk holds many row locks or much WAL for long, large enough that a
 * million matches take a thousand statements, not a million.
 */
export const BULK_CHUNK_SIZE_DEFAULT = 1_000;
/** The largest chunk an engine may be configured with. */
const BULK_CHUNK_SIZE_MAX = 10_000;

/**
 * Ids a chunk looks through at first. The window doubles after a chunk that found fewer than
 * its limit (sparse matches: cross empty stretches in a few statements) and halves after a
 * full one (dense matches: keep each chunk's range scan short).
 */
const ID_WINDOW_INITIAL = 10_000;

/** What every bulk action selects: the queue's unleased messages matching state and filter. */
export interface BulkSelectionParams {
  queue: string;
  /** READY or DELAYED; default both. LEASED is refused: leased messages are never acted on. */
  state?: MessageState | null;
  filter?: MessageFilter | null;
  /** Messages per chunk. Default {@link BULK_CHUNK_SIZE_DEFAULT}. */
  chunkSize?: number;
}

/** What a bulk action did: how many messages it changed, and the queues now holding ready ones. */
export interface BulkOutcome {
  changed: number;
  /** Queues into which messages became deliverable, whose consumers should be woken. */
  readyIn: string[];
}

/** An authorization hook asked with the queues an action would write to, before it starts. */
export type AuthorizeTargets = (queues: ReadonlySet<string>) => void;

/**
 * Deletes every unleased message of `queue` that matches (see {@link inChunks}). QUEUE_NOT_FOUND,
 * or BAD_USER_INPUT on a bad state or filter, before anything changes.
 */
export async function deleteMessages(
  db: Executor,
  params: BulkSelectionParams,
): Promise<BulkOutcome> {
  const checked = await checkedSelection(db, params);
  const changed = await inChunks(db, checked, (range) =>
    MessageDeleteChunk.run(db, [checked.queue, ...range, ...checked.selection]),
  );
  return { changed, readyIn: [] };
}

/**
 * Moves every unleased message of `queue` that matches into queue `to` (see
 * MessageMoveChunk for what a moved message keeps). BAD_USER_INPUT when `to` is `queue`;
 * QUEUE_NOT_FOUND when either does not exist; both before anything changes. Each chunk holds
 * `to`'s queue lock shared, as a send does, so a deleteQueue of `to` waits for it; if `to` is
 * deleted between chunks, the action stops there with QUEUE_NOT_FOUND (the chunks before it
 * stay moved).
 */
export async function moveMessages(
  db: Executor,
  params: BulkSelectionParams & { to: string },
): Promise<BulkOutcome> {
  const to = validateQueueName(params.to, 'to');
  if (to === params.queue) throw badInput('to must differ from queue: a move needs another queue');
  const checked = await checkedSelection(db, params);
  await translated(() => requireQueue(db, to));
  const changed = await inChunks(db, checked, (range) =>
    intoQueue(db, to, { required: true }, (trx) =>
      MessageMoveChunk.run(trx, [checked.queue, ...range, ...checked.selection, to]),
    ),
  );
  return { changed, readyIn: changed > 0 ? [to] : [] };
}

/**
 * Makes every matching message of `queue` that waits for its runAt (delayed, or backing off
 * after a failure) deliverable now; attempts are kept. Returns how many. QUEUE_NOT_FOUND or
 * BAD_USER_INPUT before anything changes.
 */
export async function retryMessages(
  db: Executor,
  params: Omit<BulkSelectionParams, 'state'>,
): Promise<BulkOutcome> {
  const checked = await checkedSelection(db, { ...params, state: 'DELAYED' });
  const changed = await inChunks(db, checked, async (range) => {
    const result = await MessageRetryChunk.run(db, [checked.queue, ...range, ...checked.selection]);
    if ((result.rows[0]?.changed ?? 0) > 0) await QueueWake.run(db, [checked.queue]);
    return result;
  });
  return { changed, readyIn: changed > 0 ? [checked.queue] : [] };
}

/**
 * Moves every matching dead letter of `queue` (a dead-letter queue) back to its origin
 * queue, deliverable now with attempts reset. `authorize` is asked first with the origin
 * queues the matching dead letters came from, and a refusal changes nothing; only dead
 * letters of those origins are moved, so one that arrives meanwhile from another origin is
 * left alone. Dead letters whose origin queue no longer exists stay where they are.
 * QUEUE_NOT_FOUND or BAD_USER_INPUT before anything changes.
 */
export async function redriveMessages(
  db: Executor,
  params: Omit<BulkSelectionParams, 'state'>,
  authorize?: AuthorizeTargets,
): Promise<BulkOutcome> {
  const checked = await checkedSelection(db, params);
  const { rows } = await translated(() =>
    MessageListDeadLetterOrigins.run(db, [checked.queue, ...checked.selection]),
  );
  const origins = rows.map((row) => row.origin_queue);
  authorize?.(new Set(origins));
  let changed = 0;
  const readyIn: string[] = [];
  for (const origin of origins) {
    const moved = await inChunks(db, checked, (range) =>
      intoQueue(db, origin, { required: false }, (trx) =>
        MessageRedriveChunk.run(trx, [checked.queue, ...range, ...checked.selection, origin]),
      ),
    );
    changed += moved;
    if (moved > 0) readyIn.push(origin);
  }
  return { changed, readyIn };
}

/** A bulk action's queue and selection, checked, with the queue seen to exist. */
interface CheckedSelection {
  queue: string;
  selection: MessageSelection;
  chunkSize: number;
}

async function checkedSelection(
  db: Executor,
  params: BulkSelectionParams,
): Promise<CheckedSelection> {
  const queue = validateQueueName(params.queue);
  if (params.state === 'LEASED') {
    throw badInput('state LEASED: bulk actions never touch messages under a lease');
  }
  const selection = validateMessageSelection(params.state, params.filter);
  await translated(() => requireQueue(db, queue));
  const chunkSize = validateInteger(
    params.chunkSize ?? BULK_CHUNK_SIZE_DEFAULT,
    'chunkSize',
    1,
    BULK_CHUNK_SIZE_MAX,
  );
  return { queue, selection, chunkSize };
}

/**
 * Runs `chunk` in a transaction that first takes `target`'s queue lock shared and checks the
 * queue exists: with `required`, its absence is QUEUE_NOT_FOUND; without, the chunk is
 * skipped (nothing changes). Wakes the target's idle consumers at commit when it changed
 * something.
 */
function intoQueue(
  db: Executor,
  target: string,
  options: { required: boolean },
  chunk: (trx: Executor) => Promise<{ rows: MessageChunkResult[] }>,
): Promise<{ rows: MessageChunkResult[] }> {
  return inTransaction(db, async (trx) => {
    await QueueLockShared.run(trx, [QUEUE_LOCK_NAMESPACE, target]);
    const { rows: queues } = await QueueGetByName.run(trx, [target]);
    if (queues.length === 0) {
      if (options.required) throw queueNotFound(target);
      return { rows: [{ changed: 0, last_id: null }] };
    }
    const result = await chunk(trx);
    if ((result.rows[0]?.changed ?? 0) > 0) await QueueWake.run(trx, [target]);
    return result;
  });
}

/**
 * Runs a bulk action chunk by chunk over the message ids that exist when it starts, each
 * chunk its own transaction (on the pool: so no transaction grows with the number of
 * matches, and producers, who only insert, are never blocked; given a caller's transaction
 * instead, every chunk joins it and nothing commits before it does), and returns the total
 * changed. A chunk acts on at most `chunkSize` matching messages of an id window, the next
 * starting after the last one it changed, or after the window when it was not full. Every id
 * is visited once, so a message changed by one chunk is never met again, and the walk ends
 * at the highest id of the start: messages sent while it runs are not touched.
 */
async function inChunks(
  db: Executor,
  checked: CheckedSelection,
  chunk: (range: [fromId: string, toId: string, limit: number]) => Promise<{
    rows: MessageChunkResult[];
  }>,
): Promise<number> {
  const { rows } = await translated(() => MessageGetIdRange.run(db, []));
  if (rows[0]?.min_id == null || rows[0].max_id == null) return 0;
  const limit = checked.chunkSize;
  const end = BigInt(rows[0].max_id) + 1n;
  let from = BigInt(rows[0].min_id);
  let window = BigInt(ID_WINDOW_INITIAL);
  let total = 0;
  while (from < end) {
    const to = from + window < end ? from + window : end;
    const result = await translated(() => chunk([String(from), String(to), limit]));
    const { changed, last_id: lastId } = result.rows[0] ?? { changed: 0, last_id: null };
    total += changed;
    if (changed >= limit && lastId !== null) {
      from = BigInt(lastId) + 1n;
      window = window / 2n > BigInt(limit) ? window / 2n : BigInt(limit);
    } else {
      from = to;
      window *= 2n;
    }
  }
  return total;
}
