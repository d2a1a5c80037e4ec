import pino from 'pino';
import type { DestinationStream, Logger } from 'pino';
import type { Config } from './config.ts';

/**
 * Fields never written, at any level: credentials (Authorization headers, graphql-ws
 * connectionParams, token secrets, database passwords) and message contents (payloads,
 * and GraphQL variables, which carry them). The service itself logs none of these; this
 * catches objects that carry them by accident (a request, an error with its context).
 * Token names are not secret and are logged as `tokenName`.
 */
export const REDACTED_PATHS = [
  'authorization',
  '*.authorization',
  'req.headers.authorization',
  '*.headers.authorization',
  'req.headers.cookie',
  'connectionParams',
  '*.connectionParams',
  'secret',
  '*.secret',
  '*.connectionString',
  'password',
  '*.password',
  'payload',
  '*.payload',
  'variables',
  '*.variables',
] as const;

/**
 * The process's root logger: pino JSON, one line per event, to stdout unless `destination`
 * is given. Components log through children (`{ component: 'reaper' }`). Payloads are never
 * logged at info level; secrets never at all (see {@link REDACTED_PATHS}).
 */
export function createLogger(
  config: Pick<Config, 'logLevel'>,
  destination?: DestinationStream,
): Logger {
  return pino(
    {
      level: config.logLevel,
      base: { service: 'holdline' },
      // Bearer tokens and connection strings may ride along in error objects or requests.
      redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' },
    },
    destination,
  );
}
