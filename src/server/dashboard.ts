import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';
import { PACKAGE_ROOT } from '../package-files.ts';
import { DOCS_FILES, START_LINKS } from './start-page.ts';

/** Where the built dashboard is (scripts/build-dashboard.ts writes it; the package ships it). */
export const DASHBOARD_DIR = new URL('dist/dashboard/', PACKAGE_ROOT);

/** The URL path under which the dashboard's script and styles are served. */
export const DASHBOARD_ASSET_PATH = '/dashboard/';

/** The built files the page loads, by name under {@link DASHBOARD_ASSET_PATH}. */
const ASSET_TYPES: Readonly<Record<string, string>> = {
  'dashboard.js': 'text/javascript; charset=utf-8',
  'dashboard.css': 'text/css; charset=utf-8',
};

/**
 * What the page may load and where it may connect: its own script and styles, this
 * service's API (fetch and WebSocket), nothing else. With the token in the page's session
 * storage, this keeps an injected script (none is expected: the app writes text, never
 * HTML) from loading code or sending the token elsewhere; framing is refused (clickjacking
 * of the action buttons).
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers of every dashboard response: no sniffing, no referrer (URLs name queues). */
const COMMON_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
} as const;

/**
 * The page at `/`: the header and its links are plain HTML (they work without the script),
 * the rest is drawn by dashboard.js in `<main>`. Loads only the two built files.
 */
export const DASHBOARD_PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Holdline</title>
    <link rel="icon" href="data:," />
    <link rel="stylesheet" href="${DASHBOARD_ASSET_PATH}dashboard.css" />
    <script type="module" src="${DASHBOARD_ASSET_PATH}dashboard.js"></script>
  </head>
  <body>
    <header class="top">
      <a class="brand" href="#/">Holdline</a>
      <nav class="sections" aria-label="Dashboard"></nav>
      <nav class="service" aria-label="Service">
        <a href="${START_LINKS.graphql}">GraphiQL</a>
        <a href="${START_LINKS.health}">/healthz</a>
        <a href="${START_LINKS.ready}">/readyz</a>
        <a href="${START_LINKS.metrics}">/metrics</a>
      </nav>
      <div class="session"></div>
    </header>
    <main id="app">
      <noscript>
        <p>The dashboard needs JavaScript. The API is at <a href="${START_LINKS.graphql}">/graphql</a>;
          the documentation in the Holdline repository: ${DOCS_FILES.map((f) => `<code>${f}</code>`).join(', ')}.</p>
      </noscript>
    </main>
  </body>
</html>
`;

/** One file served from memory: as built, and gzipped once at load. */
interface Asset {
  body: Buffer;
  gzipped: Buffer;
  contentType: string;
  etag: string;
}

/** The dashboard as the HTTP server serves it. */
export interface Dashboard {
  /** False when dist/dashboard/ holds no build (a checkout where `npm run build` never ran). */
  readonly built: boolean;
  /** Answers GET/HEAD `/` for a browser: {@link DASHBOARD_PAGE}, with its security headers. */
  servePage(req: IncomingMessage, res: ServerResponse): void;
  /**
   * Answers a path under {@link DASHBOARD_ASSET_PATH}: the file, gzipped when the client
   * accepts it, revalidated by ETag (`no-cache`: a rebuilt dashboard is seen at once); 404
   * for any other name.
   */
  serveAsset(req: IncomingMessage, res: ServerResponse, path: string): void;
}

/**
 * Reads the built dashboard from `dir` once (into memory: two files, about 150 KB) and
 * serves it. When the build is missing, `built` is false and assets answer 404.
 */
export function loadDashboard(dir: URL = DASHBOARD_DIR): Dashboard {
  const assets = new Map<string, Asset>();
  for (const [name, contentType] of Object.entries(ASSET_TYPES)) {
    const file = new URL(name, dir);
    if (!existsSync(file)) continue;
    const body = readFileSync(file);
    assets.set(name, {
      body,
      gzipped: gzipSync(body, { level: 9 }),
      contentType,
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
    });
  }
  const built = assets.size === Object.keys(ASSET_TYPES).length;
  return {
    built,
    servePage(req, res) {
      res.writeHead(200, {
        ...COMMON_HEADERS,
        'content-type': 'text/html; charset=utf-8',
        'content-length': Buffer.byteLength(DASHBOARD_PAGE),
        'content-security-policy': CONTENT_SECURITY_POLICY,
        'cache-control': 'no-cache',
      });
      res.end(req.method === 'HEAD' ? undefined : DASHBOARD_PAGE);
    },
    serveAsset(req, res, path) {
      const asset = assets.get(path.slice(DASHBOARD_ASSET_PATH.length));
      if (asset === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) {
        res.writeHead(404, { 'content-type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify({ error: 'not found' }));
        return;
      }
      const headers = {
        ...COMMON_HEADERS,
        'content-type': asset.contentType,
        'cache-control': 'no-cache',
        etag: asset.etag,
        vary: 'accept-encoding',
      };
      if (req.headers['if-none-match'] === asset.etag) {
        res.writeHead(304, headers);
        res.end();
        return;
      }
      const gzip = /\bgzip\b/.test(req.headers['accept-encoding'] ?? '');
      const body = gzip ? asset.gzipped : asset.body;
      res.writeHead(200, {
        ...headers,
        ...(gzip ? { 'content-encoding': 'gzip' } : {}),
        'content-length': body.length,
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    },
  };
}
