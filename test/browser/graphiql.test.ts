import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/server/app.ts';
import { startTestApp } from '../helpers/app.ts';
import { launchChromium, offlineContext as offlineBrowserContext } from '../helpers/browser.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';

let browser: Browser;

beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

/** A fresh context of the shared browser in which only `origin` is reachable. */
function offlineContext(origin: string): ReturnType<typeof offlineBrowserContext> {
  return offlineBrowserContext(browser, origin);
}

/**
 * What in an HTML page makes a browser fetch from another host: src/href/srcset/action
 * attributes, CSS url() and @import, naming a scheme-relative or http(s) URL. (The inlined
 * GraphiQL bundle mentions URLs in strings, such as the SVG namespace, that are never
 * fetched; the network block above catches anything these patterns miss.)
 */
const EXTERNAL_REFERENCES = [
  /\b(?:src|href|srcset|action)\s*=\s*["']?\s*(?:https?:)?\/\//gi,
  /url\(\s*["']?\s*(?:https?:)?\/\//gi,
  /@import/gi,
  /unpkg\.com|jsdelivr|cdnjs/gi,
];

/** An element's visible text with Monaco's non-breaking spaces as plain ones. */
async function textOf(locator: ReturnType<Page['locator']>): Promise<string> {
  return (await locator.innerText()).replace(/\s+/g, ' ');
}

function externalReferences(html: string): string[] {
  return EXTERNAL_REFERENCES.flatMap((pattern) => html.match(pattern) ?? []);
}

describe('GraphiQL at /graphql with the internet blocked', () => {
  let t: TestDatabase;
  let app: App;

  beforeAll(async () => {
    t = await createTestDatabase();
    app = await startTestApp(t);
  });
  afterAll(async () => {
    await app.stop();
    await t.drop();
  });

  it('shows the editor with the example operations, loading nothing from another host', async () => {
    const origin = app.url();
    const { context, page, external } = await offlineContext(origin);
    try {
      const response = await page.goto(`${origin}/graphql`);
      expect(response?.status()).toBe(200);
      expect(externalReferences(await response!.text())).toEqual([]);

      const editor = page.locator('.graphiql-query-editor');
      await expect
        .poll(() => textOf(editor), { timeout: 15_000 })
        .toContain('mutation CreateQueue');
      expect(await textOf(editor)).toContain('mutation Send');
      // The schema came from the service (introspection): the Docs panel lists its root types.
      await page.getByLabel('Show Documentation Explorer').click();
      const docs = page.locator('.graphiql-doc-explorer');
      await expect.poll(() => textOf(docs), { timeout: 15_000 }).toContain('Subscription');
      expect(external).toEqual([]);
    } finally {
      await context.close();
    }
  });
});

describe('the dashboard at /', () => {
  let t: TestDatabase;
  let app: App;

  beforeAll(async () => {
    t = await createTestDatabase();
    app = await startTestApp(t);
  });
  afterAll(async () => {
    await app.stop();
    await t.drop();
  });

  it('leads to GraphiQL with one click, loading nothing from another host', async () => {
    const origin = app.url();
    const { context, page, external } = await offlineContext(origin);
    try {
      const response = await page.goto(`${origin}/`);
      expect(response?.status()).toBe(200);
      expect(await page.title()).toBe('Holdline');
      await page.getByRole('link', { name: 'GraphiQL' }).click();
      await page.waitForURL(`${origin}/graphql`);
      await expect
        .poll(() => textOf(page.locator('.graphiql-query-editor')), { timeout: 15_000 })
        .toContain('mutation CreateQueue');
      expect(external).toEqual([]);
    } finally {
      await context.close();
    }
  });
});

describe('/graphql in a browser with authentication on', () => {
  let t: TestDatabase;
  let off: App;
  let on: App;

  beforeAll(async () => {
    t = await createTestDatabase();
    off = await startTestApp(t, { AUTH_REQUIRED: 'true' });
    on = await startTestApp(t, { AUTH_REQUIRED: 'true', GRAPHIQL: 'true' });
  });
  afterAll(async () => {
    await off.stop();
    await on.stop();
    await t.drop();
  });

  it('says GraphiQL is off and that GRAPHIQL=true turns it on, instead of a CSRF refusal', async () => {
    const origin = off.url();
    const { context, page, external } = await offlineContext(origin);
    try {
      const response = await page.goto(`${origin}/graphql`);
      expect(response?.status()).toBe(404);
      const text = await page.locator('body').innerText();
      expect(text).toContain('GraphiQL is off on this service');
      expect(text).toContain('GRAPHIQL=true');
      expect(text).toContain('AUTH_REQUIRED');
      expect(text).not.toContain('cross-site');
      expect(externalReferences(await response!.text())).toEqual([]);
      expect(external).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('with GRAPHIQL=true opens the headers editor with an Authorization header to fill in', async () => {
    const origin = on.url();
    const { context, page, external } = await offlineContext(origin);
    try {
      await page.goto(`${origin}/graphql`);
      const headers = page.locator('.graphiql-editor-tool');
      await expect.poll(() => textOf(headers), { timeout: 15_000 }).toContain('Authorization');
      expect(await textOf(headers)).toContain('Bearer');
      expect(external).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
