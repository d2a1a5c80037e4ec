import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { AccessControl, listTokens } from '../auth/index.ts';
import { attachWebSocketServer, createGraphQLHandler } from '../graphql/schema.ts';
import type { QueueEngine } from '../queue/index.ts';
import type { Reaper } from '../reaper/reaper.ts';
import type { Config } from './config.ts';
import { loadDashboard } from './dashboard.ts';
import { createHttpServer } from './http.ts';
import { metricsAccess } from './metrics-access.ts';
import type { Metrics } from './metrics.ts';
import { createRuntime } from './runtime.ts';

/**
 * The HTTP server could not listen on HOST:PORT (the address is taken, or not this
 * machine's); the message is one line naming the address and what to change.
 */
export class ListenError extends Error {
  override name = 'ListenError';
}

/** A wired service: construct with createApp, then start() and, once, stop(). */
export interface App {
  engine: QueueEngine;
  reaper: Reaper | undefined;
  httpServer: http.Server;
  /** http://host:port of the listening server (after start). */
  url(): string;
  start(): Promise<void>;
  /** Stops leasing, drains in-flight requests (up to shutdownTimeoutMs), closes everything. */
  stop(): Promise<void>;
}

/**
 * Builds the service: the runtime (pool, LISTEN connection, engine, reaper and metrics, from
 * the composition root in runtime.ts), the GraphQL handler and the HTTP server. Nothing
 * connects until start().
 */
export function createApp(options: {
  config: Config;
  logger: Logger;
  databaseUrl: string;
  listenDatabaseUrl: string;
}): App {
  const { config, logger } = options;
  const runtime = createRuntime({
    logger,
    databaseUrl: options.databaseUrl,
    poolMax: config.poolMax,
    preparedStatements: config.preparedStatements,
    listenDatabaseUrl: options.listenDatabaseUrl,
    pollIntervalMs: config.pollIntervalMs,
    reaper: config.reaperEnabled
      ? {
          intervalMs: config.reaperIntervalMs,
          archivePartitionSeconds: config.archivePartitionSeconds,
          historyRetentionSeconds: config.historyRetentionDays * 86_400,
        }
      : false,
    history: config.historyEnabled,
    metrics: true,
  });
  const { db, engine, reaper } = runtime;
  const metrics = runtime.metrics as Metrics;
  // One token cache for GraphQL and /metrics alike.
  const control =
    config.authRequired || config.metricsTokenRequired
      ? new AccessControl({ db, logger: logger.child({ component: 'auth' }) })
      : undefined;
  const graphql = createGraphQLHandler({
    engine,
    logger: logger.child({ component: 'graphql' }),
    graphiql: config.graphiql,
    introspection: config.introspection,
    maxDepth: config.maxQueryDepth,
    maxCost: config.maxQueryCost,
    allowedOrigins: config.allowedOrigins,
    auth:
      config.authRequired && control !== undefined
        ? {
            control,
            rateLimit:
              config.rateLimitPerSecond > 0
                ? { perSecond: config.rateLimitPerSecond, burst: config.rateLimitBurst }
                : undefined,
          }
        : undefined,
    plugins: [metrics.graphqlPlugin],
  });
  const httpServer = createHttpServer({
    logger: logger.child({ component: 'http' }),
    maxBodyBytes: config.maxBodyBytes,
    routes: {
      graphql: graphql.serve,
      registry: metrics.registry,
      metricsAccess: metricsAccess(config.metricsTokenRequired ? control : undefined),
      ready: () => runtime.ready(),
      dashboard: loadDashboard(),
    },
  });
  let disposeWebSockets: (() => Promise<void>) | undefined;
  let stopping: Promise<void> | undefined;

  const stop = async (): Promise<void> => {
    const started = Date.now();
    logger.info('shutting down');
    // 1. No new leases: long polls return, subscriptions stop receiving.
    await runtime.quiesce();
    // 2. No new connections; idle keep-alive sockets close, in-flight requests finish.
    const closed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
    httpServer.closeIdleConnections();
    // 3. Subscribers' unacked deliveries go back to the queue at once.
    await graphql.releaseSubscriptions();
    await disposeWebSockets?.();
    const left = Math.max(0, config.shutdownTimeoutMs - (Date.now() - started));
    const timer = setTimeout(() => httpServer.closeAllConnections(), left);
    await closed;
    clearTimeout(timer);
    await runtime.stop();
    logger.info({ ms: Date.now() - started }, 'shut down');
  };

  return {
    engine,
    reaper,
    httpServer,
    url() {
      const address = httpServer.address() as AddressInfo;
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return `http://${host}:${address.port}`;
    },
    async start() {
      await runtime.start();
      try {
        await new Promise<void>((resolve, reject) => {
          httpServer.once('error', reject);
          httpServer.listen(config.port, config.host, () => {
            httpServer.off('error', reject);
            resolve();
          });
        });
      } catch (error) {
        // The runtime's pool, LISTEN connection and reaper would keep the process alive.
        await runtime.stop();
        throw listenError(error, config);
      }
      disposeWebSockets = attachWebSocketServer(graphql.yoga, httpServer);
      await warnAboutAccess(config, logger, db);
    },
    stop() {
      stopping ??= stop();
      return stopping;
    },
  };
}

function listenError(error: unknown, config: Pick<Config, 'host' | 'port'>): Error {
  const code = (error as NodeJS.ErrnoException).code;
  const address = `${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`;
  if (code === 'EADDRINUSE') {
    return new ListenError(
      `cannot listen on ${address}: another process holds that address (EADDRINUSE); ` +
        'stop it, or set PORT (or HOST) to a free one',
      { cause: error },
    );
  }
  if (code === 'EADDRNOTAVAIL' || code === 'EACCES' || code === 'ENOTFOUND') {
    const why =
      code === 'EACCES' ? 'the port needs privileges' : 'it is not an address of this machine';
    return new ListenError(
      `cannot listen on ${address}: ${why} (${code}); set HOST or PORT to another one`,
      { cause: error },
    );
  }
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * The one warning at start about who can use the service: with authentication off, anyone
 * who reaches HOST:PORT can use every queue; with it on and no live token, nobody can yet.
 */
async function warnAboutAccess(
  config: Config,
  logger: Logger,
  db: Parameters<typeof listTokens>[0],
): Promise<void> {
  if (!config.authRequired) {
    logger.warn(
      { host: config.host, port: config.port },
      'authentication is off: anyone who can connect may use every queue (AUTH_REQUIRED=true turns it on)',
    );
    return;
  }
  try {
    if ((await listTokens(db)).length === 0) {
      logger.warn(
        'authentication is required and no token exists: create one with `holdline token create`',
      );
    }
  } catch (error) {
    logger.debug({ err: error }, 'tokens not counted at start');
  }
}
