import type { ColumnType, Generated } from 'kysely';

/**
 * Column types of the engine's tables and views in schema `holdline` (see schema.sql for
 * their definitions and column comments). Only this SQL home and tests use them.
 */
declare module '../../db/database.ts' {
  interface Database {
    'holdline.queues': QueuesTable;
    'holdline.messages': MessagesTable;
    'holdline.topic_bindings': TopicBindingsTable;
    'holdline.waiting_consumers': WaitingConsumersTable;
    'holdline.dequeue_counts': DequeueCountsTable;
    'holdline.queue_stats': QueueStatsView;
    'holdline.queue_waiting': QueueWaitingView;
    'holdline.dead_letters': DeadLettersView;
    'holdline.message_archive': MessageArchiveTable;
    'holdline.message_archive_partitions': MessageArchivePartitionsTable;
    'holdline.archived_messages': MessageArchiveTable;
    'holdline.replay_jobs': ReplayJobsTable;
  }
}

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface QueuesTable {
  name: string;
  paused: Generated<boolean>;
  visibility_timeout_seconds: Generated<number>;
  max_attempts: Generated<number>;
  dead_letter_queue: string | null;
  backoff_initial_seconds: Generated<number>;
  backoff_max_seconds: Generated<number>;
  retention_seconds: Generated<number>;
  max_payload_bytes: Generated<number>;
  archive_seconds: Generated<number>;
  /** NULL: no concurrency cap. */
  max_in_flight: number | null;
  /** Both NULL: no rate limit. */
  rate_limit_count: number | null;
  rate_limit_per_seconds: number | null;
  /** NULL: a group delivers one message at a time, in send order. */
  group_max_in_flight: number | null;
  /** Both NULL: no rate limit per group key. */
  group_rate_limit_count: number | null;
  group_rate_limit_per_seconds: number | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface MessagesTable {
  /** bigint: pg returns it as a string so no id above 2^53 is rounded. */
  id: ColumnType<string, never, never>;
  queue: string;
  payload: unknown;
  headers: Record<string, unknown> | null;
  priority: Generated<number>;
  run_at: Timestamp;
  attempts: Generated<number>;
  lease_token: string | null;
  lease_expires_at: Date | null;
  dedup_key: string | null;
  group_key: string | null;
  origin_queue: string | null;
  last_error: string | null;
  dead_lettered_at: Date | null;
  created_at: Timestamp;
}

export interface TopicBindingsTable {
  queue: string;
  pattern: string;
  pattern_regex: ColumnType<string, never, never>;
  created_at: Timestamp;
}

export interface WaitingConsumersTable {
  queue: string;
  listener_pid: number;
  since: Timestamp;
}

export interface DequeueCountsTable {
  queue: string;
  minute: Date;
  deliveries: ColumnType<string, number | string, number | string>;
}

export interface QueueStatsView {
  queue: string;
  /** count(*) is bigint: pg returns strings. */
  ready: string;
  delayed: string;
  leased: string;
  total: string;
  oldest_ready_age: number | null;
}

/** A queue's unleased messages by waiting reason (counts are bigint: strings). */
export interface QueueWaitingView {
  queue: string;
  ready: string;
  delayed: string;
  backing_off: string;
  group_head_in_flight: string;
  queue_paused: string;
  concurrency_cap: string;
  rate_limited: string;
  leased: string;
  max_in_flight: number | null;
}

export interface DeadLettersView {
  id: string;
  queue: string;
  origin_queue: string;
  attempts: number;
  last_error: string | null;
  payload: unknown;
  headers: Record<string, unknown> | null;
  dead_lettered_at: Date | null;
  created_at: Date;
}

/** A message row as the SQL functions return it. */
export type MessageRow = {
  id: string;
  queue: string;
  payload: unknown;
  headers: Record<string, unknown> | null;
  priority: number;
  run_at: Date;
  attempts: number;
  lease_token: string | null;
  lease_expires_at: Date | null;
  dedup_key: string | null;
  group_key: string | null;
  origin_queue: string | null;
  last_error: string | null;
  dead_lettered_at: Date | null;
  created_at: Date;
};

/** holdline.message_archive and the view holdline.archived_messages (migrations/0010). */
export interface MessageArchiveTable {
  /** The id the message had while live; bigint, so a string. */
  id: string;
  queue: string;
  payload: unknown;
  headers: Record<string, unknown> | null;
  priority: number;
  attempts: number;
  group_key: string | null;
  sent_at: Date;
  acked_at: Date;
}

/** An archived message as ArchivedMessageListPage selects it. */
export type ArchivedMessageRow = MessageArchiveTable;

/** holdline.message_archive_partitions: the archive's day partitions and their bounds. */
export interface MessageArchivePartitionsTable {
  partition_name: string;
  starts_at: Date;
  ends_at: Date;
}

/** holdline.replay_jobs (migrations/0011). bigint columns come as strings. */
export interface ReplayJobsTable {
  id: ColumnType<string, never, never>;
  kind: 'replay' | 'redrive';
  queue: string;
  into_queue: string;
  from_at: Date | null;
  to_at: Date | null;
  payload_filter: Record<string, unknown> | null;
  headers_filter: Record<string, unknown> | null;
  rate_per_second: number | null;
  max_messages: string | null;
  dry_run: boolean;
  state: 'running' | 'done' | 'cancelled' | 'failed';
  matched: string;
  replayed: string;
  last_id: string;
  to_id: string;
  next_batch_at: Date;
  last_error: string | null;
  created_at: Date;
  updated_at: Date;
  finished_at: Date | null;
}

/** A row of holdline.replay_jobs as the functions return it. */
export type ReplayJobRow = Omit<ReplayJobsTable, 'id'> & { id: string };
