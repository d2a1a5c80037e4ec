import { SQLSTATE, isTransientError, sqlState } from '../db/pg-errors.ts';

/** Every code a domain error may carry; the GraphQL layer exposes it as extensions.code. */
export type QueueErrorCode =
  | 'QUEUE_NOT_FOUND'
  | 'QUEUE_EXISTS'
  | 'BAD_USER_INPUT'
  | 'LEASE_LOST'
  | 'PAYLOAD_TOO_LARGE'
  | 'SCHEDULE_NOT_FOUND'
  | 'SCHEDULE_EXISTS'
  | 'UNAVAILABLE';

/**
 * A failure the caller can act on, with a contract code and a message fit to show them.
 * `UNAVAILABLE` means the database could not be reached or the statement hit a transient
 * conflict: the same request may succeed when retried.
 */
export class QueueError extends Error {
  override name = 'QueueError';
  constructor(
    readonly code: QueueErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Shorthand for a BAD_USER_INPUT error. */
export function badInput(message: string): QueueError {
  return new QueueError('BAD_USER_INPUT', message);
}

/**
 * Turns a database error into a QueueError by SQLSTATE, keeping the original as `cause`.
 * Errors with no domain meaning are returned unchanged, to be masked and logged upstream.
 */
export function translateDatabaseError(error: unknown): unknown {
  if (error instanceof QueueError) return error;
  const state = sqlState(error);
  const message = error instanceof Error ? error.message : String(error);
  switch (state) {
    case SQLSTATE.queueNotFound:
      return new QueueError('QUEUE_NOT_FOUND', message, { cause: error });
    case SQLSTATE.payloadTooLarge:
      return new QueueError('PAYLOAD_TOO_LARGE', message, { cause: error });
    case SQLSTATE.badInput:
      return new QueueError('BAD_USER_INPUT', message, { cause: error });
    case SQLSTATE.invalidTextRepresentation:
    case SQLSTATE.numericValueOutOfRange:
    case SQLSTATE.checkViolation:
      // Input that slipped past validation and was refused by a type or a CHECK.
      return new QueueError('BAD_USER_INPUT', 'a value is out of range or malformed', {
        cause: error,
      });
  }
  if (isTransientError(error)) {
    return new QueueError('UNAVAILABLE', 'the database is unavailable; retry the request', {
      cause: error,
    });
  }
  return error;
}

/**
 * Runs a database call and rethrows its failure translated (see translateDatabaseError).
 * Not an async function, so that it adds no await to the hot statements (src/queue/sql/)
 * that run through it.
 */
export function translated<T>(run: () => Promise<T>): Promise<T> {
  try {
    return run().catch(rethrowTranslated);
  } catch (error) {
    // run() threw before returning its promise: reject the same way.
    return Promise.resolve().then(() => rethrowTranslated(error));
  }
}

function rethrowTranslated(error: unknown): never {
  throw translateDatabaseError(error);
}
