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
  /**
   * Whether EMBEDDED_DATA_DIR was set. Running as root, a default folder the `postgres` user
   * cannot reach moves under /var/lib/holdline; a folder the user named is refused instead.
   */
  embeddedDataDirGiven: boolean;
  embeddedPort: number;
  poolMax: number;
  /**
   * Run the engine's hot statements as named prepared statements; false behind PgBouncer in
   * transaction mode before 1.21 (src/db/prepared-statements.ts).
   */
  preparedStatements: boolean;
  pollIntervalMs: number;
  reaperEnabled: boolean;
  reaperIntervalMs: number;
  /** Width of one partition of the message archive, in seconds (a UTC day by default). */
  archivePartitionSeconds: number;
  /** Count and keep the stats history behind queueHistory (HISTORY_ENABLED). */
  historyEnabled: boolean;
  /** How long the stats history is kept, in days (HISTORY_RETENTION_DAYS). */
  historyRetentionDays: number;
  /** Largest HTTP request body accepted. */
  maxBodyBytes: number;
  /** Deepest GraphQL selection accepted. */
  maxQueryDepth: number;
  /** Largest GraphQL operation cost accepted (see src/graphql/cost-limit.ts). */
  maxQueryCost: number;
  /** Serve GraphiQL; default on exactly when authentication is off. */
  graphiql: boolean;
  /** Answer introspection queries; default on exactly when authentication is off. */
  introspection: boolean;
  /**
   * METRICS_TOKEN_REQUIRED: /metrics from a non-loopback address needs a token with `read`
   * on every queue (src/server/metrics-access.ts); default authRequired.
   */
  metricsTokenRequired: boolean;
  /**
   * Every request needs a live bearer token. Default: on unless HOST is a loopback address
   * (127.0.0.0/8, ::1, localhost); off on a non-loopback HOST is refused unless
   * allowUnauthenticatedNetwork.
   */
  authRequired: boolean;
  /** ALLOW_UNAUTHENTICATED_NETWORK: accept AUTH_REQUIRED=false on a non-loopback HOST. */
  allowUnauthenticatedNetwork: boolean;
  /** Requests per second per token, sustained; 0: no limit. */
  rateLimitPerSecond: number;
  /** Requests a token may make at once (the bucket size). */
  rateLimitBurst: number;
  /** Browser origins allowed to call the API (CORS_ORIGINS); empty: none. */
  allowedOrigins: string[];
  /** How long SIGTERM waits for in-flight work before closing anyway. */
  shutdownTimeoutMs: number;
  /**
   * How far the heap may grow past its live size between major collections, in percent;
   * 0: V8's own choice (see src/server/heap.ts).
   */
  heapGrowthPercent: number;
}

/** Thrown for an invalid variable; the message names it and says what is expected. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

/** HEAP_GROWTH_PERCENT's default: see src/server/heap.ts and README, "Operating it". */
export const HEAP_GROWTH_PERCENT_DEFAULT = 50;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * Whether `host` only accepts connections from this machine: 127.0.0.0/8, ::1 (also as
 * `[::1]` or IPv4-mapped), or `localhost`. Anything else, `0.0.0.0` and `::` included, is
 * reachable from the network.
 */
export function isLoopbackHost(host: string): boolean {
  const bare = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1');
  if (bare === 'localhost' || bare === '::1' || bare === '0:0:0:0:0:0:0:1') return true;
  const v4 = /^(?:::ffff:)?(\d{1,3})\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.exec(bare);
  return v4 !== null && v4[1] === '127';
}

/**
 * Requests per second per token, sustained (RATE_LIMIT_PER_SECOND). The limit is a guard
 * against one runaway client (a retry loop, a script stuck in a tight loop) taking a whole
 * instance from the others, not a quota: 5,000 a second is about what one instance serves
 * on a 2-core machine, so a consumer that acks each delivery with its own request, or a
 * producer sending one message per request, is never held up by it (the earlier default,
 * 100, capped such a consumer at 100 messages a second). Operators sharing an instance
 * among teams set it to each token's fair share.
 */
export const RATE_LIMIT_PER_SECOND_DEFAULT = 5_000;

/** Reads the configuration from `env` (default process.env). */
export function loadConfig(env: Env = process.env): Config {
  const databaseUrl = url(env, 'DATABASE_URL');
  const host = text(env, 'HOST', '127.0.0.1');
  const loopback = isLoopbackHost(host);
  const authRequired = boolean(env, 'AUTH_REQUIRED', !loopback);
  const allowUnauthenticatedNetwork = boolean(env, 'ALLOW_UNAUTHENTICATED_NETWORK', false);
  if (!authRequired && !loopback && !allowUnauthenticatedNetwork) {
    throw new ConfigError(
      `AUTH_REQUIRED=false with HOST=${host} would let anyone on the network use every queue: ` +
        'listen on 127.0.0.1, or create tokens and leave AUTH_REQUIRED on, or also set ' +
        'ALLOW_UNAUTHENTICATED_NETWORK=true if something in front of the service authenticates',
    );
  }
  const rateLimitPerSecond = integer(
    env,
    'RATE_LIMIT_PER_SECOND',
    RATE_LIMIT_PER_SECOND_DEFAULT,
    0,
    1_000_000,
  );
  return {
    databaseUrl,
    listenDatabaseUrl: url(env, 'LISTEN_DATABASE_URL') ?? databaseUrl,
    host,
    port: integer(env, 'PORT', 4000, 0, 65_535),
    logLevel: oneOf(env, 'LOG_LEVEL', LOG_LEVELS, 'info'),
    migrateOnStart: boolean(env, 'MIGRATE_ON_START', true),
    embeddedDataDir: text(env, 'EMBEDDED_DATA_DIR', '.holdline-data'),
    embeddedDataDirGiven: raw(env, 'EMBEDDED_DATA_DIR') !== undefined,
    embeddedPort: integer(env, 'EMBEDDED_POSTGRES_PORT', 5433, 1, 65_535),
    poolMax: integer(env, 'POOL_MAX', 10, 1, 1_000),
    preparedStatements: boolean(env, 'PREPARED_STATEMENTS', true),
    pollIntervalMs: integer(env, 'POLL_INTERVAL_MS', 1_000, 10, 60_000),
    reaperEnabled: boolean(env, 'REAPER_ENABLED', true),
    reaperIntervalMs: integer(env, 'REAPER_INTERVAL_MS', 1_000, 10, 60_000),
    archivePartitionSeconds: integer(env, 'ARCHIVE_PARTITION_SECONDS', 86_400, 60, 604_800),
    historyEnabled: boolean(env, 'HISTORY_ENABLED', true),
    historyRetentionDays: integer(env, 'HISTORY_RETENTION_DAYS', 7, 1, 90),
    maxBodyBytes: integer(env, 'MAX_BODY_BYTES', 8 * 1024 * 1024, 1_024, 1024 * 1024 * 1024),
    maxQueryDepth: integer(env, 'MAX_QUERY_DEPTH', 10, 2, 100),
    maxQueryCost: integer(env, 'MAX_QUERY_COST', 20_000, 1, 10_000_000),
    graphiql: boolean(env, 'GRAPHIQL', !authRequired),
    introspection: boolean(env, 'INTROSPECTION', !authRequired),
    metricsTokenRequired: boolean(env, 'METRICS_TOKEN_REQUIRED', authRequired),
    authRequired,
    allowUnauthenticatedNetwork,
    rateLimitPerSecond,
    rateLimitBurst: integer(
      env,
      'RATE_LIMIT_BURST',
      Math.max(1, rateLimitPerSecond * 2),
      1,
      10_000_000,
    ),
    allowedOrigins: origins(env, 'CORS_ORIGINS'),
    shutdownTimeoutMs: integer(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    heapGrowthPercent: integer(env, 'HEAP_GROWTH_PERCENT', HEAP_GROWTH_PERCENT_DEFAULT, 0, 1_000),
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

/** A comma-separated list of browser origins (`https://host[:port]`), or `*`. */
function origins(env: Env, name: string): string[] {
  const value = raw(env, name);
  if (value === undefined) return [];
  const list = value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
  for (const item of list) {
    if (item === '*') continue;
    let parsed: URL | undefined;
    try {
      parsed = new URL(item);
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || parsed.origin !== item) {
      throw new ConfigError(
        `${name} must be "*" or comma-separated origins like https://ops.example.com, got "${item}"`,
      );
    }
  }
  return list;
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(`${name} must be one of ${allowed.join(', ')}, got "${value}"`);
  }
  return value as T;
}
