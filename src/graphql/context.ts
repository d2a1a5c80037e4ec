import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { QueueEngine } from '../queue/index.ts';
import type { StreamRegistry } from './abortable-iterator.ts';
import type { RequestAccess } from './authorization.ts';
import type { DeliveryTracker } from './delivery-tracker.ts';
import type { SharedQueueStats } from './stats-stream.ts';

/** Request header carrying a caller's request id. */
export const REQUEST_ID_HEADER = 'x-request-id';

/** A caller's request id is used only when it looks like one (no log injection). */
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** What every resolver receives as its context: built per request (or per WebSocket operation). */
export interface GraphQLContext {
  engine: QueueEngine;
  /** The handler's logger with `requestId` (and the token's name), made on first call. */
  logger(): Logger;
  /** Given by the HTTP server, else the caller's x-request-id when sane, else a fresh UUID. */
  requestId: string;
  /** Settled-delivery news for `deliveries` subscriptions; fed by the ack/nack resolvers. */
  deliveryTracker: DeliveryTracker;
  /** Open subscription streams, ended together at shutdown. */
  streams: StreamRegistry;
  /** Looks at queue stats shared by the queueStats subscriptions of this process. */
  queueStats: SharedQueueStats;
  /** Aborts when the HTTP client goes away; absent over WebSocket. Ends long polls early. */
  signal?: AbortSignal;
  /**
   * What this request may do: everything (authentication off), or its token's scopes.
   * Resolvers check it through authorization.ts before calling the engine.
   */
  access: RequestAccess;
}

/** What one handler's contexts share. */
export interface ContextDependencies {
  engine: QueueEngine;
  logger: Logger;
  deliveryTracker: DeliveryTracker;
  streams: StreamRegistry;
  queueStats: SharedQueueStats;
}

/**
 * The request id of an HTTP request (a Fetch Request through yoga) or of a WebSocket upgrade
 * request (a node IncomingMessage through graphql-ws): the x-request-id header when it is 1
 * to 128 characters of `A-Z a-z 0-9 . _ : -`, else a fresh UUID.
 */
export function requestIdOf(request: Request | IncomingMessage | undefined): string {
  let given: string | null | undefined;
  if (request !== undefined) {
    const headers = request.headers;
    if (typeof headers.get === 'function') {
      given = (headers as Headers).get(REQUEST_ID_HEADER);
    } else {
      const header = (headers as IncomingMessage['headers'])[REQUEST_ID_HEADER];
      given = Array.isArray(header) ? header[0] : header;
    }
  }
  return given != null && REQUEST_ID_PATTERN.test(given) ? given : randomUUID();
}

/**
 * Builds one request's context. Its logger (a pino child with the request's fields) is made
 * on first use: most requests log nothing, and a child per request is measurable work on
 * the service's hot path. A method rather than a getter, because envelop copies the context
 * with Object.assign, which would call a getter on every request.
 */
export function createContext(
  deps: ContextDependencies,
  requestId: string,
  signal: AbortSignal | undefined,
  access: RequestAccess,
): GraphQLContext {
  let logger: Logger | undefined;
  return {
    access,
    engine: deps.engine,
    logger(): Logger {
      // The token's name (never its secret) says who made the request.
      logger ??= deps.logger.child(
        access.kind === 'token' ? { requestId, tokenName: access.principal.name } : { requestId },
      );
      return logger;
    },
    requestId,
    deliveryTracker: deps.deliveryTracker,
    streams: deps.streams,
    queueStats: deps.queueStats,
    signal,
  };
}
