import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { graphqlRequest } from '../helpers/graphql-http.ts';
import { CLI_NODE_ARGS, startServiceProcess } from '../helpers/service-process.ts';
import type { ServiceProcess } from '../helpers/service-process.ts';

let t: TestDatabase;
const running: ServiceProcess[] = [];
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  for (const service of running) service.child.kill('SIGKILL');
  await Promise.all(running.map((s) => s.exited));
  await t.drop();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `holdline <args>` against the test database. */
function holdline(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...CLI_NODE_ARGS, ...args], {
      env: { ...process.env, DATABASE_URL: t.url, HOST: '127.0.0.1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function serve(env: Record<string, string>): Promise<ServiceProcess> {
  const service = await startServiceProcess(t.url, env);
  running.push(service);
  return service;
}

describe('holdline token', () => {
  let secret: string;

  it('create prints the secret alone on stdout, once', async () => {
    const run = await holdline([
      'token',
      'create',
      '--name',
      'ci',
      '--scopes',
      'send:orders.*,receive:orders,admin',
    ]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^hl_[A-Za-z0-9_-]{43}\n$/);
    expect(run.stderr).toContain(
      'created token "ci" with scopes send:orders.*,receive:orders,admin',
    );
    expect(run.stderr).toContain('cannot be shown again');
    secret = run.stdout.trim();
  });

  it('list shows tokens without their secrets', async () => {
    const json = await holdline(['token', 'list', '--json']);
    expect(json.code).toBe(0);
    const tokens = JSON.parse(json.stdout) as { name: string; scopes: string[]; revokedAt: null }[];
    expect(tokens).toMatchObject([
      { name: 'ci', scopes: ['send:orders.*', 'receive:orders', 'admin'], revokedAt: null },
    ]);
    const table = await holdline(['token', 'list']);
    expect(table.stdout).toContain('ci');
    for (const output of [json.stdout, table.stdout, json.stderr, table.stderr]) {
      expect(output).not.toContain(secret.slice(3));
    }
  });

  it('refuses bad scopes and a taken name, with the reason', async () => {
    const [bad, taken, missing] = await Promise.all([
      holdline(['token', 'create', '--name', 'x', '--scopes', 'write:orders']),
      holdline(['token', 'create', '--name', 'ci', '--scopes', 'admin']),
      holdline(['token', 'create', '--name', 'y']),
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('BAD_USER_INPUT');
    expect(bad.stdout).toBe('');
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain('TOKEN_EXISTS');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--scopes');
  });

  it('prints the usage of token and of each subcommand with --help', async () => {
    const cases = [
      [['token', '--help'], 'holdline token create | list | revoke'],
      [['token', 'create', '--help'], 'holdline token create --name <name> --scopes <scopes>'],
      [['token', 'list', '--help'], 'holdline token list [--all] [--json]'],
      [['token', 'revoke', '--help'], 'holdline token revoke <name>'],
    ] as const;
    const runs = await Promise.all(cases.map(([args]) => holdline([...args])));
    cases.forEach(([, usage], i) => {
      expect(runs[i]).toMatchObject({ code: 0 });
      expect(runs[i]!.stdout).toContain(usage);
    });
  });

  it('revoke takes effect on a running service within a second', async () => {
    const service = await serve({ AUTH_REQUIRED: 'true' });
    const headers = { authorization: `Bearer ${secret}` };
    const before = await graphqlRequest(service.url, `{ queues { name } }`, undefined, { headers });
    expect(before).toMatchObject({ status: 200, data: { queues: [] } });

    const run = await holdline(['token', 'revoke', 'ci']);
    expect(run).toMatchObject({ code: 0, stdout: 'revoked token "ci"\n' });
    const revokedAt = Date.now();
    let after = await graphqlRequest(service.url, `{ queues { name } }`, undefined, { headers });
    while (after.status === 200 && Date.now() - revokedAt < 5_000) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      after = await graphqlRequest(service.url, `{ queues { name } }`, undefined, { headers });
    }
    expect(after.status).toBe(401);
    expect(after.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(Date.now() - revokedAt).toBeLessThan(1_500);

    const again = await holdline(['token', 'revoke', 'ci']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('no live token is named "ci"');
    const all = JSON.parse((await holdline(['token', 'list', '--all', '--json'])).stdout) as {
      revokedAt: string | null;
    }[];
    expect(all[0]?.revokedAt).not.toBeNull();
  });
});

describe('holdline serve', () => {
  it('with authentication on refuses requests without a token', async () => {
    const service = await serve({ AUTH_REQUIRED: 'true' });
    const result = await graphqlRequest(service.url, `{ queues { name } }`);
    expect(result.status).toBe(401);
    expect(result.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(service.logs.filter((l) => String(l.msg).includes('authentication is off'))).toEqual([]);
  });

  it('with authentication off logs one clear warning at start', async () => {
    const service = await serve({});
    const warnings = service.logs.filter((l) => l.level === 40);
    expect(warnings.map((l) => l.msg)).toEqual([
      'authentication is off: anyone who can connect may use every queue (AUTH_REQUIRED=true turns it on)',
    ]);
    expect((await graphqlRequest(service.url, `{ queues { name } }`)).status).toBe(200);
  });

  it('refuses to start unauthenticated on a network address, before listening', async () => {
    const run = await holdline(['serve'], { HOST: '0.0.0.0', AUTH_REQUIRED: 'false', PORT: '0' });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('CONFIG: AUTH_REQUIRED=false with HOST=0.0.0.0');
    expect(run.stdout).not.toContain('holdline listening');
  });
});
