import { describe, expect, it } from 'vitest';
import { ConfigError, isLoopbackHost, loadConfig } from '../../src/server/config.ts';

describe('authentication defaults', () => {
  it('are off on the default loopback HOST, with GraphiQL and introspection on', () => {
    expect(loadConfig({})).toMatchObject({
      host: '127.0.0.1',
      authRequired: false,
      graphiql: true,
      introspection: true,
      rateLimitPerSecond: 5_000,
      rateLimitBurst: 10_000,
      maxQueryCost: 20_000,
      allowedOrigins: [],
    });
  });

  it.each(['0.0.0.0', '::', '10.1.2.3', '192.168.0.10', 'holdline.internal', '[::]'])(
    'require a token on HOST=%s, with GraphiQL and introspection off',
    (host) => {
      expect(loadConfig({ HOST: host })).toMatchObject({
        authRequired: true,
        graphiql: false,
        introspection: false,
      });
    },
  );

  it.each(['127.0.0.1', '127.0.0.53', 'localhost', '::1', '[::1]', 'LOCALHOST'])(
    'leave HOST=%s open (loopback)',
    (host) => {
      expect(isLoopbackHost(host)).toBe(true);
      expect(loadConfig({ HOST: host }).authRequired).toBe(false);
    },
  );

  it('refuse to start unauthenticated on a network address without the explicit override', () => {
    const env = { HOST: '0.0.0.0', AUTH_REQUIRED: 'false' };
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(/AUTH_REQUIRED=false with HOST=0\.0\.0\.0/);
    expect(() => loadConfig(env)).toThrow(/ALLOW_UNAUTHENTICATED_NETWORK=true/);
    expect(loadConfig({ ...env, ALLOW_UNAUTHENTICATED_NETWORK: 'true' })).toMatchObject({
      authRequired: false,
      allowUnauthenticatedNetwork: true,
    });
  });

  it('can be turned on for loopback too, and GraphiQL or introspection back on explicitly', () => {
    expect(loadConfig({ AUTH_REQUIRED: 'true' })).toMatchObject({
      authRequired: true,
      graphiql: false,
      introspection: false,
    });
    expect(loadConfig({ HOST: '0.0.0.0', GRAPHIQL: 'true', INTROSPECTION: 'on' })).toMatchObject({
      authRequired: true,
      graphiql: true,
      introspection: true,
    });
    expect(loadConfig({ GRAPHIQL: 'false', INTROSPECTION: 'false' })).toMatchObject({
      graphiql: false,
      introspection: false,
    });
  });
});

describe('limits', () => {
  it('read the rate limit, burst and cost from the environment', () => {
    expect(
      loadConfig({ RATE_LIMIT_PER_SECOND: '5', RATE_LIMIT_BURST: '7', MAX_QUERY_COST: '300' }),
    ).toMatchObject({ rateLimitPerSecond: 5, rateLimitBurst: 7, maxQueryCost: 300 });
    expect(loadConfig({ RATE_LIMIT_PER_SECOND: '0' })).toMatchObject({
      rateLimitPerSecond: 0,
      rateLimitBurst: 1,
    });
  });

  it.each([
    ['RATE_LIMIT_PER_SECOND', '-1'],
    ['RATE_LIMIT_BURST', '0'],
    ['MAX_QUERY_COST', 'lots'],
    ['AUTH_REQUIRED', 'maybe'],
    ['CORS_ORIGINS', 'ops.example.com'],
    ['CORS_ORIGINS', 'https://ops.example.com/path'],
  ])('refuses %s=%s with a message naming it', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });
});

describe('CORS_ORIGINS', () => {
  it('takes a comma-separated list of origins, or *', () => {
    expect(
      loadConfig({ CORS_ORIGINS: 'https://ops.example.com, http://localhost:3000' }).allowedOrigins,
    ).toEqual(['https://ops.example.com', 'http://localhost:3000']);
    expect(loadConfig({ CORS_ORIGINS: '*' }).allowedOrigins).toEqual(['*']);
  });
});
