/**
 * The dashboard's pages and their addresses. The address lives in the URL's fragment
 * (`#/queues/orders`), so the service serves one page at `/` and the browser's back button,
 * bookmarks and reloads work without any route on the server.
 */
export type Route =
  | { page: 'overview' }
  | { page: 'queue'; queue: string }
  | { page: 'messages'; queue: string; filter: MessageFilterParams }
  | { page: 'message'; id: string }
  | { page: 'dead-letters' }
  | { page: 'schedules' }
  | { page: 'flow-limits' }
  | { page: 'replay-jobs' };

/**
 * A message browser's filter as it stands in the address: each field as typed, JSON as text.
 * An empty field does not filter.
 */
export interface MessageFilterParams {
  state?: string;
  payload?: string;
  headers?: string;
  groupKey?: string;
  dedupKey?: string;
  createdAfter?: string;
  createdBefore?: string;
}

/** The filter fields, in the order they appear in the address. */
export const FILTER_FIELDS = [
  'state',
  'payload',
  'headers',
  'groupKey',
  'dedupKey',
  'createdAfter',
  'createdBefore',
] as const satisfies readonly (keyof MessageFilterParams)[];

const SECTIONS: Readonly<Record<string, Route>> = {
  'dead-letters': { page: 'dead-letters' },
  schedules: { page: 'schedules' },
  'flow-limits': { page: 'flow-limits' },
  'replay-jobs': { page: 'replay-jobs' },
};

/** The route of a fragment such as `#/queues/orders/messages?state=READY`; unknown ones show the overview. */
export function parseRoute(hash: string): Route {
  const [path = '', query = ''] = hash.replace(/^#\/?/, '').split('?', 2);
  const parts = path
    .split('/')
    .filter((part) => part !== '')
    .map(decodeURIComponent);
  const section = parts.length === 1 ? SECTIONS[parts[0]!] : undefined;
  if (section !== undefined) return section;
  if (parts[0] === 'messages' && parts.length === 2) return { page: 'message', id: parts[1]! };
  if (parts[0] === 'queues' && parts.length >= 2) {
    const queue = parts[1]!;
    if (parts[2] === 'messages') {
      const params = new URLSearchParams(query);
      const filter: MessageFilterParams = {};
      for (const field of FILTER_FIELDS) {
        const value = params.get(field);
        if (value !== null && value !== '') filter[field] = value;
      }
      return { page: 'messages', queue, filter };
    }
    return { page: 'queue', queue };
  }
  return { page: 'overview' };
}

/** The fragment of a route: what {@link parseRoute} reads back. */
export function routeHash(route: Route): string {
  switch (route.page) {
    case 'overview':
      return '#/';
    case 'queue':
      return `#/queues/${encodeURIComponent(route.queue)}`;
    case 'messages': {
      const params = new URLSearchParams();
      for (const field of FILTER_FIELDS) {
        const value = route.filter[field];
        if (value !== undefined && value !== '') params.set(field, value);
      }
      const query = params.toString();
      return `#/queues/${encodeURIComponent(route.queue)}/messages${query === '' ? '' : `?${query}`}`;
    }
    case 'message':
      return `#/messages/${encodeURIComponent(route.id)}`;
    default:
      return `#/${route.page}`;
  }
}
