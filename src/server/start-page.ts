import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dashboard } from './dashboard.ts';

/** What the start page links to, and what a JSON client gets from `/`. */
export const START_LINKS = {
  graphql: '/graphql',
  health: '/healthz',
  ready: '/readyz',
  metrics: '/metrics',
} as const;

/**
 * Where the reference is: files of the repository (the service has no public docs address to
 * link to, and serves no files of its own beyond these routes).
 */
export const DOCS_FILES = ['README.md', 'docs/operations.md', 'docs/security.md'] as const;

/**
 * The page at `/` when the dashboard is not built (a checkout where `npm run build` never
 * ran): the service's name, how to build the dashboard, links to GraphiQL, the health and
 * readiness checks and the metrics, and where the docs are. Self-contained: no scripts,
 * styles inline, nothing loaded or linked from elsewhere.
 */
export const START_PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>Holdline</title>
    <style>
      body { font-family: system-ui, sans-serif; max-width: 42rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5; }
      dt { font-weight: 600; margin-top: 0.8rem; }
    </style>
  </head>
  <body>
    <h1>Holdline</h1>
    <p>A transactional message queue in PostgreSQL, with a GraphQL API.</p>
    <p>The dashboard is not built: run <code>npm run build</code> in the Holdline folder and restart.</p>
    <dl>
      <dt><a href="${START_LINKS.graphql}">GraphiQL</a></dt>
      <dd>The GraphQL API at <code>/graphql</code>; in a browser, GraphiQL with an example of each operation.</dd>
      <dt><a href="${START_LINKS.health}">/healthz</a></dt>
      <dd>Whether the process is up.</dd>
      <dt><a href="${START_LINKS.ready}">/readyz</a></dt>
      <dd>Whether PostgreSQL answers and the schema is current.</dd>
      <dt><a href="${START_LINKS.metrics}">/metrics</a></dt>
      <dd>Prometheus metrics.</dd>
      <dt>Documentation</dt>
      <dd>In the Holdline repository: ${DOCS_FILES.map((f) => `<code>${f}</code>`).join(', ')}
        and the rest of <code>docs/</code> (semantics, SQL, client).</dd>
    </dl>
  </body>
</html>
`;

/**
 * Answers `/`: the links as JSON when the client asks for JSON (Accept: application/json
 * without text/html, as API clients and curl scripts do); else the dashboard's page, or
 * {@link START_PAGE} when the dashboard is not built.
 */
export function serveStartPage(
  req: IncomingMessage,
  res: ServerResponse,
  dashboard: Dashboard | undefined,
): void {
  const accept = req.headers.accept ?? '';
  const wantsJson = accept.includes('application/json') && !accept.includes('text/html');
  if (!wantsJson && dashboard?.built === true) return dashboard.servePage(req, res);
  const body = wantsJson
    ? JSON.stringify({ service: 'holdline', links: START_LINKS, docs: DOCS_FILES })
    : START_PAGE;
  res.writeHead(200, {
    'content-type': wantsJson ? 'application/json; charset=utf-8' : 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}
