/**
 * The engine's statements for bulk actions on holdline.messages (src/queue/bulk.ts): each
 * acts on one chunk, the unleased messages of queue $1 with ids in [$2, $3) that match the
 * selection from $5 (messageSelection), at most $4 of them in id order, locked with SKIP
 * LOCKED so that a message being leased or changed at that moment is passed over, not
 * waited for. Each returns how many it changed and the highest id it changed, from which
 * the caller places the next chunk. Not prepared: each runs with its values planned in, so
 * a narrow id range is read through the primary key and parts of the selection left NULL
 * fold away.
 */
import type { MessageSelectionParams } from './message.ts';
import { messageSelection } from './message.ts';
import { Statement } from '../../db/statement.ts';

/** What a chunk statement returns: rows changed and the highest id among them (null: none). */
export interface MessageChunkResult {
  changed: number;
  last_id: string | null;
}

/** The parameters every chunk statement starts with. */
type ChunkParams = [
  queue: string,
  fromId: string,
  toId: string,
  limit: number,
  ...selection: MessageSelectionParams,
];

/** The CTE `chosen`: the chunk's messages, locked; `extra` narrows it further. */
function chosen(extra = ''): string {
  return `
  chosen AS (
    SELECT m.id
    FROM holdline.messages m
    WHERE m.queue = $1 AND m.id >= $2::bigint AND m.id < $3::bigint
      AND m.lease_token IS NULL
      AND ${messageSelection(5)}
      ${extra}
    ORDER BY m.id
    LIMIT $4::integer
    FOR UPDATE SKIP LOCKED
  )`;
}

const CHUNK_RESULT = `SELECT count(*)::integer AS changed, max(id)::text AS last_id FROM changed`;

/** The lowest and highest message id now (NULL when there is none): two probes of the primary key. */
export const MessageGetIdRange = new Statement<
  { min_id: string | null; max_id: string | null },
  []
>(
  'MessageGetIdRange',
  `SELECT min(id)::text AS min_id, max(id)::text AS max_id FROM holdline.messages`,
);

/** Deletes one chunk of matching unleased messages. */
export const MessageDeleteChunk = new Statement<MessageChunkResult, ChunkParams>(
  'MessageDeleteChunk',
  `
  WITH ${chosen()},
  changed AS (
    DELETE FROM holdline.messages m USING chosen
    WHERE m.queue = $1 AND m.id = chosen.id RETURNING m.id
  )
  ${CHUNK_RESULT}`,
);

/**
 * Moves one chunk into queue $12, which the caller has locked shared and seen to exist in
 * the same transaction: deleted from queue $1's partition and inserted into $12's
 * (migrations/0040). A moved message keeps its id, payload, headers, priority, runAt,
 * attempts, group and dead-letter fields; its dedup key is dropped, since keys belong to the
 * queue that held them (as dead-lettering does, migrations/0002).
 */
export const MessageMoveChunk = new Statement<MessageChunkResult, [...ChunkParams, target: string]>(
  'MessageMoveChunk',
  `
  WITH ${chosen()},
  taken AS (
    DELETE FROM holdline.messages m USING chosen
    WHERE m.queue = $1 AND m.id = chosen.id RETURNING m.*
  ),
  changed AS (
    INSERT INTO holdline.messages AS n
      (id, queue, payload, headers, priority, run_at, attempts, group_key, origin_queue,
       last_error, dead_lettered_at, created_at)
    OVERRIDING SYSTEM VALUE
    SELECT t.id, $12, t.payload, t.headers, t.priority, t.run_at, t.attempts, t.group_key,
           t.origin_queue, t.last_error, t.dead_lettered_at, t.created_at
    FROM taken t ORDER BY t.id
    RETURNING n.id
  )
  ${CHUNK_RESULT}`,
);

/** Makes one chunk deliverable now: runAt set to now(); attempts and the rest unchanged. */
export const MessageRetryChunk = new Statement<MessageChunkResult, ChunkParams>(
  'MessageRetryChunk',
  `
  WITH ${chosen('AND m.run_at > now()')},
  changed AS (
    UPDATE holdline.messages m SET run_at = now()
    FROM chosen WHERE m.queue = $1 AND m.id = chosen.id RETURNING m.id
  )
  ${CHUNK_RESULT}`,
);

/**
 * Moves one chunk of dead letters whose origin is $12 back into it, deliverable now with
 * attempts reset (as holdline.redrive, migrations/0040: deleted from queue $1's partition,
 * inserted into $12's); the caller has locked the origin shared and seen it exist.
 * messages_origin_idx (origin_queue, id) serves the id range.
 */
export const MessageRedriveChunk = new Statement<
  MessageChunkResult,
  [...ChunkParams, origin: string]
>(
  'MessageRedriveChunk',
  `
  WITH ${chosen('AND m.origin_queue = $12')},
  taken AS (
    DELETE FROM holdline.messages m USING chosen
    WHERE m.queue = $1 AND m.id = chosen.id RETURNING m.*
  ),
  changed AS (
    INSERT INTO holdline.messages AS n
      (id, queue, payload, headers, priority, run_at, attempts, dedup_key, group_key,
       last_error, created_at)
    OVERRIDING SYSTEM VALUE
    SELECT t.id, t.origin_queue, t.payload, t.headers, t.priority, now(), 0, t.dedup_key,
           t.group_key, t.last_error, t.created_at
    FROM taken t ORDER BY t.id
    RETURNING n.id
  )
  ${CHUNK_RESULT}`,
);

/**
 * The origin queues of queue $1's unleased dead letters that match the selection from $2:
 * whom a redrive would write to, asked before it starts. One read of the matching messages.
 */
export const MessageListDeadLetterOrigins = new Statement<
  { origin_queue: string },
  [queue: string, ...selection: MessageSelectionParams]
>(
  'MessageListDeadLetterOrigins',
  `
  SELECT DISTINCT m.origin_queue
  FROM holdline.messages m
  WHERE m.queue = $1 AND m.origin_queue IS NOT NULL AND m.lease_token IS NULL
    AND ${messageSelection(2)}
  ORDER BY m.origin_queue`,
);
