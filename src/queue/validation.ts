import { badInput } from './errors.ts';
import type { QueueConfig, RateLimit, SendInput } from './types.ts';

/** Queue names: letters, digits, `_ . -`, 1 to 128 characters (same CHECK in SQL). */
export const QUEUE_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;
/** Topics: dot-separated words of letters, digits, `_ -`. Patterns also allow `*` and `#`. */
export const TOPIC_PATTERN = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
export const TOPIC_BINDING_PATTERN = /^([A-Za-z0-9_-]+|\*|#)(\.([A-Za-z0-9_-]+|\*|#))*$/;
export const TOPIC_MAX_LENGTH = 255;

/** Most messages one receive may lease, and one sendBatch / ackBatch may carry. */
export const RECEIVE_MAX_LIMIT = 1000;
export const BATCH_MAX_LIMIT = 1000;
/** Longest lease (12 hours, as SQS). */
export const LEASE_MAX_SECONDS = 43_200;
/** Longest delay before delivery (one year). */
export const DELAY_MAX_SECONDS = 31_536_000;
/** Longest long-poll wait. */
export const WAIT_MAX_SECONDS = 20;
export const KEY_MAX_LENGTH = 256;
export const ERROR_TEXT_MAX_LENGTH = 8_192;

export function validateQueueName(name: unknown, what = 'queue name'): string {
  if (typeof name !== 'string' || !QUEUE_NAME_PATTERN.test(name)) {
    throw badInput(
      `${what} must be 1 to 128 letters, digits, '_', '.' or '-'; got ${describe(name)}`,
    );
  }
  return name;
}

export function validateTopic(topic: unknown): string {
  if (typeof topic !== 'string' || topic.length > TOPIC_MAX_LENGTH || !TOPIC_PATTERN.test(topic)) {
    throw badInput(
      `topic must be dot-separated words of letters, digits, '_' or '-', at most ${TOPIC_MAX_LENGTH} characters; got ${describe(topic)}`,
    );
  }
  return topic;
}

export function validateTopicPattern(pattern: unknown): string {
  if (
    typeof pattern !== 'string' ||
    pattern.length > TOPIC_MAX_LENGTH ||
    !TOPIC_BINDING_PATTERN.test(pattern)
  ) {
    throw badInput(
      `pattern must be dot-separated words, '*' (one word) or '#' (any words), at most ${TOPIC_MAX_LENGTH} characters; got ${describe(pattern)}`,
    );
  }
  return pattern;
}

/** An integer in [min, max]; `what` names it in the error. */
export function validateInteger(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw badInput(`${what} must be an integer from ${min} to ${max}; got ${describe(value)}`);
  }
  return value;
}

/** A finite number in [min, max]. */
export function validateNumber(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw badInput(`${what} must be a number from ${min} to ${max}; got ${describe(value)}`);
  }
  return value;
}

/** A non-empty array of at most `max` items. */
export function validateBatch<T>(items: readonly T[], what: string, max = BATCH_MAX_LIMIT): void {
  if (!Array.isArray(items) || items.length === 0 || items.length > max) {
    throw badInput(`${what} must hold 1 to ${max} items; got ${items?.length ?? 0}`);
  }
}

/** Checks one message to send; returns its runAt (null: now) so callers need not redo it. */
export function validateSendInput(input: SendInput, index?: number): Date | null {
  const where = index === undefined ? 'message' : `message ${index}`;
  if (input === null || typeof input !== 'object') throw badInput(`${where} must be an object`);
  if (input.payload === undefined || input.payload === null) {
    throw badInput(`${where} needs a payload`);
  }
  const delay = input.delaySeconds ?? null;
  const runAt = input.runAt ?? null;
  if (delay !== null && runAt !== null) {
    throw badInput(`${where}: give delaySeconds or runAt, not both`);
  }
  if (input.priority !== undefined && input.priority !== null) {
    validateInteger(input.priority, `${where} priority`, -2_147_483_648, 2_147_483_647);
  }
  for (const key of ['dedupKey', 'groupKey'] as const) {
    const value = input[key];
    if (value !== undefined && value !== null) {
      if (typeof value !== 'string' || value.length === 0 || value.length > KEY_MAX_LENGTH) {
        throw badInput(`${where} ${key} must be 1 to ${KEY_MAX_LENGTH} characters`);
      }
    }
  }
  const headers = input.headers;
  if (headers !== undefined && headers !== null) {
    if (typeof headers !== 'object' || Array.isArray(headers)) {
      throw badInput(`${where} headers must be a JSON object`);
    }
  }
  if (delay !== null) {
    validateInteger(delay, `${where} delaySeconds`, 0, DELAY_MAX_SECONDS);
    return delay === 0 ? null : new Date(Date.now() + delay * 1000);
  }
  if (runAt !== null) {
    if (!(runAt instanceof Date) || Number.isNaN(runAt.getTime())) {
      throw badInput(`${where} runAt must be a valid date-time`);
    }
    if (runAt.getTime() > Date.now() + DELAY_MAX_SECONDS * 1000) {
      throw badInput(`${where} runAt must be at most one year ahead`);
    }
    return runAt;
  }
  return null;
}

/** Highest concurrency cap a queue may have (maxInFlight); the same CHECK in migrations/0020. */
export const MAX_IN_FLIGHT_LIMIT = 100_000;

/** Highest per-group cap (groupMaxInFlight); the same CHECK in migrations/0024. */
export const GROUP_MAX_IN_FLIGHT_LIMIT = 10_000;

/**
 * Bounds of a rate limit (rateLimit, groupRateLimit); the same CHECKs in migrations/0023 and
 * 0033.
 */
export const RATE_LIMIT_COUNT_LIMIT = 1_000_000;
export const RATE_LIMIT_PER_SECONDS_MIN = 0.001;
export const RATE_LIMIT_PER_SECONDS_MAX = 86_400;

/** Checks a rate limit setting (rateLimit, groupRateLimit); undefined and null pass. */
function validateRateLimit(limit: RateLimit | null | undefined, name: string): void {
  if (limit === undefined || limit === null) return;
  if (typeof limit !== 'object') throw badInput(`${name} must be an object`);
  validateInteger(limit.count, `${name}.count`, 1, RATE_LIMIT_COUNT_LIMIT);
  validateNumber(
    limit.perSeconds,
    `${name}.perSeconds`,
    RATE_LIMIT_PER_SECONDS_MIN,
    RATE_LIMIT_PER_SECONDS_MAX,
  );
}

/** Limits of each queue setting; the same bounds as the CHECKs in migrations/. */
export const QUEUE_CONFIG_BOUNDS = {
  visibilityTimeoutSeconds: { min: 1, max: LEASE_MAX_SECONDS, integer: true },
  maxAttempts: { min: 1, max: 1000, integer: true },
  backoffInitialSeconds: { min: 0, max: 86_400, integer: false },
  backoffMaxSeconds: { min: 0, max: 604_800, integer: false },
  retentionSeconds: { min: 60, max: 31_536_000, integer: true },
  maxPayloadBytes: { min: 1, max: 268_435_456, integer: true },
  archiveSeconds: { min: 0, max: 31_536_000, integer: true },
} as const;

/**
 * Checks a partial queue config. `deadLetterQueue` may be null (no DLQ), `maxInFlight` null
 * (no cap). The backoff pair is
 * checked against `current` so that a change of one keeps initial <= max.
 */
export function validateQueueConfig(
  queueName: string,
  config: Partial<QueueConfig>,
  current?: QueueConfig,
): void {
  if (config === null || typeof config !== 'object') throw badInput('config must be an object');
  for (const [key, bounds] of Object.entries(QUEUE_CONFIG_BOUNDS)) {
    const value = config[key as keyof typeof QUEUE_CONFIG_BOUNDS];
    if (value === undefined) continue;
    if (bounds.integer) validateInteger(value, key, bounds.min, bounds.max);
    else validateNumber(value, key, bounds.min, bounds.max);
  }
  if (config.maxInFlight !== undefined && config.maxInFlight !== null) {
    validateInteger(config.maxInFlight, 'maxInFlight', 1, MAX_IN_FLIGHT_LIMIT);
  }
  if (config.groupMaxInFlight !== undefined && config.groupMaxInFlight !== null) {
    validateInteger(config.groupMaxInFlight, 'groupMaxInFlight', 1, GROUP_MAX_IN_FLIGHT_LIMIT);
  }
  validateRateLimit(config.rateLimit, 'rateLimit');
  validateRateLimit(config.groupRateLimit, 'groupRateLimit');
  if (config.deadLetterQueue !== undefined && config.deadLetterQueue !== null) {
    validateQueueName(config.deadLetterQueue, 'deadLetterQueue');
    if (config.deadLetterQueue === queueName) {
      throw badInput('deadLetterQueue must differ from the queue itself');
    }
  }
  const initial = config.backoffInitialSeconds ?? current?.backoffInitialSeconds;
  const max = config.backoffMaxSeconds ?? current?.backoffMaxSeconds;
  if (initial !== undefined && max !== undefined && initial > max) {
    throw badInput(`backoffInitialSeconds (${initial}) must not exceed backoffMaxSeconds (${max})`);
  }
}

/** A date-time given or not: null when absent, BAD_USER_INPUT when not a valid date. */
export function validateOptionalDate(value: Date | null | undefined, what: string): Date | null {
  if (value === undefined || value === null) return null;
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
    throw badInput(`${what} must be a valid date-time`);
  }
  return value;
}

/**
 * A containment filter (PostgreSQL's @>) as the JSON text the statements take: null when
 * absent; BAD_USER_INPUT unless it is a JSON object (containment of anything else is refused
 * rather than guessed at).
 */
export function containmentFilterJson(value: unknown, what: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw badInput(`${what} must be a JSON object (matched by containment, as @>)`);
  }
  return JSON.stringify(value);
}

function describe(value: unknown): string {
  if (typeof value === 'string') {
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  }
  if (value === undefined) return 'nothing';
  return typeof value === 'number' || typeof value === 'boolean' || value === null
    ? String(value)
    : typeof value;
}

/** Throws BAD_USER_INPUT with `message` when `condition` holds. */
export function badInputIf(condition: boolean, message: string): void {
  if (condition) throw badInput(message);
}
