import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DASHBOARD_DIR, loadDashboard } from '../../src/server/dashboard.ts';
import type { Dashboard } from '../../src/server/dashboard.ts';
import { createHttpServer } from '../../src/server/http.ts';

/** The bound on the dashboard's JavaScript, gzipped. */
const DASHBOARD_JS_GZIP_MAX_BYTES = 150 * 1024;

/** An HTTP server with the service's routes and `dashboard`; GraphQL is not needed here. */
async function serve(dashboard: Dashboard): Promise<{ url: string; server: http.Server }> {
  const server = createHttpServer({
    logger: pino({ level: 'silent' }),
    maxBodyBytes: 1024,
    routes: {
      graphql: (_req, res) => res.end(),
      ready: () => Promise.resolve(true),
      registry: new Registry(),
      dashboard,
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('the dashboard as the HTTP server serves it (built by the test setup)', () => {
  const dashboard = loadDashboard();
  let url: string;
  let server: http.Server;

  beforeAll(async () => {
    ({ url, server } = await serve(dashboard));
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('keeps its JavaScript under 150 KB gzipped', async () => {
    const res = await fetch(`${url}/dashboard/dashboard.js`);
    const js = Buffer.from(await res.arrayBuffer());
    const gzipped = gzipSync(js, { level: 9 }).length;
    expect(js.length).toBeGreaterThan(10_000);
    expect(gzipped).toBeLessThan(DASHBOARD_JS_GZIP_MAX_BYTES);
  });

  it('serves its script and styles gzipped to a client that accepts it, revalidated by ETag', async () => {
    for (const [file, type] of [
      ['dashboard.js', 'text/javascript; charset=utf-8'],
      ['dashboard.css', 'text/css; charset=utf-8'],
    ] as const) {
      const res = await fetch(`${url}/dashboard/${file}`, {
        headers: { 'accept-encoding': 'gzip' },
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe(type);
      expect(res.headers.get('content-encoding')).toBe('gzip');
      expect(res.headers.get('cache-control')).toBe('no-cache');
      const etag = res.headers.get('etag');
      expect(etag).toMatch(/^"[\w-]{22}"$/);
      await res.arrayBuffer();
      const again = await fetch(`${url}/dashboard/${file}`, {
        headers: { 'if-none-match': etag! },
      });
      expect(again.status).toBe(304);
    }
  });

  it('answers other names under /dashboard/ with 404', async () => {
    for (const name of ['other.js', '../package.json', '']) {
      expect((await fetch(`${url}/dashboard/${name}`)).status).toBe(404);
    }
  });

  it('sends its page with a policy that lets it load and connect to this origin only', async () => {
    const res = await fetch(`${url}/`, { headers: { accept: 'text/html' } });
    const policy = res.headers.get('content-security-policy') ?? '';
    expect(policy).toContain("default-src 'none'");
    expect(policy).toContain("script-src 'self'");
    expect(policy).toContain("connect-src 'self'");
    expect(policy).toContain("frame-ancestors 'none'");
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('still gives a JSON client the links at /', async () => {
    const res = await fetch(`${url}/`, { headers: { accept: 'application/json' } });
    expect(await res.json()).toMatchObject({ service: 'holdline', links: { graphql: '/graphql' } });
  });
});

describe('a service whose dashboard is not built', () => {
  let url: string;
  let server: http.Server;

  beforeAll(async () => {
    const missing = loadDashboard(new URL('not-built/', DASHBOARD_DIR));
    expect(missing.built).toBe(false);
    ({ url, server } = await serve(missing));
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('answers / with the start page, which says how to build it', async () => {
    const html = await (await fetch(`${url}/`, { headers: { accept: 'text/html' } })).text();
    expect(html).toContain('The dashboard is not built: run <code>npm run build</code>');
    expect(html).toContain('href="/graphql"');
    expect((await fetch(`${url}/dashboard/dashboard.js`)).status).toBe(404);
  });
});
