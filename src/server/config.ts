/**
 * Service configuration from environment variables, read and validated once at start. Each
 * variable has a default (README, "Configuration"); a bad value is a ConfigError naming it.
 */
export interface Config {
  /** PostgreSQL for queries; undefined: start an embedded PostgreSQL. */
  databaseUrl: string | undefined;
  /** Direct connection for LISTEN and the reaper's leader lock; default databaseUrl. */
  listenDatabaseUrl: string | undefined;
  host: string;
  port: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Apply pending migrations at start. */
  migrateOnStart: boolean;
  /** Where the embedded PostgreSQL keeps its data. */
  embeddedDataDir: string;
  embeddedPort: number;
  poolMax: number;
  pollIntervalMs: number;
  reaperEnabled: boolean;
  reaperIntervalMs: number;
  /** Largest HTTP request body accepted. */
  maxBodyBytes: number;
  /** Deepest GraphQL selection accepted. */
  maxQueryDepth: number;
  graphiql: boolean;
  /** How long SIGTERM waits for in-flight work before closing anyway. */
  shutdownTimeoutMs: number;
}

/** Thrown for an invalid variable; the message names it and says what is expected. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Reads the configuration from `env` (default process.env). */
export function loadConfig(env: Env = process.env): Config {
  const databaseUrl = url(env, 'DATABASE_URL');
  return {
    databaseUrl,
    listenDatabaseUrl: url(env, 'LISTEN_DATABASE_URL') ?? databaseUrl,
    host: text(env, 'HOST', '127.0.0.1'),
    port: integer(env, 'PORT', 4000, 0, 65_535),
    logLevel: oneOf(env, 'LOG_LEVEL', LOG_LEVELS, 'info'),
    migrateOnStart: boolean(env, 'MIGRATE_ON_START', true),
    embeddedDataDir: text(env, 'EMBEDDED_DATA_DIR', '.holdline-data'),
    embeddedPort: integer(env, 'EMBEDDED_POSTGRES_PORT', 5433, 1, 65_535),
    poolMax: integer(env, 'POOL_MAX', 10, 1, 1_000),
    pollIntervalMs: integer(env, 'POLL_INTERVAL_MS', 1_000, 10, 60_000),
    reaperEnabled: boolean(env, 'REAPER_ENABLED', true),
    reaperIntervalMs: integer(env, 'REAPER_INTERVAL_MS', 1_000, 10, 60_000),
    maxBodyBytes: integer(env, 'MAX_BODY_BYTES', 8 * 1024 * 1024, 1_024, 1024 * 1024 * 1024),
    maxQueryDepth: integer(env, 'MAX_QUERY_DEPTH', 10, 2, 100),
    graphiql: boolean(env, 'GRAPHIQL', true),
    shutdownTimeoutMs: integer(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
  };
}

function raw(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function text(env: Env, name: string, fallback: string): string {
  return raw(env, name) ?? fallback;
}

function url(env: Env, name: string): string | undefined {
  const value = raw(env, name);
  if (value === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(`${name} must be a postgres:// URL`);
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new ConfigError(`${name} must be a postgres:// URL, got protocol ${parsed.protocol}`);
  }
  return value;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^-?\d+$/.test(value) || n < min || n > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${value}"`);
  }
  return n;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const value = raw(env, name)?.toLowerCase();
  if (value === undefined) return fallback;
  if (['1', 'true', 'yes', 'on'].includes(value)) return true;
  if (['0', 'false', 'no', 'off'].includes(value)) return false;
  throw new ConfigError(`${name} must be true or false, got "${value}"`);
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(`${name} must be one of ${allowed.join(', ')}, got "${value}"`);
  }
  return value as T;
}
