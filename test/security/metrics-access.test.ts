import { networkInterfaces } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '../../src/auth/index.ts';
import type { App } from '../../src/server/app.ts';
import { startTestApp } from '../helpers/app.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';

/**
 * This machine's first non-loopback IPv4 address: a request to it arrives from that address,
 * not from 127.0.0.1, which is what a scraper on another machine looks like to the service.
 * Fails (never skips) on a machine without one: the rule could not be tested there.
 */
function networkAddress(): string {
  const found = Object.values(networkInterfaces())
    .flat()
    .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal);
  if (found === undefined) throw new Error('this test needs a non-loopback IPv4 interface');
  return found.address;
}

function portOf(app: App): string {
  return new URL(app.url()).port;
}

interface Scrape {
  status: number;
  text: string;
  challenge: string | null;
}

async function scrape(base: string, secret?: string): Promise<Scrape> {
  const res = await fetch(`${base}/metrics`, {
    headers: secret === undefined ? {} : { authorization: `Bearer ${secret}` },
  });
  return {
    status: res.status,
    text: await res.text(),
    challenge: res.headers.get('www-authenticate'),
  };
}

function errorCode(scrape: Scrape): string | undefined {
  const body = JSON.parse(scrape.text) as { errors: { extensions: { code: string } }[] };
  return body.errors[0]?.extensions.code;
}

describe('/metrics with authentication required (HOST=0.0.0.0)', () => {
  let t: TestDatabase;
  let app: App;
  let remote: string;
  let loopback: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    app = await startTestApp(t, { HOST: '0.0.0.0' });
    remote = `http://${networkAddress()}:${portOf(app)}`;
    loopback = `http://127.0.0.1:${portOf(app)}`;
  });
  afterAll(async () => {
    await app.stop();
    await t.drop();
  });

  it('refuses a scrape from the network without a token: 401 UNAUTHENTICATED, no queue named', async () => {
    const result = await scrape(remote);
    expect(result.status).toBe(401);
    expect(result.challenge).toBe('Bearer realm="holdline"');
    expect(errorCode(result)).toBe('UNAUTHENTICATED');
    expect(result.text).not.toContain('holdline_queue_messages');
  });

  it('refuses an unknown token from the network with 401', async () => {
    const result = await scrape(remote, 'hl_not-a-real-token-aaaaaaaaaaaaaaaaaaaaaaaaaaaaa');
    expect(result.status).toBe(401);
    expect(errorCode(result)).toBe('UNAUTHENTICATED');
  });

  it('refuses a token without read on every queue with 403 FORBIDDEN', async () => {
    const { secret } = await createToken(t.db, { name: 'orders-reader', scopes: 'read:orders' });
    const result = await scrape(remote, secret);
    expect(result.status).toBe(403);
    expect(errorCode(result)).toBe('FORBIDDEN');
    expect(result.text).not.toContain('holdline_queue_messages');
  });

  it('serves a token with read:* from the network', async () => {
    const { secret } = await createToken(t.db, { name: 'prometheus', scopes: 'read:*' });
    const result = await scrape(remote, secret);
    expect(result.status).toBe(200);
    expect(result.text).toMatch(/^process_resident_memory_bytes \d/m);
  });

  it('serves a scrape from loopback without a token', async () => {
    const result = await scrape(loopback);
    expect(result.status).toBe(200);
    expect(result.text).toMatch(/^process_resident_memory_bytes \d/m);
  });
});

describe('/metrics with METRICS_TOKEN_REQUIRED=false', () => {
  let t: TestDatabase;
  let app: App;

  beforeAll(async () => {
    t = await createTestDatabase();
    app = await startTestApp(t, { HOST: '0.0.0.0', METRICS_TOKEN_REQUIRED: 'false' });
  });
  afterAll(async () => {
    await app.stop();
    await t.drop();
  });

  it('serves a scrape from the network without a token', async () => {
    const result = await scrape(`http://${networkAddress()}:${portOf(app)}`);
    expect(result.status).toBe(200);
    expect(result.text).toMatch(/^process_resident_memory_bytes \d/m);
  });
});
