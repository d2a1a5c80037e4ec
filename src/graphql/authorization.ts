import type { GraphQLError } from 'graphql';
import { createGraphQLError } from 'graphql-yoga';
import type { AccessControl, Principal, ScopeAction } from '../auth/index.ts';
import { translateDatabaseError } from '../queue/index.ts';
import type { QueueEngine, ReceiptOptions, ReplayJob } from '../queue/index.ts';

/** `extensions.code` of a request without a valid token (missing, wrong or revoked). */
export const UNAUTHENTICATED_CODE = 'UNAUTHENTICATED';
/** `extensions.code` of an operation the token's scopes do not allow. */
export const FORBIDDEN_CODE = 'FORBIDDEN';
/** `extensions.code` of a request over the token's rate limit. */
export const RATE_LIMITED_CODE = 'RATE_LIMITED';

/**
 * What one request may do: anything (authentication is off), or what one token's scopes
 * allow. Every resolver asks through the functions below, never by looking at scopes itself.
 */
export type RequestAccess =
  { kind: 'open' } | { kind: 'token'; principal: Principal; control: AccessControl };

/** The access of every request when the handler has no authentication configured. */
export const OPEN_ACCESS: RequestAccess = { kind: 'open' };

/** An UNAUTHENTICATED error; HTTP 401 with a Bearer challenge when it ends a plain request. */
export function unauthenticated(message: string): GraphQLError {
  return createGraphQLError(message, {
    extensions: {
      code: UNAUTHENTICATED_CODE,
      http: { status: 401, headers: { 'www-authenticate': 'Bearer realm="holdline"' } },
    },
  });
}

/** A FORBIDDEN error for one field: other fields of the request still run. */
export function forbidden(message: string): GraphQLError {
  return createGraphQLError(message, { extensions: { code: FORBIDDEN_CODE } });
}

/** A RATE_LIMITED error; HTTP 429 with Retry-After (whole seconds, at least 1). */
export function rateLimited(retryAfterSeconds: number): GraphQLError {
  const seconds = Math.max(1, Math.ceil(retryAfterSeconds));
  return createGraphQLError(`rate limit exceeded for this token: retry in ${seconds} s`, {
    extensions: {
      code: RATE_LIMITED_CODE,
      retryAfterSeconds: seconds,
      http: { status: 429, headers: { 'retry-after': String(seconds) } },
    },
  });
}

/** What Query.viewer answers: who asks, and what they may do (Viewer.allows). */
export interface Viewer {
  authenticated: boolean;
  /** As `action:pattern`, `admin:*` included (not shortened to `admin`). */
  scopes: string[];
  tokenName: string | null;
  access: RequestAccess;
}

/** The Viewer of a request: with authentication off, one that may do everything. */
export function viewerOf(access: RequestAccess): Viewer {
  if (access.kind === 'open') {
    return { authenticated: false, scopes: ['admin:*'], tokenName: null, access };
  }
  return {
    authenticated: true,
    scopes: access.principal.scopes.scopes.map((scope) => `${scope.action}:${scope.pattern}`),
    tokenName: access.principal.name,
    access,
  };
}

/** Whether the request may do `action` on `queue` (see SCOPE_ACTIONS in src/auth). */
export function mayAccess(access: RequestAccess, action: ScopeAction, queue: string): boolean {
  return access.kind === 'open' || access.principal.scopes.allows(action, queue);
}

/**
 * Throws FORBIDDEN unless the request may do `action` on `queue`. Called before the engine
 * is asked anything, so the answer is the same whether or not the queue exists: a refused
 * token learns nothing about queues it cannot see.
 */
export function authorize(access: RequestAccess, action: ScopeAction, queue: string): void {
  if (!mayAccess(access, action, queue)) {
    throw forbidden(`this token may not ${action} on queue "${queue}"`);
  }
}

/** Throws FORBIDDEN unless the request may do `action` on every one of `queues`. */
export function authorizeAll(
  access: RequestAccess,
  action: ScopeAction,
  queues: Iterable<string>,
): void {
  for (const queue of queues) authorize(access, action, queue);
}

/**
 * The engine's authorization for receipts (ack, ackBatch, nack, extendLease): nothing when
 * the request may receive from every queue (the engine then runs its one statement, no
 * transaction). Otherwise a hook and the token's receive patterns. A single ack keeps to
 * those queues inside its one statement and asks the hook only for a delivery it left alone
 * whose lease still holds; a batch ack is one statement that acks all or nothing and names
 * a queue outside them for the hook; the other operations run in a transaction where the engine asks
 * the hook with the queue of each delivery whose lease was live, read by the fenced
 * statement itself, and rolls the change back when it throws. Either way: FORBIDDEN when a
 * receipt belongs to a queue the token may not `receive` from. A receipt whose lease is gone
 * (acked, reaped, re-leased, dead-lettered, never existed) never reaches the hook: the
 * engine answers LEASE_LOST and changes nothing, so a worker whose message was dead-lettered
 * under it gets LEASE_LOST, as it would without authentication. A malformed receipt is the
 * engine's BAD_USER_INPUT.
 */
export function receiptAuthorization(access: RequestAccess): ReceiptOptions {
  if (access.kind === 'open' || access.principal.scopes.allowsEveryQueue('receive')) {
    return {};
  }
  return {
    authorize: (queues) => authorizeAll(access, 'receive', queues),
    queuePatterns: access.principal.scopes.patternsFor('receive'),
  };
}

/**
 * Passes a subscription's events through while the token stays live: before each event it
 * re-checks the token (cached for at most a second), and ends the stream with
 * UNAUTHENTICATED once it has been revoked. Ending it runs the source's cleanup, so a
 * deliveries stream gives back the leases it held. With authentication off, the source as is.
 */
export function whileTokenLive<T>(
  access: RequestAccess,
  source: AsyncGenerator<T, void, undefined>,
): AsyncGenerator<T, void, undefined> {
  return access.kind === 'open' ? source : guarded(access, source);
}

async function* guarded<T>(
  access: Extract<RequestAccess, { kind: 'token' }>,
  source: AsyncGenerator<T, void, undefined>,
): AsyncGenerator<T, void, undefined> {
  for await (const item of source) {
    let live: boolean;
    try {
      live = await access.control.isLive(access.principal);
    } catch (error) {
      throw translateDatabaseError(error);
    }
    if (!live) throw unauthenticated('the token was revoked');
    yield item;
  }
}

/**
 * A replay job as this request may see it: undefined when there is none, and also when it
 * replays a queue the token may not read (answered as no job, so ids of other queues' jobs
 * tell nothing). One rule for the replayJob query, cancelReplay and the replayJob subscription.
 */
export async function readableReplayJob(
  access: RequestAccess,
  engine: QueueEngine,
  id: string,
): Promise<ReplayJob | undefined> {
  const job = await engine.replayJob(id);
  return job !== undefined && mayAccess(access, 'read', job.queue) ? job : undefined;
}
