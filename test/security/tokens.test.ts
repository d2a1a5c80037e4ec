import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AccessControl,
  RateLimiter,
  ScopeSet,
  TokenError,
  createToken,
  findTokenBySecret,
  listTokens,
  matchesQueuePattern,
  parseScopes,
  revokeToken,
} from '../../src/auth/index.ts';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { silentLogger } from '../helpers/factories.ts';
import { eventually } from '../graphql/harness.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

describe('createToken', () => {
  it('returns a 256-bit secret once and stores only its SHA-256', async () => {
    const { token, secret } = await createToken(t.db, {
      name: 'ci',
      scopes: 'send:orders.*, admin',
    });
    expect(secret).toMatch(/^hl_[A-Za-z0-9_-]{43}$/);
    expect(token).toMatchObject({
      name: 'ci',
      scopes: ['send:orders.*', 'admin'],
      revokedAt: null,
    });
    const { rows } = await sql<{ hash: Buffer; row: string }>`
      SELECT secret_hash AS hash, t::text AS row FROM holdline.api_tokens t WHERE name = 'ci'`.execute(
      t.db,
    );
    expect(rows[0]!.hash.equals(createHash('sha256').update(secret).digest())).toBe(true);
    expect(rows[0]!.row).not.toContain(secret.slice(3));
    expect(JSON.stringify(await listTokens(t.db))).not.toContain(secret.slice(3));
  });

  it('draws a different secret every time', async () => {
    const a = await createToken(t.db, { name: 'twin-a', scopes: 'read:*' });
    const b = await createToken(t.db, { name: 'twin-b', scopes: 'read:*' });
    expect(a.secret).not.toBe(b.secret);
  });

  it('refuses a name a live token holds, and frees it on revocation (rotation)', async () => {
    const first = await createToken(t.db, { name: 'rotating', scopes: 'read:*' });
    const clash = createToken(t.db, { name: 'rotating', scopes: 'read:*' });
    await expect(clash).rejects.toThrow(TokenError);
    await expect(clash).rejects.toMatchObject({ code: 'TOKEN_EXISTS' });
    expect(await revokeToken(t.db, { name: 'rotating' })).toBe(true);
    const second = await createToken(t.db, { name: 'rotating', scopes: 'read:*' });
    expect(await findTokenBySecret(t.db, { secret: first.secret })).toBeUndefined();
    expect((await findTokenBySecret(t.db, { secret: second.secret }))?.id).toBe(second.token.id);
    const all = (await listTokens(t.db, { includeRevoked: true })).filter(
      (x) => x.name === 'rotating',
    );
    expect(all.map((x) => x.revokedAt === null)).toEqual([true, false]);
    expect((await listTokens(t.db)).filter((x) => x.name === 'rotating')).toHaveLength(1);
  });

  it.each([
    ['a bad name', 'has space', 'read:*', 'token name'],
    ['no scopes', 'empty', ' , ', 'at least one scope'],
    ['an unknown action', 'bad-action', 'write:orders', 'is not "admin"'],
    ['a scope without a pattern', 'no-pattern', 'send', 'is not "admin"'],
    ['a bad pattern', 'bad-pattern', 'send:orders/eu', 'queue pattern'],
  ])('refuses %s with BAD_USER_INPUT and stores nothing', async (_what, name, scopes, message) => {
    const attempt = createToken(t.db, { name, scopes });
    await expect(attempt).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    await expect(attempt).rejects.toThrow(message);
    expect((await listTokens(t.db, { includeRevoked: true })).map((x) => x.name)).not.toContain(
      name,
    );
  });

  it('is backed by a CHECK that refuses malformed scopes written with plain SQL', async () => {
    const insert = sql`INSERT INTO holdline.api_tokens (name, secret_hash, scopes)
      VALUES ('by-hand', decode(repeat('ab', 32), 'hex'), ARRAY['superuser'])`.execute(t.db);
    await expect(insert).rejects.toMatchObject({ code: '23514' });
  });
});

describe('revokeToken', () => {
  it('answers false when no live token has the name', async () => {
    expect(await revokeToken(t.db, { name: 'never-was' })).toBe(false);
  });
});

describe('AccessControl', () => {
  it('authenticates a live token and records its use', async () => {
    const { secret, token } = await createToken(t.db, { name: 'used', scopes: 'receive:jobs' });
    const control = new AccessControl({ db: t.db, logger: silentLogger() });
    const principal = await control.authenticate(secret);
    expect(principal).toMatchObject({ tokenId: token.id, name: 'used' });
    expect(principal?.scopes.allows('receive', 'jobs')).toBe(true);
    expect(principal?.scopes.allows('receive', 'jobs2')).toBe(false);
    await eventually(
      async () => (await listTokens(t.db)).find((x) => x.name === 'used')?.lastUsedAt != null,
      'last_used_at is written',
    );
  });

  it('refuses unknown, malformed and revoked secrets', async () => {
    const { secret } = await createToken(t.db, { name: 'soon-gone', scopes: 'read:*' });
    const control = new AccessControl({ db: t.db, logger: silentLogger() });
    expect(await control.authenticate(`hl_${'x'.repeat(43)}`)).toBeUndefined();
    expect(await control.authenticate("hl_' OR 1=1 --")).toBeUndefined();
    expect(await control.authenticate('')).toBeUndefined();
    expect(await control.authenticate(secret)).toBeDefined();
    expect(await control.revoke('soon-gone')).toBe(true);
    expect(await control.authenticate(secret)).toBeUndefined();
  });

  it('notices a revocation made by another process within its cache time (1 s)', async () => {
    const { secret } = await createToken(t.db, { name: 'revoked-elsewhere', scopes: 'read:*' });
    const control = new AccessControl({ db: t.db, logger: silentLogger() });
    const principal = (await control.authenticate(secret))!;
    // The CLI, or another instance, revokes it: this process's cache does not hear of it.
    await revokeToken(t.db, { name: 'revoked-elsewhere' });
    const revokedAt = Date.now();
    await eventually(
      async () => (await control.authenticate(secret)) === undefined,
      'the revocation is seen',
      3_000,
    );
    expect(Date.now() - revokedAt).toBeLessThan(1_500);
    expect(await control.isLive(principal)).toBe(false);
  });

  it('with cacheMs 0 reads the database on every request', async () => {
    const { secret } = await createToken(t.db, { name: 'uncached', scopes: 'read:*' });
    const control = new AccessControl({ db: t.db, logger: silentLogger(), cacheMs: 0 });
    expect(await control.authenticate(secret)).toBeDefined();
    await revokeToken(t.db, { name: 'uncached' });
    expect(await control.authenticate(secret)).toBeUndefined();
  });
});

describe('scopes', () => {
  it.each([
    ['orders', 'orders', true],
    ['orders', 'orders.dlq', false],
    ['orders.*', 'orders.dlq', true],
    ['orders.*', 'orders.eu.late', true],
    ['orders.*', 'orders', false],
    ['orders*', 'orders', true],
    ['orders*', 'orders-eu', true],
    ['*', 'anything.at_all', true],
    ['*.dlq', 'payments.dlq', true],
    ['*.dlq', 'payments', false],
    ['a.b', 'aXb', false],
  ])('pattern %s matches queue %s: %s', (pattern, queue, expected) => {
    expect(matchesQueuePattern(pattern, queue)).toBe(expected);
  });

  it('grants implied actions: receive gives read, admin gives everything', () => {
    const scopes = new ScopeSet(parseScopes('receive:jobs,admin:ops.*,send:mail'));
    expect(scopes.allows('read', 'jobs')).toBe(true);
    expect(scopes.allows('send', 'jobs')).toBe(false);
    expect(scopes.allows('read', 'mail')).toBe(false);
    for (const action of ['read', 'send', 'receive', 'admin'] as const) {
      expect(scopes.allows(action, 'ops.x')).toBe(true);
    }
    expect(scopes.allowsEveryQueue('read')).toBe(false);
    expect(new ScopeSet(parseScopes('admin')).allowsEveryQueue('send')).toBe(true);
  });

  it('are stored in one canonical form, without duplicates', () => {
    expect(new ScopeSet(parseScopes(['admin:*', ' admin', 'read:a,read:a'])).toStrings()).toEqual([
      'admin',
      'read:a',
    ]);
  });
});

describe('RateLimiter', () => {
  it('allows a burst, then the sustained rate, per key', () => {
    let now = 0;
    const limiter = new RateLimiter({ perSecond: 2, burst: 3, now: () => now });
    expect([limiter.take('a'), limiter.take('a'), limiter.take('a')]).toEqual([0, 0, 0]);
    expect(limiter.take('a')).toBeCloseTo(0.5);
    expect(limiter.take('b')).toBe(0);
    now += 500;
    expect(limiter.take('a')).toBe(0);
    expect(limiter.take('a')).toBeGreaterThan(0);
    now += 10_000;
    expect([limiter.take('a'), limiter.take('a'), limiter.take('a')]).toEqual([0, 0, 0]);
    expect(limiter.take('a')).toBeGreaterThan(0);
  });
});
