/**
 * The engine's statements on the archive: holdline.message_archive, its day partitions
 * (migrations/0010) and the archive_matches function behind browsing and replay (0011).
 */
import type { ArchivedMessageRow } from './tables.ts';
import { Statement } from '../../db/statement.ts';

/**
 * One page of queue $1's archive in send order (id) after id $2 (NULL: from the start), $7 at
 * most: messages sent in [$3, $4) (NULL: open) whose payload contains $5 and headers contain
 * $6 (NULL: any), within the queue's archive_seconds as of now() (holdline.archive_matches).
 * Walks the partitions' (queue, id) indexes from the cursor; partitions acked before $3 are
 * pruned.
 */
export const ArchivedMessageListPage = new Statement<
  ArchivedMessageRow,
  [
    queue: string,
    after: string | null,
    from: Date | null,
    to: Date | null,
    payloadFilterJson: string | null,
    headersFilterJson: string | null,
    first: number,
  ]
>(
  'ArchivedMessageListPage',
  `
  SELECT m.id::text AS id, m.queue, m.payload, m.headers, m.priority, m.attempts, m.group_key,
         m.sent_at, m.acked_at
  FROM holdline.archive_matches($1, $2::bigint, NULL, $3::timestamptz, $4::timestamptz,
                                $5::jsonb, $6::jsonb, now()) AS m
  LIMIT $7::integer`,
);

/**
 * Creates the archive's missing partitions, $3 seconds wide, through $1 partitions after the
 * one holding $2 (NULL: now()), moving rows of the default partition into theirs
 * (holdline.archive_create_partitions); the names created.
 */
export const ArchivePartitionCreateAhead = new Statement<
  { name: string },
  [ahead: number, now: Date | null, widthSeconds: number]
>(
  'ArchivePartitionCreateAhead',
  `
  SELECT name
  FROM holdline.archive_create_partitions($1::integer, $2::timestamptz, $3::integer) AS name`,
);

/**
 * Drops, whole, the day partitions past the longest retention of the queues in them as of $1
 * (NULL: now()) (holdline.archive_drop_partitions); the names dropped.
 */
export const ArchivePartitionDropExpired = new Statement<{ name: string }, [now: Date | null]>(
  'ArchivePartitionDropExpired',
  `SELECT name FROM holdline.archive_drop_partitions($1::timestamptz) AS name`,
);
