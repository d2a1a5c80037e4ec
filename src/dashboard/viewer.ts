import { ScopeSet, parseScopes } from '../auth/scopes.ts';
import type { ScopeAction } from '../auth/scopes.ts';
import type { Request } from './graphql-api.ts';

/** Who is using the dashboard, as the API's `viewer` says. */
export interface Viewer {
  /** True when a token was checked; false on a service without authentication. */
  authenticated: boolean;
  /** The token's scopes, e.g. ["read:*"] or ["admin:*"] (also with authentication off). */
  scopes: readonly string[];
}

/**
 * Asks the API who this is. A wrong or missing token (with authentication on) throws
 * ApiError UNAUTHENTICATED.
 */
export async function fetchViewer(request: Request): Promise<Viewer> {
  const data = await request<{ viewer: Viewer }>(
    'query Viewer { viewer { authenticated scopes } }',
  );
  return data.viewer;
}

/**
 * Whether the viewer's scopes allow `action` on `queue` (the service's own rule,
 * src/auth/scopes.ts), so that its buttons are shown. Only a courtesy: the API checks every
 * operation itself and refuses with FORBIDDEN.
 */
export function may(viewer: Viewer, action: ScopeAction, queue: string): boolean {
  return scopeSet(viewer.scopes).allows(action, queue);
}

/** Whether the viewer may do `action` on some queue: whether a page shows its actions at all. */
export function mayAnywhere(viewer: Viewer, action: ScopeAction): boolean {
  return scopeSet(viewer.scopes).patternsFor(action).length > 0;
}

const compiled = new WeakMap<readonly string[], ScopeSet>();

/** The scopes compiled once per viewer; a scope this dashboard cannot read grants nothing. */
function scopeSet(scopes: readonly string[]): ScopeSet {
  let set = compiled.get(scopes);
  if (set === undefined) {
    set = new ScopeSet(
      scopes.flatMap((scope) => {
        try {
          return parseScopes(scope);
        } catch {
          return [];
        }
      }),
    );
    compiled.set(scopes, set);
  }
  return set;
}
