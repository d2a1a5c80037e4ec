import { chmod, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { buildDashboard } from '../../scripts/build-dashboard.ts';
import { createDatabase, createPool } from '../../src/db/pool.ts';
import { migrateToLatest } from '../../src/db/migrator.ts';
import { startEmbeddedPostgres } from '../../src/db/embedded-postgres.ts';
import { databaseUrl } from '../helpers/database-url.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A connection string to the test server's maintenance database. */
    serverUrl: string;
    /** A migrated database that each test file clones. */
    templateDatabase: string;
  }
}

/** How long to wait for a Docker engine to answer before using embedded PostgreSQL. */
const DOCKER_PROBE_TIMEOUT_MS = 3_000;

/**
 * One PostgreSQL for the whole run: TEST_DATABASE_URL or DATABASE_URL when set; else a
 * testcontainers PostgreSQL when a Docker engine answers; else an embedded PostgreSQL. A
 * migrated template database is made once; each test file clones it (test/helpers). The
 * dashboard is built from its current sources first, so the service the tests start serves
 * it as it is now (test/browser/).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  await buildDashboard();
  const server = await startServer();
  const templateDatabase = `holdline_template_${process.pid}_${Date.now()}`;
  await withClient(server.url, (c) =>
    c.query(`CREATE DATABASE ${pg.escapeIdentifier(templateDatabase)}`),
  );
  const templateUrl = databaseUrl(server.url, templateDatabase);
  const db = createDatabase(createPool({ connectionString: templateUrl, max: 1 }));
  try {
    await migrateToLatest(db);
  } finally {
    await db.destroy();
  }
  project.provide('serverUrl', server.url);
  project.provide('templateDatabase', templateDatabase);

  return async () => {
    await withClient(server.url, (c) =>
      c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(templateDatabase)} WITH (FORCE)`),
    );
    await server.stop();
  };
}

interface TestServer {
  url: string;
  stop(): Promise<void>;
}

async function startServer(): Promise<TestServer> {
  const given = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL;
  if (given !== undefined && given !== '') return { url: given, stop: () => Promise.resolve() };
  const container = await startContainer();
  if (container !== undefined) return container;
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'holdline-test-pg-'));
  // mkdtemp makes it 0700; as root PostgreSQL runs as the postgres user, who must enter it.
  await chmod(dataDir, 0o755);
  const embedded = await startEmbeddedPostgres({
    dataDir: path.join(dataDir, 'data'),
    port: await freePort(),
    persistent: false,
  });
  return {
    url: embedded.connectionString,
    stop: async () => {
      await embedded.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A testcontainers PostgreSQL, or undefined when no Docker engine answers in time. */
async function startContainer(): Promise<TestServer | undefined> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await withTimeout(getContainerRuntimeClient(), DOCKER_PROBE_TIMEOUT_MS);
  } catch {
    return undefined;
  }
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  const container = await new PostgreSqlContainer('postgres:16-alpine').start();
  return { url: container.getConnectionUri(), stop: async () => void (await container.stop()) };
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        resolve(typeof address === 'object' && address !== null ? address.port : 0),
      );
    });
  });
}

async function withClient<T>(url: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}
