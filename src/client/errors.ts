/**
 * Every code a {@link HoldlineError} may carry: the contract's `extensions.code` values
 * (DESIGN.md), plus `UNAVAILABLE` (the service or its database could not be reached, or the
 * request timed out: the same request may succeed later) and `INTERNAL_SERVER_ERROR` (the
 * service failed unexpectedly, or answered with something this client does not understand).
 */
export type HoldlineErrorCode =
  | 'QUEUE_NOT_FOUND'
  | 'QUEUE_EXISTS'
  | 'BAD_USER_INPUT'
  | 'LEASE_LOST'
  | 'PAYLOAD_TOO_LARGE'
  | 'SCHEDULE_NOT_FOUND'
  | 'SCHEDULE_EXISTS'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'RATE_LIMITED'
  | 'UNAVAILABLE'
  | 'INTERNAL_SERVER_ERROR';

const KNOWN_CODES: ReadonlySet<string> = new Set<HoldlineErrorCode>([
  'QUEUE_NOT_FOUND',
  'QUEUE_EXISTS',
  'BAD_USER_INPUT',
  'LEASE_LOST',
  'PAYLOAD_TOO_LARGE',
  'SCHEDULE_NOT_FOUND',
  'SCHEDULE_EXISTS',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'RATE_LIMITED',
  'UNAVAILABLE',
  'INTERNAL_SERVER_ERROR',
]);

/** Codes after which the same request may succeed when sent again. */
const RETRYABLE_CODES: ReadonlySet<HoldlineErrorCode> = new Set<HoldlineErrorCode>([
  'UNAVAILABLE',
  'RATE_LIMITED',
]);

/** Details of a {@link HoldlineError} beyond its code and message. */
export interface HoldlineErrorOptions {
  cause?: unknown;
  /** HTTP status of the response, when there was one. */
  status?: number;
  /** The GraphQL error's `extensions`, as the service sent them. */
  extensions?: Record<string, unknown>;
  /**
   * True when the request certainly did not reach the service (connection refused, host not
   * found) or was refused before it ran (RATE_LIMITED): sending it again cannot do anything
   * twice, so even a send without a dedupKey may be retried.
   */
  notProcessed?: boolean;
}

/**
 * The one error type the client and worker throw for a failed operation, with the
 * contract's code: branch on `error.code` (`'LEASE_LOST'`, `'QUEUE_NOT_FOUND'`, …), never on
 * the message text. `retryable` says whether the same request may succeed later.
 */
export class HoldlineError extends Error {
  override name = 'HoldlineError';
  /** The contract code (see {@link HoldlineErrorCode}). */
  readonly code: HoldlineErrorCode;
  /** HTTP status of the response, when the failure came with one. */
  readonly status: number | undefined;
  /** The GraphQL error's `extensions` as sent (an unknown code is kept here). */
  readonly extensions: Record<string, unknown> | undefined;
  /** See {@link HoldlineErrorOptions.notProcessed}. */
  readonly notProcessed: boolean;

  constructor(code: HoldlineErrorCode, message: string, options: HoldlineErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status;
    this.extensions = options.extensions;
    this.notProcessed = options.notProcessed ?? false;
  }

  /** True when the same request may succeed if sent again later (UNAVAILABLE, RATE_LIMITED). */
  get retryable(): boolean {
    return RETRYABLE_CODES.has(this.code);
  }
}

/** A code as the service sent it, or INTERNAL_SERVER_ERROR for one this client does not know. */
export function toHoldlineErrorCode(code: unknown): HoldlineErrorCode {
  return typeof code === 'string' && KNOWN_CODES.has(code)
    ? (code as HoldlineErrorCode)
    : 'INTERNAL_SERVER_ERROR';
}

/** True when `error` is a HoldlineError with code `code`. */
export function isHoldlineError(error: unknown, code?: HoldlineErrorCode): error is HoldlineError {
  return error instanceof HoldlineError && (code === undefined || error.code === code);
}
