import { setTimeout as sleep } from 'node:timers/promises';
import type { SendInput } from '../contract.ts';
import { HoldlineError } from './errors.ts';

/** How a client retries failures that may succeed later (UNAVAILABLE, RATE_LIMITED). */
export interface RetryOptions {
  /** Retries after the first attempt; 0 turns retrying off. Default {@link RETRIES_DEFAULT}. */
  retries?: number;
  /** Cap of the first retry's delay, in ms; doubles per retry. Default {@link RETRY_INITIAL_DELAY_MS_DEFAULT}. */
  initialDelayMs?: number;
  /** Cap on any retry delay, in ms. Default {@link RETRY_MAX_DELAY_MS_DEFAULT}. */
  maxDelayMs?: number;
}

/** Retries after a first failed attempt, when `retry.retries` is not given. */
export const RETRIES_DEFAULT = 3;
/** Cap of the first retry's delay in ms (doubling per retry), when not given. */
export const RETRY_INITIAL_DELAY_MS_DEFAULT = 100;
/** Cap on any retry delay in ms, when not given. */
export const RETRY_MAX_DELAY_MS_DEFAULT = 2_000;

/**
 * Whether sending the same request twice can do something twice. Reads, acks, nacks and
 * lease extensions are fenced or absolute, and a send whose every message has a dedupKey
 * returns the first copy: those are `idempotent`. A send without a dedupKey, a receive
 * (a lost response leaves a lease nobody holds) and a redrive are not.
 */
export type Idempotency = 'idempotent' | 'not-idempotent';

/** A delay drawn uniformly from [0, min(max, initial · 2^retry)] ("full jitter"). */
export function retryDelayMs(retry: number, initialDelayMs: number, maxDelayMs: number): number {
  const cap = Math.min(maxDelayMs, initialDelayMs * 2 ** retry);
  return Math.random() * cap;
}

/**
 * Runs `attempt` until it succeeds, it fails with something other than a retryable
 * HoldlineError, or the retries are used up. A not-idempotent operation is retried only
 * when the failure proves the request was never processed (connection refused,
 * RATE_LIMITED): after an ambiguous failure (a timeout, a 503, a reset connection) it might
 * have run, and running it again could send a message twice.
 */
export async function withRetries<T>(
  idempotency: Idempotency,
  options: Required<RetryOptions>,
  attempt: () => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  for (let retry = 0; ; retry++) {
    try {
      return await attempt();
    } catch (error) {
      const again =
        error instanceof HoldlineError &&
        error.retryable &&
        (idempotency === 'idempotent' || error.notProcessed) &&
        retry < options.retries &&
        signal?.aborted !== true;
      if (!again) throw error;
      await sleep(retryDelayMs(retry, options.initialDelayMs, options.maxDelayMs), undefined, {
        signal,
      });
    }
  }
}

/** RetryOptions with the defaults filled in, validated. */
export function retryOptions(options: RetryOptions | undefined): Required<RetryOptions> {
  const resolved = {
    retries: options?.retries ?? RETRIES_DEFAULT,
    initialDelayMs: options?.initialDelayMs ?? RETRY_INITIAL_DELAY_MS_DEFAULT,
    maxDelayMs: options?.maxDelayMs ?? RETRY_MAX_DELAY_MS_DEFAULT,
  };
  for (const [name, value] of Object.entries(resolved)) {
    if (!Number.isFinite(value) || value < 0) {
      throw new HoldlineError('BAD_USER_INPUT', `retry.${name} must be a number >= 0`);
    }
  }
  return resolved;
}

/** A send may be repeated only when every message carries a dedupKey (the first copy is
 * then returned again instead of a second one being made). */
export function sendIdempotency(messages: readonly SendInput[]): Idempotency {
  return messages.length > 0 && messages.every((m) => m.dedupKey != null)
    ? 'idempotent'
    : 'not-idempotent';
}
