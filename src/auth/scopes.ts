import { TokenError } from './errors.ts';

/**
 * What a scope lets a token do, per queue:
 * - `read`: queues, queue, message, messages, and the queueStats subscription;
 * - `send`: send, sendBatch, and publish (checked for every queue the topic reaches);
 * - `receive`: receive, ack, ackBatch, nack, extendLease and the deliveries subscription,
 *   and everything `read` allows (a consumer sees every payload of its queue anyway);
 * - `admin`: everything above, plus createQueue, configureQueue, deleteQueue, purge,
 *   pauseQueue, resumeQueue, bindQueue, unbindQueue and redrive.
 */
export const SCOPE_ACTIONS = ['read', 'send', 'receive', 'admin'] as const;

/** One of {@link SCOPE_ACTIONS}. */
export type ScopeAction = (typeof SCOPE_ACTIONS)[number];

/** One grant: an action on the queues whose names match a pattern. */
export interface Scope {
  action: ScopeAction;
  /** A queue name in which `*` matches any run of characters (dots included), or `*` alone. */
  pattern: string;
}

/** Letters, digits, `_ . -` (the characters of queue names) and the wildcard `*`. */
const PATTERN = /^[A-Za-z0-9_.*-]{1,128}$/;

/** Most scopes one token may hold (the migration's CHECK says the same). */
export const SCOPES_MAX = 100;

/** Which granted actions imply which requested ones. */
const IMPLIES: Record<ScopeAction, readonly ScopeAction[]> = {
  read: ['read'],
  send: ['send'],
  receive: ['receive', 'read'],
  admin: ['admin', 'receive', 'send', 'read'],
};

/**
 * Parses scopes written as `admin`, or `<action>:<pattern>` with action admin, read, send or
 * receive (`admin` alone is `admin:*`): either one comma-separated string (as the CLI's
 * `--scopes` takes it) or a list of such strings. Whitespace around items is ignored,
 * duplicates are dropped. Throws a TokenError (BAD_USER_INPUT) naming the first bad item.
 */
export function parseScopes(input: string | readonly string[]): Scope[] {
  const items = (typeof input === 'string' ? [input] : input)
    .flatMap((text) => text.split(','))
    .map((item) => item.trim())
    .filter((item) => item !== '');
  if (items.length === 0) {
    throw new TokenError('BAD_USER_INPUT', 'a token needs at least one scope, e.g. "read:*"');
  }
  const scopes = new Map<string, Scope>();
  for (const item of items) {
    const scope = parseScope(item);
    scopes.set(formatScope(scope), scope);
  }
  if (scopes.size > SCOPES_MAX) {
    throw new TokenError('BAD_USER_INPUT', `a token may hold at most ${SCOPES_MAX} scopes`);
  }
  return [...scopes.values()];
}

function parseScope(item: string): Scope {
  if (item === 'admin') return { action: 'admin', pattern: '*' };
  const colon = item.indexOf(':');
  const action = colon === -1 ? item : item.slice(0, colon);
  const pattern = colon === -1 ? '' : item.slice(colon + 1);
  if (!(SCOPE_ACTIONS as readonly string[]).includes(action) || colon === -1) {
    throw new TokenError(
      'BAD_USER_INPUT',
      `scope "${item}" is not "admin" or "<read|send|receive|admin>:<queue pattern>"`,
    );
  }
  if (!PATTERN.test(pattern)) {
    throw new TokenError(
      'BAD_USER_INPUT',
      `scope "${item}": a queue pattern is 1 to 128 letters, digits, '_', '.', '-' or '*'`,
    );
  }
  return { action: action as ScopeAction, pattern };
}

/** The canonical text of a scope, as stored: `admin` for `admin:*`, else `<action>:<pattern>`. */
export function formatScope(scope: Scope): string {
  return scope.action === 'admin' && scope.pattern === '*'
    ? 'admin'
    : `${scope.action}:${scope.pattern}`;
}

/**
 * Whether a queue name matches a pattern: `*` matches any run of characters, including none
 * and including dots (queue names are flat, not dot-separated words as topics are); every
 * other character matches itself. So `orders.*` matches `orders.dlq` and `orders.eu.late`
 * but not `orders`; `orders*` matches `orders`, `orders-eu` and `orders.dlq`; `*` matches
 * every queue.
 */
export function matchesQueuePattern(pattern: string, queue: string): boolean {
  return patternRegex(pattern).test(queue);
}

function patternRegex(pattern: string): RegExp {
  const body = pattern
    .split('*')
    .map((part) => part.replace(/[.\\^$+?()[\]{}|-]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`);
}

/** The scopes of one token, compiled for checks on every request. Immutable. */
export class ScopeSet {
  private readonly grants: readonly { actions: readonly ScopeAction[]; match: RegExp }[];
  private readonly everyQueue: ReadonlySet<ScopeAction>;

  constructor(readonly scopes: readonly Scope[]) {
    this.grants = scopes.map((scope) => ({
      actions: IMPLIES[scope.action],
      match: patternRegex(scope.pattern),
    }));
    this.everyQueue = new Set(
      scopes.filter((scope) => scope.pattern === '*').flatMap((scope) => IMPLIES[scope.action]),
    );
  }

  /** Whether `action` on `queue` is granted (directly or implied, see {@link SCOPE_ACTIONS}). */
  allows(action: ScopeAction, queue: string): boolean {
    if (this.everyQueue.has(action)) return true;
    return this.grants.some((grant) => grant.actions.includes(action) && grant.match.test(queue));
  }

  /** Whether `action` is granted on every queue (a scope with pattern `*`): no lookup needed. */
  allowsEveryQueue(action: ScopeAction): boolean {
    return this.everyQueue.has(action);
  }

  /**
   * The queue patterns on which `action` is granted (directly or implied), as written in the
   * scopes (`*` matches any run of characters): what a statement that must keep to the
   * allowed queues filters by.
   */
  patternsFor(action: ScopeAction): string[] {
    return [
      ...new Set(
        this.scopes.filter((scope) => IMPLIES[scope.action].includes(action)).map((s) => s.pattern),
      ),
    ];
  }

  /** The scopes in canonical text form. */
  toStrings(): string[] {
    return this.scopes.map(formatScope);
  }
}
