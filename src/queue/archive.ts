import { badInput, translated } from './errors.ts';
import type { Executor } from './executor.ts';
import { queueNotFound } from './queues.ts';
import { ArchivedMessageListPage, QueueGetByName } from './sql/index.ts';
import type { ArchivedMessageRow } from './sql/tables.ts';
import type { ArchiveFilter, ArchivedMessage, ArchivedMessagePage } from './types.ts';
import {
  containmentFilterJson,
  validateInteger,
  validateOptionalDate,
  validateQueueName,
} from './validation.ts';

/** Archived messages one page of {@link listArchivedMessages} returns when `first` is not given. */
export const ARCHIVED_MESSAGES_FIRST_DEFAULT = 50;
/** Most archived messages one page may return. */
export const ARCHIVED_MESSAGES_FIRST_MAX = 1000;

const MESSAGE_ID_PATTERN = /^[1-9][0-9]{0,18}$/;

/** Parameters of {@link listArchivedMessages}. */
export interface ListArchivedMessagesParams {
  queue: string;
  /** Only messages sent at or after this time; default: no bound. */
  from?: Date | null;
  /** Only messages sent before this time; default: no bound. */
  to?: Date | null;
  filter?: ArchiveFilter | null;
  /** Page size, 1 to {@link ARCHIVED_MESSAGES_FIRST_MAX}. Default {@link ARCHIVED_MESSAGES_FIRST_DEFAULT}. */
  first?: number | null;
  /** Cursor: the endCursor of the previous page. */
  after?: string | null;
}

/** The checked time range and filters shared by browsing and replay. */
export interface ArchiveSelection {
  from: Date | null;
  to: Date | null;
  payloadFilterJson: string | null;
  headersFilterJson: string | null;
}

/**
 * Checks a time range and a filter: dates valid, `from` not after `to`, each filter part a
 * JSON object (containment of anything else is refused rather than guessed at). Returns them
 * as the statements take them. BAD_USER_INPUT otherwise.
 */
export function validateArchiveSelection(params: {
  from?: Date | null;
  to?: Date | null;
  filter?: ArchiveFilter | null;
}): ArchiveSelection {
  const from = validateOptionalDate(params.from, 'from');
  const to = validateOptionalDate(params.to, 'to');
  if (from !== null && to !== null && from.getTime() > to.getTime()) {
    throw badInput(`from (${from.toISOString()}) must not be after to (${to.toISOString()})`);
  }
  const filter = params.filter ?? null;
  if (filter !== null && (typeof filter !== 'object' || Array.isArray(filter))) {
    throw badInput('filter must be an object with payload and/or headers');
  }
  return {
    from,
    to,
    payloadFilterJson: containmentFilterJson(filter?.payload, 'filter.payload'),
    headersFilterJson: containmentFilterJson(filter?.headers, 'filter.headers'),
  };
}

/** Maps an archive row to the API's ArchivedMessage. */
export function toArchivedMessage(row: ArchivedMessageRow): ArchivedMessage {
  return {
    id: String(row.id),
    queue: row.queue,
    payload: row.payload,
    headers: row.headers,
    priority: row.priority,
    attempts: row.attempts,
    groupKey: row.group_key,
    sentAt: row.sent_at,
    ackedAt: row.acked_at,
  };
}

/**
 * One page of a queue's archive in send order (id ascending): the messages consumers acked
 * while its archiveSeconds was on, for as long as that setting keeps them. Keyset-paginated
 * by id (the cursor is the last id of the page), so a page costs the same wherever it starts.
 * Read-only. QUEUE_NOT_FOUND when the queue does not exist; BAD_USER_INPUT on a bad range,
 * filter, page size or cursor.
 */
export async function listArchivedMessages(
  db: Executor,
  params: ListArchivedMessagesParams,
): Promise<ArchivedMessagePage> {
  const queue = validateQueueName(params.queue);
  const selection = validateArchiveSelection(params);
  const first = validateInteger(
    params.first ?? ARCHIVED_MESSAGES_FIRST_DEFAULT,
    'first',
    1,
    ARCHIVED_MESSAGES_FIRST_MAX,
  );
  const after = params.after ?? null;
  if (after !== null && !MESSAGE_ID_PATTERN.test(after)) {
    throw badInput('after must be a cursor from a previous page (a message id)');
  }
  return translated(async () => {
    const { rows: queues } = await QueueGetByName.run(db, [queue]);
    if (queues.length === 0) throw queueNotFound(queue);
    // One more than asked: whether a next page exists, without a count.
    const { rows } = await ArchivedMessageListPage.run(db, [
      queue,
      after,
      selection.from,
      selection.to,
      selection.payloadFilterJson,
      selection.headersFilterJson,
      first + 1,
    ]);
    const page = rows.slice(0, first).map(toArchivedMessage);
    return {
      messages: page,
      endCursor: page.at(-1)?.id ?? null,
      hasNextPage: rows.length > first,
    };
  });
}
