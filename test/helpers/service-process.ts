import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/**
 * The CLI's sources, run through tsx: what bin/holdline.js runs when the build is stale. The
 * tests run the sources, not the build, so they test the code as it is now, and so that no
 * service starts from dist/ while the package test rebuilds it (test/client/package.test.ts,
 * which also runs the built CLI).
 */
const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
/** Node's arguments that run the `holdline` command from its sources; append the command's. */
export const CLI_NODE_ARGS: readonly string[] = ['--import', 'tsx', CLI];

/** The real `holdline serve` running as a child process. */
export interface ServiceProcess {
  child: ChildProcess;
  /** http://127.0.0.1:port */
  url: string;
  /** Resolves with the exit code (or the signal's name) when the process ends. */
  exited: Promise<number | string>;
  /** Log lines (parsed pino JSON) printed so far. */
  logs: Record<string, unknown>[];
}

/**
 * Spawns `holdline serve` (src/cli.ts, or what `nodeArgs` name) on `databaseUrl` with PORT=0 and waits for its
 * 'holdline listening' log line, which carries the URL. Rejects if it exits first.
 */
export async function startServiceProcess(
  databaseUrl: string,
  env: Record<string, string> = {},
  nodeArgs: readonly string[] = CLI_NODE_ARGS,
): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [...nodeArgs, 'serve'], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'holdline listening' && typeof entry.url === 'string') {
          resolve(entry.url.replace(/\/graphql$/, ''));
        }
      } catch {
        // not a log line
      }
    });
    void exited.then((code) =>
      reject(new Error(`service exited (${code}) before listening: ${stderr}`)),
    );
  });
  return { child, url, exited, logs };
}
