import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';

/**
 * What a marked block of the README's tour is: `quick-start` (the install and start
 * commands), `quick-start-prints` (the service's listening line), `run` (shell run in the
 * reader's tour terminal, one session for all of them), `prints` (what the shell block
 * before it prints), `listen` (the SSE stream, left running), `second-terminal` (shell run
 * in a fresh terminal of its own), `listener-prints` (what the stream prints).
 */
export type TourRole =
  | 'quick-start'
  | 'quick-start-prints'
  | 'run'
  | 'prints'
  | 'listen'
  | 'second-terminal'
  | 'listener-prints';

/** One fenced block of the README preceded by a `<!-- tour:<role> -->` comment. */
export interface TourBlock {
  role: TourRole;
  /** The fence's language: sh, text. */
  language: string;
  /** The block's text, exactly as in the README, without the fences. */
  text: string;
}

const TOUR_ROLES: readonly string[] = [
  'quick-start',
  'quick-start-prints',
  'run',
  'prints',
  'listen',
  'second-terminal',
  'listener-prints',
];

/**
 * The README's tour blocks in document order. Each is a fenced block directly after a
 * `<!-- tour:<role> -->` comment (blank lines between them allowed); a marker that is not
 * followed by a fenced block, or names an unknown role, throws, so a broken marker cannot
 * silently drop a step from the test.
 */
export function tourBlocks(markdown: string): TourBlock[] {
  const markers = [...markdown.matchAll(/<!-- tour:([a-z-]+) -->/g)];
  return markers.map((marker) => {
    const role = marker[1] ?? '';
    if (!TOUR_ROLES.includes(role)) throw new Error(`unknown tour marker "${role}"`);
    const rest = markdown.slice((marker.index ?? 0) + marker[0].length);
    const fence = /^\s*```(\w*)\n([\s\S]*?)\n```/.exec(rest);
    if (fence === null) throw new Error(`tour marker "${role}" is not followed by a fenced block`);
    return { role: role as TourRole, language: fence[1] ?? '', text: fence[2] ?? '' };
  });
}

/** The output of one bash run. */
export interface BashResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment a reader's fresh terminal has, as far as the tour is concerned: PATH and
 * HOME, and HOLDLINE_URL pointing at the service under test. Nothing else is inherited, so
 * a block that needs a variable or function must define it itself.
 */
export function terminalEnv(holdlineUrl: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    HOLDLINE_URL: holdlineUrl,
  };
}

/** Runs `script` with `bash -c` to its end. */
export async function runBash(script: string, env: Record<string, string>): Promise<BashResult> {
  const child = spawn('bash', ['-c', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode) => resolve(exitCode));
  });
  return { code, stdout, stderr };
}

/** A bash script left running in the background, in a process group of its own. */
export interface BackgroundBash {
  child: ChildProcess;
  /** Everything it printed on stdout so far. */
  output(): string;
  /** Resolves with its output once `done(output)` holds; rejects after `timeoutMs`. */
  waitFor(done: (output: string) => boolean, timeoutMs: number): Promise<string>;
  /** Sends SIGINT to its whole process group (Ctrl-C) and waits for it to end. */
  interrupt(): Promise<void>;
}

/**
 * Starts `script` with `bash -c` in the background (as a reader leaves a command running),
 * under coreutils' `timeout` so that it never outlives `maxSeconds` even if the test dies
 * before interrupting it.
 */
export function startBash(
  script: string,
  env: Record<string, string>,
  maxSeconds: number,
): BackgroundBash {
  const child = spawn('timeout', [String(maxSeconds), 'bash', '-c', script], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.resume();
  return {
    child,
    output: () => stdout,
    waitFor(done, timeoutMs) {
      return new Promise<string>((resolve, reject) => {
        const check = (): void => {
          if (!done(stdout)) return;
          cleanup();
          resolve(stdout);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`not seen within ${timeoutMs} ms; output so far:\n${stdout}`));
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          child.stdout?.off('data', check);
        };
        child.stdout?.on('data', check);
        check();
      });
    },
    async interrupt() {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGINT');
        } catch {
          // already gone
        }
      }
      await closed;
    },
  };
}

/**
 * Fields whose values differ on every run (random lease tokens, clock times): for these only
 * the form is checked, not the value.
 */
const VARIABLE_FIELDS: Record<string, (value: unknown) => boolean> = {
  receipt: (value) => typeof value === 'string' && /^\d+\.[0-9a-f-]{36}$/.test(value),
  leaseExpiresAt: (value) => typeof value === 'string' && !Number.isNaN(Date.parse(value)),
};

/**
 * `actual` with each variable field (see VARIABLE_FIELDS) replaced by `expected`'s value
 * when its own value has the right form, so that `toEqual(expected)` compares everything
 * else exactly: keys, ids, states, counts, payloads, error codes.
 */
export function withVariableFieldsOf(expected: unknown, actual: unknown): unknown {
  if (Array.isArray(expected) && Array.isArray(actual)) {
    return actual.map((item, i) => withVariableFieldsOf(expected[i], item));
  }
  if (isObject(expected) && isObject(actual)) {
    return Object.fromEntries(
      Object.entries(actual).map(([key, value]) => {
        const wellFormed = VARIABLE_FIELDS[key];
        if (wellFormed !== undefined && key in expected && wellFormed(value)) {
          return [key, expected[key]];
        }
        return [key, withVariableFieldsOf(expected[key], value)];
      }),
    );
  }
  return actual;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * One line of output as the README writes it and as a comparison sees it: JSON (also after
 * an SSE `data: ` prefix) parsed, anything else as text.
 */
export function parseOutputLine(line: string): { prefix: string; value: unknown } {
  const prefix = line.startsWith('data: ') ? 'data: ' : '';
  const body = line.slice(prefix.length);
  try {
    return { prefix, value: JSON.parse(body) as unknown };
  } catch {
    return { prefix, value: body };
  }
}

/** The non-empty lines of `text`, without SSE keep-alive comments (lines starting with `:`). */
export function outputLines(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '' && !line.startsWith(':'));
}
