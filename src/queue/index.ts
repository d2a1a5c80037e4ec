/**
 * The queue engine's one door: QueueEngine (the operations of src/queue over a pool, with
 * the process's wake-ups and dequeue meter), QueueMaintenance (the maintainer's statements),
 * their types and errors, and the few input limits other layers check before calling. The
 * operations behind them and the SQL home (./sql/) are internal to src/queue.
 */
export { QueueEngine, POLL_INTERVAL_MS_DEFAULT } from './engine.ts';
export type {
  AuthorizeQueues,
  EngineTransaction,
  QueueEngineEvents,
  QueueEngineOptions,
  ReceiptOptions,
  WaitingReceiveParams,
} from './engine.ts';
export type { AckedMessage } from './ack.ts';
export type { NackedMessage, NackOutcome } from './nack.ts';
export type { CountMessagesParams, ListMessagesParams } from './browse.ts';
export type { BulkSelectionParams } from './bulk.ts';
export { BULK_CHUNK_SIZE_DEFAULT } from './bulk.ts';
export type { ListArchivedMessagesParams } from './archive.ts';
export { ARCHIVED_MESSAGES_FIRST_DEFAULT, ARCHIVED_MESSAGES_FIRST_MAX } from './archive.ts';
export type { RedriveJobParams, ReplayParams } from './replay.ts';
export type { MessageWithPosition } from './stats.ts';
export type { ReceiveParams } from './receive.ts';
export { QueueMaintenance } from './maintenance.ts';
export type { HistoryMeter } from './history-meter.ts';
export type { QueueHistoryParams } from './history.ts';
export {
  HISTORY_POINTS_MAX,
  HISTORY_STEP_SECONDS_DEFAULT,
  HISTORY_STEP_SECONDS_MAX,
} from './history.ts';
export type { MessageTableVacuumState, ReapedLeases } from './maintenance.ts';
export type { FiredSchedule, ScheduleFailure } from './schedules.ts';
export { QueueError, translateDatabaseError } from './errors.ts';
export type { QueueErrorCode } from './errors.ts';
export type { Executor } from './executor.ts';
export type * from './types.ts';
export {
  COUNT_MESSAGES_MAX_DEFAULT,
  COUNT_MESSAGES_MAX_LIMIT,
  LIST_MESSAGES_FIRST_DEFAULT,
  LIST_MESSAGES_FIRST_MAX,
} from './browse.ts';
export {
  BATCH_MAX_LIMIT,
  LEASE_MAX_SECONDS,
  RECEIVE_MAX_LIMIT,
  validateInteger,
  validateQueueName,
} from './validation.ts';
export { WAKEUP_CHANNEL } from './wakeups.ts';
export type { WaitHandle } from './wakeups.ts';
