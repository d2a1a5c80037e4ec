import { h, replaceChildren } from './element.ts';
import { errorBox } from './error-box.ts';
import { ApiError, createRequest } from './graphql-api.ts';
import { LiveStatsFeed } from './live-stats.ts';
import type { Page, PageContext } from './page-context.ts';
import { PageScope } from './page-scope.ts';
import { deadLettersPage } from './pages/dead-letters.ts';
import { flowLimitsPage } from './pages/flow-limits.ts';
import { messagePage } from './pages/message.ts';
import { messagesPage } from './pages/messages.ts';
import { overviewPage } from './pages/overview.ts';
import { queuePage } from './pages/queue.ts';
import { replayJobsPage } from './pages/replay-jobs.ts';
import { schedulesPage } from './pages/schedules.ts';
import { parseRoute, routeHash } from './router.ts';
import type { Route } from './router.ts';
import { sessionToken } from './session-token.ts';
import { showSignIn } from './sign-in.ts';
import { fetchViewer, mayAnywhere } from './viewer.ts';
import type { Viewer } from './viewer.ts';

/** Each route's page. */
const PAGES: { [P in Route['page']]: Page<Extract<Route, { page: P }>> } = {
  overview: overviewPage,
  queue: queuePage,
  messages: messagesPage,
  message: messagePage,
  'dead-letters': deadLettersPage,
  schedules: schedulesPage,
  'flow-limits': flowLimitsPage,
  'replay-jobs': replayJobsPage,
};

/** The sections in the header, by the page that opens each. */
const SECTIONS: readonly [string, Route][] = [
  ['Queues', { page: 'overview' }],
  ['Dead letters', { page: 'dead-letters' }],
  ['Schedules', { page: 'schedules' }],
  ['Flow limits', { page: 'flow-limits' }],
  ['Replay jobs', { page: 'replay-jobs' }],
];

/** How long a notice ("Redrove 3 messages") stays. */
const NOTICE_MS = 6_000;

const app = document.getElementById('app')!;
const sectionsNav = document.querySelector<HTMLElement>('nav.sections')!;
const sessionBox = document.querySelector<HTMLElement>('.session')!;
const live = new LiveStatsFeed();
let viewer: Viewer | undefined;
let page: PageScope | undefined;

/** Any request refused for its token (revoked mid-session) leads back to the token form. */
const request = createRequest((refusal) => {
  if (viewer !== undefined) signIn(refusal);
});

function notice(text: string): void {
  const box = h('div', { class: 'notice', role: 'status' }, text);
  document.body.append(box);
  window.setTimeout(() => box.remove(), NOTICE_MS);
}

/** Shows the page of the address's fragment, ending the previous page. */
function showRoute(): void {
  if (viewer === undefined) return;
  page?.dispose();
  const scope = new PageScope();
  page = scope;
  const route = parseRoute(location.hash);
  for (const link of sectionsNav.querySelectorAll('a')) {
    const section = link.dataset.page;
    const active =
      section === route.page ||
      (section === 'overview' && (route.page === 'queue' || route.page === 'messages'));
    link.classList.toggle('active', active);
  }
  const container = h('div', { class: `page page-${route.page}` });
  replaceChildren(app, container);
  const ctx: PageContext = {
    request,
    live,
    viewer,
    scope,
    go: (to) => {
      location.hash = routeHash(to);
    },
    notice,
  };
  const draw = PAGES[route.page] as Page;
  Promise.resolve(draw(ctx, container, route)).catch((error: unknown) => {
    if (!scope.disposed) replaceChildren(container, errorBox(error));
  });
}

/** Draws the header for who is signed in: the sections, the token's reach, and sign out. */
function showSession(current: Viewer): void {
  replaceChildren(
    sectionsNav,
    SECTIONS.map(([label, route]) =>
      h('a', { href: routeHash(route), 'data-page': route.page }, label),
    ),
  );
  const reach = mayAnywhere(current, 'admin') ? 'can act' : 'read only';
  replaceChildren(
    sessionBox,
    current.authenticated
      ? [
          h('span', { class: 'reach', title: current.scopes.join(', ') }, `Token: ${reach}`),
          h('button', { type: 'button', class: 'link', onclick: () => signOut() }, 'Sign out'),
        ]
      : h('span', { class: 'reach' }, 'No authentication'),
  );
}

/** Starts the dashboard for an accepted token (or none, when the service needs none). */
function start(current: Viewer): void {
  viewer = current;
  showSession(current);
  showRoute();
}

/** Leaves the dashboard for the token form, saying why (`refusal`), if there was a refusal. */
function signIn(refusal?: unknown): void {
  viewer = undefined;
  page?.dispose();
  page = undefined;
  live.close();
  replaceChildren(sectionsNav);
  replaceChildren(sessionBox);
  showSignIn(app, refusal, async (token) => {
    sessionToken.set(token);
    try {
      start(await fetchViewer(request));
      return undefined;
    } catch (error) {
      sessionToken.clear();
      return error;
    }
  });
}

function signOut(): void {
  sessionToken.clear();
  signIn();
}

async function boot(): Promise<void> {
  window.addEventListener('hashchange', showRoute);
  try {
    start(await fetchViewer(request));
  } catch (error) {
    if (error instanceof ApiError && error.code === 'UNAUTHENTICATED') {
      // A token kept from earlier in this session that no longer works is said to be refused;
      // a first visit just asks for one.
      const had = sessionToken.get() !== undefined;
      sessionToken.clear();
      signIn(had ? error : undefined);
    } else {
      replaceChildren(app, errorBox(error));
    }
  }
}

void boot();
