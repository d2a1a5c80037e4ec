import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '../../src/auth/index.ts';
import { createApp } from '../../src/server/app.ts';
import type { App } from '../../src/server/app.ts';
import { loadConfig } from '../../src/server/config.ts';
import { createLogger } from '../../src/server/logger.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { graphqlRequest } from '../helpers/graphql-http.ts';
import { subscribeWs } from './harness.ts';

// The service as `holdline serve` builds it (createApp, createLogger), at debug level, with
// every log line kept: secrets must never be written, payloads never at info level or above.

let t: TestDatabase;
let app: App;
let url: string;
const lines: { level: number; msg: string; text: string; [field: string]: unknown }[] = [];
let secret: string;
const marker = `PAYLOAD-${randomUUID()}`;
const WRONG = `hl_${'Z'.repeat(43)}`;

beforeAll(async () => {
  t = await createTestDatabase();
  const config = loadConfig({
    DATABASE_URL: t.url,
    HOST: '127.0.0.1',
    PORT: '0',
    AUTH_REQUIRED: 'true',
    LOG_LEVEL: 'debug',
    POLL_INTERVAL_MS: '100',
  });
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (text.trim() !== '')
          lines.push({ ...(JSON.parse(text) as { level: number; msg: string }), text });
      }
      done();
    },
  });
  app = createApp({
    config,
    logger: createLogger(config, stream),
    databaseUrl: t.url,
    listenDatabaseUrl: t.url,
  });
  await app.start();
  url = app.url();
  secret = (await createToken(t.db, { name: 'log-admin', scopes: 'admin' })).secret;
});
afterAll(async () => {
  await app.stop();
  await t.drop();
});

const auth = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

describe('with a token and payloads in flight', () => {
  beforeAll(async () => {
    const ok = async (query: string, variables?: Record<string, unknown>): Promise<void> => {
      const result = await graphqlRequest(url, query, variables, auth(secret));
      expect(result.errors).toBeUndefined();
    };
    await ok(`mutation { createQueue(name: "logq") { name } }`);
    const sub = subscribeWs(
      url,
      secret,
      `subscription { deliveries(queue: "logq") { receipt message { payload } } }`,
    );
    await ok(
      `mutation ($p: JSON!) { send(queue: "logq", message: { payload: $p, headers: { h: $p } }) { id } }`,
      {
        p: { marker },
      },
    );
    const delivered = await sub.next();
    expect(JSON.stringify(delivered)).toContain(marker);
    await ok(`mutation ($r: String!) { ack(receipt: $r) }`, {
      r: (delivered.data!.deliveries as { receipt: string }).receipt,
    });
    await sub.close();
    await ok(`mutation ($p: JSON!) { publish(topic: "none", message: { payload: $p }) { id } }`, {
      p: { marker },
    });
    // Refusals and client mistakes, which are logged differently from successes.
    expect((await graphqlRequest(url, `{ queues { name } }`, undefined, auth(WRONG))).status).toBe(
      401,
    );
    const missing = await graphqlRequest(
      url,
      `mutation ($p: JSON!) { send(queue: "nowhere", message: { payload: $p }) { id } }`,
      { p: { marker } },
      auth(secret),
    );
    expect(missing.errors?.[0]?.extensions?.code).toBe('QUEUE_NOT_FOUND');
  });

  it('logs no secret at any level, wrong ones included', () => {
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      expect(line.text).not.toContain(secret.slice(3));
      expect(line.text).not.toContain(WRONG.slice(3));
    }
  });

  it('logs no payload at info level or above', () => {
    const infoAndUp = lines.filter((line) => line.level >= 30);
    expect(infoAndUp.length).toBeGreaterThan(0);
    for (const line of infoAndUp) expect(line.text).not.toContain(marker);
  });
});

describe('the service logger', () => {
  it('redacts credentials and payloads carried by logged objects by accident', () => {
    const captured: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        captured.push(chunk.toString('utf8'));
        done();
      },
    });
    const logger = createLogger({ logLevel: 'debug' }, stream);
    logger.info(
      {
        req: { headers: { authorization: `Bearer ${WRONG}`, host: 'h' } },
        connectionParams: { authorization: `Bearer ${WRONG}` },
        message: { payload: { marker }, queue: 'q' },
        params: { variables: { p: marker } },
        secret: WRONG,
      },
      'request',
    );
    const text = captured.join('');
    expect(text).toContain('"queue":"q"');
    expect(text).toContain('[redacted]');
    expect(text).not.toContain(WRONG.slice(3));
    expect(text).not.toContain(marker);
  });
});

describe('unexpected failures', () => {
  it('never echo SQL to the client, and are logged with the token name, not its secret', async () => {
    await sql`ALTER TABLE holdline.messages RENAME TO messages_moved`.execute(t.db);
    let result: Awaited<ReturnType<typeof graphqlRequest>>;
    try {
      result = await graphqlRequest(
        url,
        `mutation { send(queue: "logq", message: { payload: 1 }) { id } }`,
        undefined,
        auth(secret),
      );
    } finally {
      await sql`ALTER TABLE holdline.messages_moved RENAME TO messages`.execute(t.db);
    }
    expect(result.errors?.[0]).toMatchObject({
      message: 'Unexpected error.',
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    });
    const body = JSON.stringify(result);
    for (const leak of ['holdline.', 'relation', 'SELECT', 'INSERT', 'messages_moved']) {
      expect(body).not.toContain(leak);
    }
    const logged = lines.find((line) => line.msg === 'unexpected error');
    expect(logged).toMatchObject({ tokenName: 'log-admin' });
    expect(logged?.text).not.toContain(secret.slice(3));
  });

  it('in authentication itself are masked too', async () => {
    await sql`ALTER TABLE holdline.api_tokens RENAME TO api_tokens_moved`.execute(t.db);
    let result: Awaited<ReturnType<typeof graphqlRequest>>;
    try {
      // A secret not seen before, so no cached lookup answers for it.
      const fresh = `hl_${'Q'.repeat(43)}`;
      result = await graphqlRequest(url, `{ queues { name } }`, undefined, auth(fresh));
    } finally {
      await sql`ALTER TABLE holdline.api_tokens_moved RENAME TO api_tokens`.execute(t.db);
    }
    expect(result.status).toBe(500);
    expect(result.errors?.[0]?.message).toBe('Unexpected error.');
    expect(JSON.stringify(result)).not.toMatch(/api_tokens|SELECT|relation/);
  });
});
