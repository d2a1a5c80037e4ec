/**
 * The engine's operations as plain functions `fn(db, params)`: internal to src/queue, where
 * QueueEngine calls them. Tests and the benchmarks (which measure the statements without
 * the engine around them) import them from here; runtime code outside src/queue never does
 * (eslint.config.js).
 */
export { ack, ackBatch, ackEach } from './ack.ts';
export { listArchivedMessages } from './archive.ts';
export { countMessages, listMessages } from './browse.ts';
export { deleteMessages, moveMessages, redriveMessages, retryMessages } from './bulk.ts';
export { DequeueMeter } from './dequeue-meter.ts';
export { HistoryMeter } from './history-meter.ts';
export { queueHistory } from './history.ts';
export { LATENCY_BUCKETS, latencyBucket, latencyQuantile } from './latency-histogram.ts';
export { extendLease } from './extend-lease.ts';
export { nack } from './nack.ts';
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
export {
  createSchedule,
  deleteSchedule,
  fireDueSchedules,
  getSchedule,
  listSchedules,
  pauseSchedule,
  resumeSchedule,
} from './schedules.ts';
export { CronSchedule, ON_TIME_WINDOW_MS } from './cron.ts';
export { redrive } from './redrive.ts';
export { cancelReplay, getReplayJob, listReplayJobs, startRedrive, startReplay } from './replay.ts';
export { publish, send, sendBatch } from './send.ts';
export { allQueueStats, getMessage, queueStats, waitingCounts } from './stats.ts';
export { bindQueue, listBindings, unbindQueue } from './topics.ts';
export {
  BATCH_MAX_LIMIT,
  DELAY_MAX_SECONDS,
  ERROR_TEXT_MAX_LENGTH,
  KEY_MAX_LENGTH,
  QUEUE_CONFIG_BOUNDS,
  QUEUE_NAME_PATTERN,
  RECEIVE_MAX_LIMIT,
  TOPIC_BINDING_PATTERN,
  TOPIC_MAX_LENGTH,
  TOPIC_PATTERN,
  WAIT_MAX_SECONDS,
  badInputIf,
  validateBatch,
  validateNumber,
  validateQueueConfig,
  validateSendInput,
  validateTopic,
  validateTopicPattern,
} from './validation.ts';
// Everything of the engine's door too, so a test imports from one place.
export * from './index.ts';
export { WaitHandle, Wakeups } from './wakeups.ts';
