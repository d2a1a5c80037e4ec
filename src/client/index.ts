/**
 * The HTTP client of Holdline (createClient) and the worker loop (consume / QueueWorker)
 * that runs on any HoldlineClient. Imports no pg, no kysely and no engine: the in-process
 * client and transactional sends live next to the composition root (src/server/) and are
 * exported by the package entry (src/index.ts).
 */
export { createClient, REQUEST_TIMEOUT_MS_DEFAULT } from './client.ts';
export type { ClientOptions } from './client.ts';
export { consume } from './consume.ts';
export type { ConsumeSource } from './consume.ts';
export { HoldlineError, isHoldlineError } from './errors.ts';
export type { HoldlineErrorCode, HoldlineErrorOptions } from './errors.ts';
export {
  RETRIES_DEFAULT,
  RETRY_INITIAL_DELAY_MS_DEFAULT,
  RETRY_MAX_DELAY_MS_DEFAULT,
} from './retry.ts';
export type { RetryOptions } from './retry.ts';
export type { HoldlineClient } from './holdline-client.ts';
export type {
  ArchiveFilter,
  ArchivedMessage,
  ArchivedMessagePage,
  ArchivedMessagesOptions,
  BulkSelection,
  CountMessagesOptions,
  MessageFilter,
  QueueHistoryOptions,
  QueueHistoryPoint,
  StartRedriveOptions,
  CatchUp,
  RateLimit,
  Schedule,
  ScheduleInput,
  ScheduledMessage,
  WaitingReason,
  Delivery,
  ListMessagesOptions,
  Message,
  MessageState,
  MessageWithPosition,
  NackOptions,
  Queue,
  QueueConfig,
  QueueStats,
  ReceiveOptions,
  ReplayJob,
  ReplayJobKind,
  ReplayJobState,
  ReplayOptions,
  SendInput,
  WorkerTransport,
} from './types.ts';
export {
  ACK_BATCH_SIZE_DEFAULT,
  ACK_DELAY_MS_DEFAULT,
  CONCURRENCY_DEFAULT,
  QueueWorker,
  RELEASED_ERROR_TEXT,
  STOP_TIMEOUT_MS_DEFAULT,
  WAIT_SECONDS_DEFAULT,
} from './worker.ts';
export type {
  ConsumeOptions,
  HandlerContext,
  MessageHandler,
  QueueWorkerEvents,
  StopOptions,
  WorkerLogger,
  WorkerOperation,
} from './worker.ts';
