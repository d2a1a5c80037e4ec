/**
 * The TypeScript client of Holdline: an HTTP client (createClient), an in-process client
 * (createInProcessClient), a worker loop (consume / QueueWorker) that runs on either, and
 * sends that join the caller's transaction (send / sendBatch / publish).
 */
export { createClient, REQUEST_TIMEOUT_MS_DEFAULT } from './client.ts';
export type { ClientOptions } from './client.ts';
export { consume } from './consume.ts';
export type { ConsumeSource } from './consume.ts';
export { EngineTransport } from './engine-transport.ts';
export { HoldlineError, isHoldlineError } from './errors.ts';
export type { HoldlineErrorCode, HoldlineErrorOptions } from './errors.ts';
export { createInProcessClient } from './in-process.ts';
export type { InProcessClient, InProcessClientOptions } from './in-process.ts';
export {
  RETRIES_DEFAULT,
  RETRY_INITIAL_DELAY_MS_DEFAULT,
  RETRY_MAX_DELAY_MS_DEFAULT,
} from './retry.ts';
export type { RetryOptions } from './retry.ts';
export { publish, send, sendBatch, transactionSender } from './transactional.ts';
export type { TransactionSender, TransactionTarget } from './transactional.ts';
export type {
  Delivery,
  HoldlineClient,
  ListMessagesOptions,
  Message,
  MessageState,
  MessageWithPosition,
  NackOptions,
  Queue,
  QueueConfig,
  QueueStats,
  ReceiveOptions,
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
