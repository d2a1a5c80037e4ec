import type { Request } from './graphql-api.ts';
import type { LiveStatsFeed } from './live-stats.ts';
import type { PageScope } from './page-scope.ts';
import type { Route } from './router.ts';
import type { Viewer } from './viewer.ts';

/** What every page is given: the API, live counts, who is looking, and its own lifetime. */
export interface PageContext {
  /** Runs a GraphQL operation with the session's token. */
  request: Request;
  /** Live queue counts over the shared WebSocket. */
  live: LiveStatsFeed;
  /** The token's scopes, for which buttons to show. */
  viewer: Viewer;
  /** The page's lifetime: timers and subscriptions registered here end when it is left. */
  scope: PageScope;
  /** Opens another page. */
  go(route: Route): void;
  /** Shows a short confirmation of something done ("Redrove 3 messages"). */
  notice(text: string): void;
}

/** A page: draws itself into `container` (which is empty and attached to the document). */
export type Page<R extends Route = Route> = (
  ctx: PageContext,
  container: HTMLElement,
  route: R,
) => void | Promise<void>;
