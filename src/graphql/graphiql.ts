import type { GraphiQLOptions, Plugin } from 'graphql-yoga';

/** What the headers editor holds on first open when the service requires a token. */
export const GRAPHIQL_TOKEN_HEADERS = JSON.stringify(
  { Authorization: 'Bearer <paste a token from `holdline token create`>' },
  null,
  2,
);

/**
 * GraphiQL's options: `defaultQuery` in the editor on first open, and with authentication
 * the headers editor open with an Authorization header to fill in. Headers are never
 * persisted (GraphiQL would keep the token in the browser's localStorage).
 */
export function graphiqlOptions(defaultQuery: string, authRequired: boolean): GraphiQLOptions {
  return {
    title: 'Holdline GraphiQL',
    defaultQuery,
    shouldPersistHeaders: false,
    ...(authRequired
      ? { headers: GRAPHIQL_TOKEN_HEADERS, defaultEditorToolsVisibility: 'headers' as const }
      : {}),
  };
}

/**
 * yoga's `renderGraphiQL`: GraphiQL from @graphql-yoga/render-graphiql, whose page inlines
 * GraphiQL's JavaScript, CSS, editor workers and icon, so it works without internet (yoga's
 * own page loads them from unpkg.com). The page is about 9 MB of text; it is built once
 * per distinct options (they are the same on every request), not per request.
 *
 * The package is imported on the first GraphiQL page, not at start: its module holds that
 * text twice over (the page's scripts, and the module's own source, which V8 keeps), about
 * 30 MB of a service's memory that a service nobody opens GraphiQL on never needs.
 */
export function offlineGraphiQLRenderer(): (options: GraphiQLOptions) => Promise<string> {
  let cached: { key: string; html: string } | undefined;
  return async (options) => {
    const key = JSON.stringify(options);
    if (cached?.key !== key) {
      const { renderGraphiQL } = await import('@graphql-yoga/render-graphiql');
      cached = { key, html: renderGraphiQL(options) };
    }
    return cached.html;
  };
}

/**
 * The page a browser gets on GET /graphql when GraphiQL is off: what is off, why (by
 * default GraphiQL is off exactly when authentication is required) and which variable turns
 * it on. Self-contained: no scripts, no external assets.
 */
export const GRAPHIQL_OFF_PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>Holdline: GraphiQL is off</title>
    <style>
      body { font-family: system-ui, sans-serif; max-width: 42rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5; }
      code { background: #f2f2f2; padding: 0 0.2em; }
    </style>
  </head>
  <body>
    <h1>GraphiQL is off on this service</h1>
    <p>This URL serves the Holdline GraphQL API, but the in-browser GraphiQL IDE is turned off.
      It is off by default when authentication is required (<code>AUTH_REQUIRED</code>, on
      whenever <code>HOST</code> is not a loopback address).</p>
    <p>To turn it on, start the service with <code>GRAPHIQL=true</code> (and
      <code>INTROSPECTION=true</code> for the Docs panel and autocompletion). GraphiQL then
      opens its Headers panel: paste a token there as
      <code>{"Authorization": "Bearer hl_…"}</code> (create one with
      <code>holdline token create</code>).</p>
    <p>API clients send their operations as JSON with <code>POST /graphql</code>. See
      <a href="/">the service's start page</a>.</p>
  </body>
</html>
`;

/**
 * A yoga plugin for when GraphiQL is off: a browser's GET /graphql (Accept: text/html, what
 * yoga would answer with GraphiQL) gets {@link GRAPHIQL_OFF_PAGE} with status 404, instead
 * of the CSRF refusal (a GET without a CSRF header) it would get otherwise. Runs at
 * onRequest, before authentication and CSRF checks, and answers nothing else.
 */
export function graphiqlOffPlugin(graphqlPath: string): Plugin {
  return {
    onRequest(payload) {
      const { request, url, fetchAPI } = payload;
      if (request.method !== 'GET' || url.pathname.replace(/\/$/, '') !== graphqlPath) return;
      if (!(request.headers.get('accept') ?? '').includes('text/html')) return;
      payload.endResponse(
        new fetchAPI.Response(GRAPHIQL_OFF_PAGE, {
          status: 404,
          headers: { 'content-type': 'text/html; charset=utf-8' },
        }),
      );
    },
  };
}
