import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { context, propagation, trace } from '@opentelemetry/api';
import type { Context } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { DASHBOARD_ASSET_PATH } from './dashboard.ts';
import type { Dashboard } from './dashboard.ts';
import type { MetricsAccess } from './metrics-access.ts';
import { serveStartPage } from './start-page.ts';

/** What the HTTP server routes to. */
export interface HttpRoutes {
  /** Handles /graphql (yoga's node handler); `requestId` goes into the GraphQL context. */
  graphql: (req: IncomingMessage, res: ServerResponse, context: { requestId: string }) => unknown;
  /** Resolves true when the service can serve requests (database up, schema current). */
  ready: () => Promise<boolean>;
  registry: Registry;
  /** Who may read /metrics (metrics-access.ts); undefined: anyone. */
  metricsAccess?: MetricsAccess;
  /** The dashboard at / and its files under /dashboard/; undefined: the start page only. */
  dashboard?: Dashboard;
}

/** Options for {@link createHttpServer}. */
export interface HttpServerOptions {
  routes: HttpRoutes;
  logger: Logger;
  /** Largest request body accepted; larger ones get 413 before yoga reads them. */
  maxBodyBytes: number;
}

/** A request id from the caller when it looks sane, else a new one. */
function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID();
}

/**
 * The trace context a /graphql request runs in: the active one when HTTP instrumentation
 * (an SDK's) already made a server span for it; else the caller's W3C `traceparent`, if it
 * sent one, so that the operation's spans (a send's, and through the message's headers its
 * consumers') join the caller's trace. Without an SDK the propagator reads nothing.
 */
function callerTraceContext(req: IncomingMessage): Context {
  const active = context.active();
  return trace.getSpan(active) === undefined ? propagation.extract(active, req.headers) : active;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/**
 * The service's HTTP server: / (the dashboard, whose files are under /dashboard/; JSON
 * clients get links to the rest), /graphql (queries,
 * mutations, SSE; WebSocket upgrades are attached separately), /healthz (the process is
 * up), /readyz (the database answers and the schema is current), /metrics (Prometheus
 * text, for whom `routes.metricsAccess` admits). Every response carries x-request-id.
 */
export function createHttpServer(options: HttpServerOptions): http.Server {
  const { routes, logger, maxBodyBytes } = options;
  return http.createServer((req, res) => {
    const requestId = requestIdOf(req);
    res.setHeader('x-request-id', requestId);
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const handle = async (): Promise<void> => {
      switch (path) {
        case '/':
          return serveStartPage(req, res, routes.dashboard);
        case '/healthz':
          return json(res, 200, { status: 'ok' });
        case '/readyz': {
          const ready = await routes.ready();
          return json(res, ready ? 200 : 503, { status: ready ? 'ready' : 'unavailable' });
        }
        case '/metrics': {
          const refused = await routes.metricsAccess?.(req);
          if (refused !== undefined) {
            for (const [name, value] of Object.entries(refused.headers)) res.setHeader(name, value);
            return json(res, refused.status, graphqlError(refused.message, refused.code));
          }
          const text = await routes.registry.metrics();
          res.writeHead(200, { 'content-type': routes.registry.contentType });
          res.end(text);
          return;
        }
        case '/graphql': {
          const refusal = bodyRefusal(req, maxBodyBytes);
          if (refusal !== undefined) {
            // A declared body is read and dropped, so the connection can serve the next request.
            if (refusal.status === 413) req.resume();
            return json(res, refusal.status, graphqlError(refusal.message, refusal.code));
          }
          await context.with(callerTraceContext(req), () =>
            routes.graphql(req, res, { requestId }),
          );
          return;
        }
        default:
          if (path.startsWith(DASHBOARD_ASSET_PATH) && routes.dashboard !== undefined) {
            return routes.dashboard.serveAsset(req, res, path);
          }
          return json(res, 404, { error: 'not found' });
      }
    };
    handle().catch((error: unknown) => {
      logger.error({ err: error, requestId, path }, 'request failed');
      if (!res.headersSent) json(res, 500, { error: 'internal error' });
      else res.end();
    });
  });
}

/**
 * Why a /graphql request's body is refused before yoga reads it, if it is. This is the only
 * bound on a body (yoga's own limit is off, src/graphql/schema.ts): the limit applies to the
 * declared length, which Node never reads past; a body without one (chunked) cannot be
 * bounded before yoga buffers it, and a POST must declare one, so both get 411. Any method.
 */
function bodyRefusal(
  req: IncomingMessage,
  maxBodyBytes: number,
): { status: number; message: string; code: string } | undefined {
  const declared = req.headers['content-length'];
  if (declared === undefined) {
    if (req.method !== 'POST' && req.headers['transfer-encoding'] === undefined) return undefined;
    return { status: 411, message: 'a Content-Length header is required', code: 'BAD_USER_INPUT' };
  }
  const length = Number(declared);
  if (Number.isFinite(length) && length <= maxBodyBytes) return undefined;
  return {
    status: 413,
    message: `request body exceeds ${maxBodyBytes} bytes`,
    code: 'PAYLOAD_TOO_LARGE',
  };
}

function graphqlError(message: string, code: string): unknown {
  return { errors: [{ message, extensions: { code } }] };
}
