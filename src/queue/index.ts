/**
 * The queue engine: everything other modules may use from src/queue. Operations are plain
 * functions `fn(db, params)` over a Kysely executor (the pool, or a caller's Transaction);
 * QueueEngine bundles them with the per-process state (wake-ups, dequeue meter).
 */
export { ack, ackBatch } from './ack.ts';
export type { AckedMessage } from './ack.ts';
export { LIST_MESSAGES_FIRST_DEFAULT, LIST_MESSAGES_FIRST_MAX, listMessages } from './browse.ts';
export type { ListMessagesParams } from './browse.ts';
export { DequeueMeter } from './dequeue-meter.ts';
export { QueueEngine, POLL_INTERVAL_MS_DEFAULT } from './engine.ts';
export type { QueueEngineEvents, QueueEngineOptions, WaitingReceiveParams } from './engine.ts';
export { QueueError, translateDatabaseError } from './errors.ts';
export type { QueueErrorCode } from './errors.ts';
export type { Executor } from './executor.ts';
export { extendLease } from './extend-lease.ts';
export { nack } from './nack.ts';
export type { NackedMessage, NackOutcome } from './nack.ts';
export {
  QUEUE_CONFIG_DEFAULTS,
  configureQueue,
  createQueue,
  deleteQueue,
  getQueue,
  listQueues,
  purgeQueue,
  setQueuePaused,
} from './queues.ts';
export { decodeReceipt, encodeReceipt } from './receipts.ts';
export { receive } from './receive.ts';
export type { ReceiveParams } from './receive.ts';
export { redrive } from './redrive.ts';
export { publish, send, sendBatch } from './send.ts';
export { allQueueStats, getMessage, queueStats } from './stats.ts';
export type { MessageWithPosition } from './stats.ts';
export { bindQueue, listBindings, unbindQueue } from './topics.ts';
export type * from './types.ts';
export * from './validation.ts';
export { WAKEUP_CHANNEL, WaitHandle, Wakeups } from './wakeups.ts';
