import pino from 'pino';
import type { Logger } from 'pino';
import type { Config } from './config.ts';

/**
 * The process's root logger: pino JSON, one line per event. Components log through
 * children (`{ component: 'reaper' }`). Payloads are never logged at info level.
 */
export function createLogger(config: Pick<Config, 'logLevel'>): Logger {
  return pino({
    level: config.logLevel,
    base: { service: 'holdline' },
    // Bearer tokens and connection strings may ride along in error objects or requests.
    redact: {
      paths: ['req.headers.authorization', '*.connectionString', '*.password'],
      censor: '[redacted]',
    },
  });
}
