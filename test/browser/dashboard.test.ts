import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '../../src/auth/index.ts';
import { LIVE_QUEUES_MAX } from '../../src/dashboard/live-stats.ts';
import type { App } from '../../src/server/app.ts';
import { startTestApp } from '../helpers/app.ts';
import { launchChromium, withOfflinePage } from '../helpers/browser.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { insertHistoryMinutes } from '../helpers/factories.ts';
import type { HistoryMinute } from '../helpers/factories.ts';
import { graphqlRequest } from '../helpers/graphql-http.ts';

/**
 * Where the screenshots go: docs/images/ when SCREENSHOTS=write (to refresh the ones the
 * README and docs/dashboard.md show, then commit them), else a temporary folder, so that a
 * test run leaves the checkout as it was. They are taken either way.
 */
const SCREENSHOT_DIR =
  process.env.SCREENSHOTS === 'write'
    ? fileURLToPath(new URL('../../docs/images/', import.meta.url))
    : path.join(os.tmpdir(), 'holdline-dashboard-screenshots');

/** The size of the browser window, and of the screenshots. */
const VIEWPORT = { width: 1280, height: 800 };

let browser: Browser;

beforeAll(async () => {
  browser = await launchChromium();
  await mkdir(SCREENSHOT_DIR, { recursive: true });
});
afterAll(async () => {
  await browser?.close();
});

/** Runs a GraphQL operation over HTTP and returns its data; fails on any error. */
async function api<T = Record<string, unknown>>(
  app: App,
  query: string,
  variables?: Record<string, unknown>,
  token?: string,
): Promise<T> {
  const result = await graphqlRequest<T>(app.url(), query, variables, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });
  if (result.errors !== undefined || result.data === undefined) {
    throw new Error(`GraphQL failed: ${JSON.stringify(result.errors)}`);
  }
  return result.data;
}

async function createQueue(
  app: App,
  name: string,
  config: Record<string, unknown> = {},
  token?: string,
) {
  await api(
    app,
    'mutation ($name: String!, $config: QueueConfigInput) { createQueue(name: $name, config: $config) { name } }',
    { name, config },
    token,
  );
}

async function send(
  app: App,
  queue: string,
  message: Record<string, unknown>,
  token?: string,
): Promise<string> {
  const data = await api<{ send: { id: string } }>(
    app,
    'mutation ($queue: String!, $message: SendInput!) { send(queue: $queue, message: $message) { id } }',
    { queue, message },
    token,
  );
  return data.send.id;
}

/** Receives everything ready in `queue` and nacks it with `error` (with maxAttempts 1: dead letters). */
async function failAll(app: App, queue: string, error: string, token?: string): Promise<number> {
  const got = await api<{ receive: { receipt: string }[] }>(
    app,
    'mutation ($queue: String!) { receive(queue: $queue, max: 100) { receipt } }',
    { queue },
    token,
  );
  for (const { receipt } of got.receive) {
    await api(
      app,
      'mutation ($r: String!, $e: String) { nack(receipt: $r, error: $e) }',
      { r: receipt, e: error },
      token,
    );
  }
  return got.receive.length;
}

async function payloads(app: App, queue: string, token?: string): Promise<unknown[]> {
  const data = await api<{ messages: { payload: unknown }[] }>(
    app,
    'query ($queue: String!) { messages(queue: $queue, first: 1000) { payload } }',
    { queue },
    token,
  );
  return data.messages.map((m) => m.payload);
}

/** The text of the overview's cell `column` (a class: ready, dead, …) in the row of `queue`. */
function cell(page: Page, queue: string, column: string): ReturnType<Page['locator']> {
  return page.locator(`tr[data-queue="${queue}"] td.${column}`);
}

describe('the dashboard at / with authentication off', () => {
  let t: TestDatabase;
  let app: App;

  beforeAll(async () => {
    t = await createTestDatabase();
    app = await startTestApp(t);
    await createQueue(app, 'orders', { maxAttempts: 3 });
    await createQueue(app, 'emails');
    await createQueue(app, 'payments', { maxAttempts: 1 });
    for (let n = 1; n <= 4; n++)
      await send(app, 'orders', { payload: { orderId: n, region: n % 2 === 0 ? 'eu' : 'us' } });
    await send(app, 'orders', { payload: { orderId: 5 }, delaySeconds: 3600 });
    for (let n = 1; n <= 5; n++) {
      await send(app, 'payments', {
        payload: { paymentId: n, region: n <= 3 ? 'eu' : 'us' },
        headers: { tenant: 'acme' },
      });
    }
    await failAll(app, 'payments', 'card declined');
  });
  afterAll(async () => {
    await app.stop();
    await t.drop();
  });

  it('shows every queue with its counts and dead letters, loading nothing from another host', async () => {
    const origin = app.url();
    await withOfflinePage(
      browser,
      origin,
      async (page, external) => {
        const response = await page.goto(`${origin}/`);
        expect(response?.status()).toBe(200);
        expect(await page.title()).toBe('Holdline');
        await expect
          .poll(() => cell(page, 'orders', 'ready').textContent(), { timeout: 10_000 })
          .toBe('4');
        expect(await cell(page, 'orders', 'delayed').textContent()).toBe('1');
        expect(await cell(page, 'payments', 'dead').textContent()).toBe('5');
        expect(await cell(page, 'payments.dlq', 'ready').textContent()).toBe('5');
        expect(await page.locator('tr[data-queue="payments.dlq"] th').textContent()).toContain(
          'dead letters of payments',
        );
        expect(await page.locator('tr[data-queue]').count()).toBe(4);
        expect(external).toEqual([]);
      },
      { viewport: VIEWPORT },
    );
  });

  it('shows a message sent through the API within a second, without a reload', async () => {
    await createQueue(app, 'live');
    const origin = app.url();
    await withOfflinePage(browser, origin, async (page) => {
      await page.goto(`${origin}/`);
      await expect
        .poll(() => cell(page, 'live', 'ready').textContent(), { timeout: 10_000 })
        .toBe('0');
      // A reload would lose this mark.
      await page.evaluate(() => ((window as unknown as { mark: number }).mark = 1));
      const sentAt = Date.now();
      await send(app, 'live', { payload: { hello: 'overview' } });
      await page.waitForFunction(
        () => document.querySelector('tr[data-queue="live"] td.ready')?.textContent === '1',
        null,
        { timeout: 1_000, polling: 'raf' },
      );
      expect(Date.now() - sentAt).toBeLessThan(1_000);

      await page.goto(`${origin}/#/queues/live/messages`);
      await expect.poll(() => page.locator('tr[data-id]').count(), { timeout: 10_000 }).toBe(1);
      const id = await send(app, 'live', { payload: { hello: 'browser' } });
      const inList = Date.now();
      await page.waitForSelector(`tr[data-id="${id}"]`, { timeout: 1_000 });
      expect(Date.now() - inList).toBeLessThan(1_000);
      expect(await page.evaluate(() => (window as unknown as { mark?: number }).mark)).toBe(1);
    });
  });

  it('redrives exactly the dead letters a filter matches, after a confirmation stating their count', async () => {
    const origin = app.url();
    await withOfflinePage(
      browser,
      origin,
      async (page) => {
        await page.goto(`${origin}/#/queues/payments.dlq/messages`);
        const summary = page.locator('p.summary');
        await expect
          .poll(() => summary.textContent(), { timeout: 10_000 })
          .toBe('5 messages match.');
        expect(await page.locator('td.error-text').first().textContent()).toBe('card declined');
        await page.getByLabel('Payload contains').fill('{"region": "eu"}');
        await page.getByRole('button', { name: 'Apply filter' }).click();
        await expect
          .poll(() => summary.textContent(), { timeout: 10_000 })
          .toBe('3 messages match.');

        await page.getByRole('button', { name: 'Redrive…' }).click();
        const dialog = page.getByRole('dialog');
        expect(await dialog.locator('.confirm-text').textContent()).toContain(
          'Redrive 3 dead letters',
        );
        await dialog.getByRole('button', { name: 'Redrive 3' }).click();
        await expect
          .poll(() => page.getByRole('status').textContent(), { timeout: 10_000 })
          .toBe('Redrove 3 dead letters from payments.dlq');

        const back = (await payloads(app, 'payments')) as { paymentId: number; region: string }[];
        expect(back.map((p) => p.paymentId).sort()).toEqual([1, 2, 3]);
        const left = (await payloads(app, 'payments.dlq')) as { paymentId: number }[];
        expect(left.map((p) => p.paymentId).sort()).toEqual([4, 5]);
        await expect
          .poll(() => summary.textContent(), { timeout: 10_000 })
          .toBe('0 messages match.');
      },
      { viewport: VIEWPORT },
    );
  });

  it('moves exactly the messages a filter matches into the queue chosen in the confirmation', async () => {
    await createQueue(app, 'orders-us');
    const origin = app.url();
    await withOfflinePage(browser, origin, async (page) => {
      const filter = encodeURIComponent('{"region": "us"}');
      await page.goto(`${origin}/#/queues/orders/messages?payload=${filter}`);
      await expect
        .poll(() => page.locator('p.summary').textContent(), { timeout: 10_000 })
        .toBe('2 messages match.');
      await page.getByRole('button', { name: 'Move…' }).click();
      const dialog = page.getByRole('dialog');
      expect(await dialog.locator('.confirm-text').textContent()).toContain('Move 2 messages');
      await dialog.getByLabel('Move to').selectOption('orders-us');
      await dialog.getByRole('button', { name: 'Move 2' }).click();
      await expect
        .poll(() => page.getByRole('status').textContent(), { timeout: 10_000 })
        .toBe('Moved 2 messages from orders to orders-us');
      const moved = (await payloads(app, 'orders-us')) as { orderId: number }[];
      expect(moved.map((p) => p.orderId).sort()).toEqual([1, 3]);
      const kept = (await payloads(app, 'orders')) as { orderId: number }[];
      expect(kept.map((p) => p.orderId).sort()).toEqual([2, 4, 5]);
    });
  });

  it('pauses, resumes and purges a queue from its page, the purge confirmed with its count', async () => {
    await createQueue(app, 'chores');
    for (let n = 1; n <= 3; n++) await send(app, 'chores', { payload: { chore: n } });
    const origin = app.url();
    const paused = async (): Promise<boolean> =>
      (await api<{ queue: { paused: boolean } }>(app, '{ queue(name: "chores") { paused } }')).queue
        .paused;
    await withOfflinePage(browser, origin, async (page) => {
      await page.goto(`${origin}/#/queues/chores`);
      await page.getByRole('button', { name: 'Pause' }).click();
      await page.getByRole('button', { name: 'Resume' }).waitFor({ timeout: 10_000 });
      expect(await paused()).toBe(true);
      await page.getByRole('button', { name: 'Resume' }).click();
      await page.getByRole('button', { name: 'Pause' }).waitFor({ timeout: 10_000 });
      expect(await paused()).toBe(false);

      await page.getByRole('button', { name: 'Purge…' }).click();
      const dialog = page.getByRole('dialog');
      expect(await dialog.locator('.confirm-text').textContent()).toContain(
        'Delete all 3 messages',
      );
      await dialog.getByRole('button', { name: 'Cancel' }).click();
      expect(await payloads(app, 'chores')).toHaveLength(3);
      await page.getByRole('button', { name: 'Purge…' }).click();
      await dialog.getByRole('button', { name: 'Purge 3' }).click();
      await expect
        .poll(() => page.getByRole('status').last().textContent(), { timeout: 10_000 })
        .toBe('Purged 3 messages from chores');
      expect(await payloads(app, 'chores')).toEqual([]);
    });
  });

  it('tells a message’s story on its page: payload, headers, attempts, position and why it waits', async () => {
    const id = await send(app, 'emails', {
      payload: { to: 'ada@example.com' },
      headers: { tenant: 'acme' },
      groupKey: 'ada',
    });
    const origin = app.url();
    await withOfflinePage(browser, origin, async (page) => {
      await page.goto(`${origin}/#/messages/${id}`);
      await expect
        .poll(() => page.locator('h1').textContent(), { timeout: 10_000 })
        .toBe(`Message ${id}`);
      const facts = await page.locator('dl.facts').innerText();
      expect(facts).toContain('next in line');
      expect(facts).toContain('ada');
      expect(await page.locator('p.story').innerText()).toContain('READY');
      expect(await page.locator('pre.json').first().textContent()).toContain(
        '"to": "ada@example.com"',
      );
      expect(await page.locator('pre.json').nth(1).textContent()).toContain('"tenant": "acme"');
    });
  });
});

/**
 * An hour of plausible traffic for a queue, minute by minute, ending with the minute before
 * `now`: sends around `perMinute` in a slow wave, acks keeping up except during a slowdown
 * 25 to 18 minutes ago (the backlog, its age and the latency grow, a few messages die), and
 * delivery latencies spread over milliseconds. Deterministic, so screenshots compare.
 */
function trafficHour(now: Date, perMinute: number): HistoryMinute[] {
  const thisMinute = Math.floor(now.getTime() / 60_000) * 60_000;
  let seed = perMinute;
  const jitter = (): number => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed / 2_147_483_648;
  };
  let depth = Math.round(perMinute / 20);
  return Array.from({ length: 60 }, (_, i) => {
    const ago = 60 - i;
    const slow = ago <= 25 && ago >= 18;
    const sent = Math.round(perMinute * (1 + 0.25 * Math.sin(i / 6)) * (0.9 + 0.2 * jitter()));
    const acked = slow
      ? Math.round(sent * 0.55)
      : Math.round(sent + Math.min(depth * 0.6, sent * 0.5));
    const nacked = Math.round(sent * (slow ? 0.04 : 0.005));
    const deadLettered = slow ? Math.round(nacked / 3) : 0;
    depth = Math.max(0, depth + sent - acked - deadLettered);
    const base = slow ? 0.4 : 0.004;
    return {
      minute: new Date(thisMinute - ago * 60_000),
      sent,
      delivered: acked + nacked,
      acked,
      nacked,
      deadLettered,
      leaseExpired: slow ? 2 : 0,
      depth,
      oldestReadyAgeSeconds: slow ? 20 + (25 - ago) * 30 : depth > 0 ? 0.5 + jitter() : null,
      deliveryLatenciesSeconds: Array.from(
        { length: 40 },
        () => base * Math.exp(2.2 * jitter() ** 3),
      ),
    };
  });
}

describe('screenshots of the dashboard on real data', () => {
  let t: TestDatabase;
  let app: App;

  beforeAll(async () => {
    t = await createTestDatabase();
    app = await startTestApp(t);
    await createQueue(app, 'orders', { maxAttempts: 3 });
    await createQueue(app, 'payments', { maxAttempts: 1, maxInFlight: 20 });
    await createQueue(app, 'emails', { rateLimit: { count: 50, perSeconds: 1 } });
    const now = new Date();
    await insertHistoryMinutes(t.db, 'orders', trafficHour(now, 900));
    await insertHistoryMinutes(t.db, 'payments', trafficHour(now, 140));
    await insertHistoryMinutes(t.db, 'emails', trafficHour(now, 320));
    for (let n = 1; n <= 14; n++) {
      await send(app, 'orders', {
        payload: { orderId: 4_200 + n, region: ['eu', 'us', 'apac'][n % 3], total: 20 + n * 7.5 },
        headers: { tenant: n % 2 === 0 ? 'acme' : 'globex' },
        ...(n % 5 === 0 ? { groupKey: `customer-${n}` } : {}),
      });
    }
    for (let n = 1; n <= 4; n++) {
      await send(app, 'payments', {
        payload: { paymentId: 900 + n, amount: n * 12.5, region: 'eu' },
      });
    }
    await failAll(app, 'payments', 'card declined: insufficient funds');
    for (let n = 1; n <= 6; n++) {
      await send(app, 'emails', {
        payload: { to: `user${n}@example.com`, template: 'receipt' },
        ...(n > 4 ? { delaySeconds: 900 } : {}),
      });
    }
  });
  afterAll(async () => {
    await app.stop();
    await t.drop();
  });

  it('shows the overview with rates and sparklines, a queue’s charts, and the message browser', async () => {
    const origin = app.url();
    await withOfflinePage(
      browser,
      origin,
      async (page, external) => {
        await page.goto(`${origin}/`);
        await expect
          .poll(() => page.locator('td.spark canvas').count(), { timeout: 10_000 })
          .toBe(4);
        expect(await cell(page, 'orders', 'rate-in').textContent()).toMatch(/^[\d,.]+\/s$/);
        expect(await cell(page, 'payments', 'dead').textContent()).toBe('4');
        await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'dashboard-overview.png') });

        await page.goto(`${origin}/#/queues/orders`);
        await expect
          .poll(() => page.locator('figure.chart canvas').count(), { timeout: 10_000 })
          .toBe(4);
        expect(await page.locator('.u-title').allTextContents()).toEqual([
          'Throughput (messages per minute)',
          'Depth (ready + delayed + leased)',
          'Oldest ready message (age)',
          'Delivery latency (due to leased)',
        ]);
        await page.screenshot({
          path: path.join(SCREENSHOT_DIR, 'dashboard-queue.png'),
          fullPage: true,
        });
        await page.getByRole('button', { name: 'Last day' }).click();
        await expect
          .poll(() => page.getByRole('button', { name: 'Last day' }).getAttribute('aria-pressed'))
          .toBe('true');
        await page.locator('figure.chart canvas').first().waitFor();

        await page.goto(
          `${origin}/#/queues/orders/messages?payload=${encodeURIComponent('{"region": "eu"}')}`,
        );
        await expect
          .poll(() => page.locator('p.summary').textContent(), { timeout: 10_000 })
          .toBe('4 messages match.');
        await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'dashboard-messages.png') });
        expect(external).toEqual([]);
      },
      { viewport: VIEWPORT },
    );
  });
});

describe('the overview of more queues than it watches live', () => {
  let t: TestDatabase;
  let app: App;

  beforeAll(async () => {
    t = await createTestDatabase();
    app = await startTestApp(t);
    for (let n = 0; n <= LIVE_QUEUES_MAX; n++)
      await createQueue(app, `bulk-${String(n).padStart(2, '0')}`);
  });
  afterAll(async () => {
    await app.stop();
    await t.drop();
  });

  it('polls the list instead, and still shows a new message without a reload', async () => {
    const origin = app.url();
    await withOfflinePage(browser, origin, async (page) => {
      await page.goto(`${origin}/`);
      await expect
        .poll(() => page.locator('p.subtitle').textContent(), { timeout: 10_000 })
        .toContain(`more than ${LIVE_QUEUES_MAX} queues`);
      expect(await page.locator('tr[data-queue]').count()).toBe(LIVE_QUEUES_MAX + 1);
      await send(app, 'bulk-07', { payload: 'polled' });
      await expect
        .poll(() => cell(page, 'bulk-07', 'ready').textContent(), { timeout: 5_000 })
        .toBe('1');
    });
  });
});

describe('the dashboard with authentication on', () => {
  let t: TestDatabase;
  let app: App;
  let admin: string;
  let reader: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    app = await startTestApp(t, { AUTH_REQUIRED: 'true' });
    admin = (await createToken(t.db, { name: 'ops-admin', scopes: 'admin' })).secret;
    reader = (await createToken(t.db, { name: 'ops-reader', scopes: 'read:*' })).secret;
    await createQueue(app, 'orders', { maxAttempts: 1 }, admin);
    await send(app, 'orders', { payload: { orderId: 1 } }, admin);
    await send(app, 'orders', { payload: { orderId: 2 } }, admin);
    await failAll(app, 'orders', 'out of stock', admin);
    await send(app, 'orders', { payload: { orderId: 3 } }, admin);
  });
  afterAll(async () => {
    await app.stop();
    await t.drop();
  });

  async function signIn(page: Page, token: string): Promise<void> {
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Open the dashboard' }).click();
  }

  it('asks for a token, refuses a wrong one with UNAUTHENTICATED, and opens with a right one', async () => {
    const origin = app.url();
    await withOfflinePage(browser, origin, async (page, external) => {
      await page.goto(`${origin}/`);
      await page.getByLabel('API token').waitFor({ timeout: 10_000 });
      expect(await page.locator('table').count()).toBe(0);
      await signIn(page, 'hl_not-a-real-token');
      await expect
        .poll(() => page.getByRole('alert').textContent(), { timeout: 10_000 })
        .toContain('UNAUTHENTICATED');
      expect(await page.evaluate(() => sessionStorage.getItem('holdline.token'))).toBeNull();

      await signIn(page, reader);
      await expect
        .poll(() => cell(page, 'orders', 'ready').textContent(), { timeout: 10_000 })
        .toBe('1');
      // Once per session: a reload keeps the token.
      await page.reload();
      await expect
        .poll(() => cell(page, 'orders', 'ready').textContent(), { timeout: 10_000 })
        .toBe('1');
      expect(external).toEqual([]);
    });
  });

  it('shows a read-only token no action buttons, and the API refuses its actions anyway', async () => {
    const origin = app.url();
    const buttonsOn = (token: string): Promise<Record<string, number>> =>
      withOfflinePage(browser, origin, async (page) => {
        await page.goto(`${origin}/`);
        await signIn(page, token);
        await cell(page, 'orders', 'ready').waitFor({ timeout: 10_000 });
        const counts: Record<string, number> = {};
        await page.goto(`${origin}/#/queues/orders`);
        await page.locator('.cards').waitFor({ timeout: 10_000 });
        counts.queue = await page.locator('.queue-links button').count();
        await page.goto(`${origin}/#/queues/orders.dlq/messages`);
        await page.locator('tr[data-id]').first().waitFor({ timeout: 10_000 });
        counts.messages = await page.getByRole('group', { name: 'Bulk actions' }).count();
        await page.goto(`${origin}/#/flow-limits`);
        await page.locator('tr[data-queue="orders"]').waitFor({ timeout: 10_000 });
        counts.limits = await page.locator('table button').count();
        return counts;
      });
    expect(await buttonsOn(admin)).toEqual({ queue: 2, messages: 1, limits: 2 });
    expect(await buttonsOn(reader)).toEqual({ queue: 0, messages: 0, limits: 0 });

    const refused = await graphqlRequest(
      app.url(),
      'mutation { pauseQueue(name: "orders") { paused } }',
      undefined,
      {
        headers: { authorization: `Bearer ${reader}` },
      },
    );
    expect(refused.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });
});
