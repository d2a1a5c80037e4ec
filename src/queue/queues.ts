import { QueueError, translated } from './errors.ts';
import { QUEUE_LOCK_NAMESPACE, inTransaction } from './executor.ts';
import type { Executor } from './executor.ts';
import {
  DequeueCountDeleteByQueue,
  MessageDeleteByQueue,
  MessagePurgeByQueue,
  QueueDelete,
  QueueGetByName,
  QueueInsert,
  QueueList,
  QueueHistoryDeleteByQueue,
  QueueLock,
  QueueSetPaused,
  QueueUpdateConfig,
  WaitingConsumerDeleteByQueue,
} from './sql/index.ts';
import type { ConfigParams, QueueRow } from './sql/index.ts';
import type { Queue, QueueConfig } from './types.ts';
import {
  QUEUE_NAME_PATTERN,
  badInputIf,
  validateQueueConfig,
  validateQueueName,
} from './validation.ts';

/** Suffix of the default dead-letter queue's name: `orders` → `orders.dlq`. */
export const DEAD_LETTER_SUFFIX = '.dlq';

/**
 * Settings of a queue created without them; the column defaults in migrations/ say the same,
 * so a queue inserted from plain SQL behaves alike (deadLetterQueue aside: SQL leaves it null).
 */
export const QUEUE_CONFIG_DEFAULTS: QueueConfig = {
  visibilityTimeoutSeconds: 30,
  maxAttempts: 5,
  deadLetterQueue: null,
  backoffInitialSeconds: 1,
  backoffMaxSeconds: 300,
  retentionSeconds: 1_209_600,
  maxPayloadBytes: 1_048_576,
  archiveSeconds: 0,
  maxInFlight: null,
  rateLimit: null,
  groupMaxInFlight: null,
  groupRateLimit: null,
};

function toQueue(row: QueueRow): Queue {
  return {
    name: row.name,
    paused: row.paused,
    createdAt: row.created_at,
    config: {
      visibilityTimeoutSeconds: row.visibility_timeout_seconds,
      maxAttempts: row.max_attempts,
      deadLetterQueue: row.dead_letter_queue,
      backoffInitialSeconds: row.backoff_initial_seconds,
      backoffMaxSeconds: row.backoff_max_seconds,
      retentionSeconds: row.retention_seconds,
      maxPayloadBytes: row.max_payload_bytes,
      archiveSeconds: row.archive_seconds,
      maxInFlight: row.max_in_flight,
      rateLimit:
        row.rate_limit_count === null || row.rate_limit_per_seconds === null
          ? null
          : { count: row.rate_limit_count, perSeconds: row.rate_limit_per_seconds },
      groupMaxInFlight: row.group_max_in_flight,
      groupRateLimit:
        row.group_rate_limit_count === null || row.group_rate_limit_per_seconds === null
          ? null
          : { count: row.group_rate_limit_count, perSeconds: row.group_rate_limit_per_seconds },
    },
  };
}

/** The numeric settings as QueueInsert / QueueUpdateConfig take them: NULL for "not given". */
function numericSettings(config: Partial<QueueConfig>): ConfigParams {
  return [
    config.visibilityTimeoutSeconds ?? null,
    config.maxAttempts ?? null,
    config.backoffInitialSeconds ?? null,
    config.backoffMaxSeconds ?? null,
    config.retentionSeconds ?? null,
    config.maxPayloadBytes ?? null,
    config.archiveSeconds ?? null,
  ];
}

/**
 * Creates a queue. Unset config takes the defaults (docs/semantics.md, "Queue settings"); an unset
 * deadLetterQueue becomes `<name>.dlq`, created when the first message dies; null means
 * none. Fails with QUEUE_EXISTS when the name is taken.
 */
export async function createQueue(
  db: Executor,
  params: { name: string; config?: Partial<QueueConfig> },
): Promise<Queue> {
  const name = validateQueueName(params.name);
  const config = { ...params.config };
  if (config.deadLetterQueue === undefined) {
    const dlq = name + DEAD_LETTER_SUFFIX;
    badInputIf(
      !QUEUE_NAME_PATTERN.test(dlq),
      `the default dead-letter queue name "${dlq}" is longer than 128 characters: set deadLetterQueue`,
    );
    config.deadLetterQueue = dlq;
  }
  validateQueueConfig(name, config, QUEUE_CONFIG_DEFAULTS);
  // Every setting is written: the defaults here are the column defaults of migrations/0001.
  const full: QueueConfig = { ...QUEUE_CONFIG_DEFAULTS, ...config };
  const { rows } = await translated(() =>
    QueueInsert.run(db, [
      name,
      full.deadLetterQueue,
      ...numericSettings(full),
      full.maxInFlight,
      full.rateLimit?.count ?? null,
      full.rateLimit?.perSeconds ?? null,
      full.groupMaxInFlight,
      full.groupRateLimit?.count ?? null,
      full.groupRateLimit?.perSeconds ?? null,
    ]),
  );
  const row = rows[0];
  if (row === undefined) throw new QueueError('QUEUE_EXISTS', `queue "${name}" already exists`);
  return toQueue(row);
}

/** Changes some settings of a queue; the rest stay. Fails with QUEUE_NOT_FOUND. */
export async function configureQueue(
  db: Executor,
  params: { name: string; config: Partial<QueueConfig> },
): Promise<Queue> {
  const name = validateQueueName(params.name);
  const current = await getQueue(db, { name });
  if (current === undefined) throw queueNotFound(name);
  validateQueueConfig(name, params.config, current.config);
  const config = params.config;
  const settings = numericSettings(config);
  const setDeadLetterQueue = config.deadLetterQueue !== undefined;
  const setMaxInFlight = config.maxInFlight !== undefined;
  const setRateLimit = config.rateLimit !== undefined;
  const setGroupMaxInFlight = config.groupMaxInFlight !== undefined;
  const setGroupRateLimit = config.groupRateLimit !== undefined;
  if (
    !setDeadLetterQueue &&
    !setMaxInFlight &&
    !setRateLimit &&
    !setGroupMaxInFlight &&
    !setGroupRateLimit &&
    settings.every((value) => value === null)
  ) {
    return current;
  }
  const { rows } = await translated(() =>
    QueueUpdateConfig.run(db, [
      name,
      setDeadLetterQueue,
      config.deadLetterQueue ?? null,
      ...settings,
      setMaxInFlight,
      config.maxInFlight ?? null,
      setRateLimit,
      config.rateLimit?.count ?? null,
      config.rateLimit?.perSeconds ?? null,
      setGroupMaxInFlight,
      config.groupMaxInFlight ?? null,
      setGroupRateLimit,
      config.groupRateLimit?.count ?? null,
      config.groupRateLimit?.perSeconds ?? null,
    ]),
  );
  const row = rows[0];
  if (row === undefined) throw queueNotFound(name);
  return toQueue(row);
}

/** Pauses or resumes delivery; sends are still accepted while paused. */
export async function setQueuePaused(
  db: Executor,
  params: { name: string; paused: boolean },
): Promise<Queue> {
  const name = validateQueueName(params.name);
  const { rows } = await translated(() => QueueSetPaused.run(db, [name, params.paused]));
  const row = rows[0];
  if (row === undefined) throw queueNotFound(name);
  return toQueue(row);
}

/**
 * Deletes a queue with its messages and bindings; false when there was no such queue.
 * Waits for transactions that are sending to it (they hold the queue lock shared), so no
 * message can land in the deleted queue afterwards. Its dead-letter queue is a queue of
 * its own and stays.
 */
export async function deleteQueue(db: Executor, params: { name: string }): Promise<boolean> {
  const name = validateQueueName(params.name);
  return translated(() =>
    inTransaction(db, async (trx) => {
      await QueueLock.run(trx, [QUEUE_LOCK_NAMESPACE, name]);
      const deleted = await QueueDelete.run(trx, [name]);
      if (deleted.numAffectedRows === 0n) return false;
      await MessageDeleteByQueue.run(trx, [name]);
      await WaitingConsumerDeleteByQueue.run(trx, [name]);
      await DequeueCountDeleteByQueue.run(trx, [name]);
      await QueueHistoryDeleteByQueue.run(trx, [name]);
      return true;
    }),
  );
}

/**
 * Deletes every message of a queue, leased ones included (their receipts then get
 * LEASE_LOST). Returns how many were deleted.
 */
export async function purgeQueue(db: Executor, params: { name: string }): Promise<number> {
  const name = validateQueueName(params.name);
  return translated(async () => {
    const queue = await getQueue(db, { name });
    if (queue === undefined) throw queueNotFound(name);
    const { rows } = await MessagePurgeByQueue.run(db, [name]);
    return Number(rows[0]?.purged ?? 0);
  });
}

/** One queue, or undefined when it does not exist. */
export async function getQueue(db: Executor, params: { name: string }): Promise<Queue | undefined> {
  const name = validateQueueName(params.name);
  const { rows } = await translated(() => QueueGetByName.run(db, [name]));
  const row = rows[0];
  return row === undefined ? undefined : toQueue(row);
}

/** All queues, by name. */
export async function listQueues(db: Executor): Promise<Queue[]> {
  const { rows } = await translated(() => QueueList.run(db, []));
  return rows.map(toQueue);
}

export function queueNotFound(name: string): QueueError {
  return new QueueError('QUEUE_NOT_FOUND', `queue "${name}" does not exist`);
}

/** Resolves when queue `name` exists, else fails with QUEUE_NOT_FOUND. Untranslated: run it in translated(). */
export async function requireQueue(db: Executor, name: string): Promise<void> {
  const { rows } = await QueueGetByName.run(db, [name]);
  if (rows.length === 0) throw queueNotFound(name);
}
