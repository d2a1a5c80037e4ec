/**
 * SQLSTATE codes Holdline reacts to, by name. Errors are told apart by these codes, never
 * by message text. Class HL is Holdline's own, raised by the SQL functions in migrations/.
 */
export const SQLSTATE = {
  badInput: 'HL400',
  outsideQueues: 'HL403',
  queueNotFound: 'HL404',
  payloadTooLarge: 'HL413',
  uniqueViolation: '23505',
  checkViolation: '23514',
  invalidTextRepresentation: '22P02',
  numericValueOutOfRange: '22003',
  serializationFailure: '40001',
  deadlockDetected: '40P01',
  lockNotAvailable: '55P03',
  adminShutdown: '57P01',
  crashShutdown: '57P02',
  cannotConnectNow: '57P03',
  connectionException: '08000',
  connectionDoesNotExist: '08003',
  connectionFailure: '08006',
  tooManyConnections: '53300',
  featureNotSupported: '0A000',
  invalidSqlStatementName: '26000',
} as const;

/**
 * Codes after which the same statement may succeed when run again: serialization
 * conflicts and lost or refused connections. Nothing else is retried.
 */
const TRANSIENT_SQLSTATES: ReadonlySet<string> = new Set([
  SQLSTATE.serializationFailure,
  SQLSTATE.deadlockDetected,
  SQLSTATE.adminShutdown,
  SQLSTATE.crashShutdown,
  SQLSTATE.cannotConnectNow,
  SQLSTATE.connectionException,
  SQLSTATE.connectionDoesNotExist,
  SQLSTATE.connectionFailure,
  SQLSTATE.tooManyConnections,
]);

/** Node socket error codes that mean the database could not be reached. */
const CONNECTION_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** The SQLSTATE of a pg error, or undefined for anything else. */
export function sqlState(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = error.code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** True for failures of the connection itself rather than of a statement. */
export function isConnectionError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && CONNECTION_ERROR_CODES.has(code)) return true;
  const message = (error as { message?: unknown }).message;
  // pg reports a socket closed under a query without a code; these texts are pg's own, the
  // last two pg-pool's when connectionTimeoutMillis runs out (src/db/pool.ts).
  return (
    typeof message === 'string' &&
    (message === 'Connection terminated unexpectedly' ||
      message === 'Connection terminated' ||
      message.startsWith('Client has encountered a connection error') ||
      message === 'timeout exceeded when trying to connect' ||
      message === 'Connection terminated due to connection timeout')
  );
}

/** True when running the same statement again may succeed. */
export function isTransientError(error: unknown): boolean {
  const state = sqlState(error);
  return (state !== undefined && TRANSIENT_SQLSTATES.has(state)) || isConnectionError(error);
}
