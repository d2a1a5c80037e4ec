import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.ts';
import type { TestDatabase } from '../helpers/database.ts';
import {
  outputLines,
  parseOutputLine,
  runBash,
  startBash,
  terminalEnv,
  tourBlocks,
  withVariableFieldsOf,
} from '../helpers/readme-tour.ts';
import type { TourBlock } from '../helpers/readme-tour.ts';
import { startServiceProcess } from '../helpers/service-process.ts';
import type { ServiceProcess } from '../helpers/service-process.ts';

const ROOT = new URL('../../', import.meta.url);
/** The address the README's blocks use when HOLDLINE_URL is not set: `npm start`'s. */
const DEFAULT_URL_EXPANSION = '${HOLDLINE_URL:-http://localhost:4000}';
/** How long the SSE stream may take to print the delivery the second terminal sent. */
const DELIVERY_TIMEOUT_MS = 10_000;
/** The longest the SSE listener may run, whatever happens to this test. */
const LISTENER_MAX_SECONDS = 60;
/** Printed between the tour's shell blocks, to split one session's output by block. */
const STEP_SEPARATOR = '@@readme-tour-step@@';

let t: TestDatabase;
let service: ServiceProcess;
let blocks: TourBlock[];

beforeAll(async () => {
  blocks = tourBlocks(await readFile(new URL('README.md', ROOT), 'utf8'));
  t = await createTestDatabase();
  service = await startServiceProcess(t.url);
});
afterAll(async () => {
  service?.child.kill('SIGTERM');
  if (service !== undefined) await service.exited;
  await t?.drop();
});

/** Asserts that `actual` output is what the README says it prints, ids and receipts aside. */
function expectPrints(actual: string, expected: string, step: string): void {
  const actualLines = outputLines(actual);
  const expectedLines = outputLines(expected);
  expect(actualLines.length, `${step}: line count of\n${actual}`).toBe(expectedLines.length);
  expectedLines.forEach((line, i) => {
    const want = parseOutputLine(line);
    const got = parseOutputLine(actualLines[i] ?? '');
    expect(got.prefix, `${step}, line ${i + 1}`).toBe(want.prefix);
    expect(withVariableFieldsOf(want.value, got.value), `${step}, line ${i + 1}`).toEqual(
      want.value,
    );
  });
}

/** The block right after `index` when it is a `prints`/`listener-prints` block, else ''. */
function printsAfter(index: number, role: TourBlock['role'] = 'prints'): string {
  const next = blocks[index + 1];
  return next?.role === role ? next.text : '';
}

describe("the README's quick start and tour", () => {
  it('marks the quick start, every tour step and what each prints', () => {
    const roles = blocks.map((block) => block.role);
    expect(roles).toContain('quick-start');
    expect(roles).toContain('quick-start-prints');
    expect(roles.filter((role) => role === 'run').length).toBeGreaterThanOrEqual(5);
    expect(roles).toContain('listen');
    expect(roles).toContain('second-terminal');
    expect(roles).toContain('listener-prints');
    for (const block of blocks) {
      expect(block.language, block.role).toBe(block.role.endsWith('prints') ? 'text' : 'sh');
    }
  });

  it('starts the service with `npm start`, which runs what this test runs, and says what it logs', async () => {
    const quickStart = blocks.find((block) => block.role === 'quick-start');
    expect(quickStart?.text).toBe('npm install\nnpm start');
    const pkg = JSON.parse(await readFile(new URL('package.json', ROOT), 'utf8')) as {
      scripts: Record<string, string>;
    };
    // bin/holdline.js runs src/cli.ts (or its build), which is what startServiceProcess runs.
    expect(pkg.scripts.start).toBe('node bin/holdline.js serve');
    const listening = blocks.find((block) => block.role === 'quick-start-prints')?.text ?? '';
    const msg = /"msg":"([^"]+)"/.exec(listening)?.[1];
    const logged = service.logs.find((entry) => entry.msg === msg);
    expect(logged, `a log line with msg ${msg}`).toBeDefined();
    for (const key of [...listening.matchAll(/"(\w+)":/g)].map((m) => m[1] ?? '')) {
      expect(logged, `the listening line's ${key}`).toHaveProperty(key);
    }
    expect(listening).toContain('"url":"http://127.0.0.1:4000/graphql"');
  });

  it('runs every step of the tour verbatim in one shell and each prints what the README shows', async () => {
    const steps = blocks
      .map((block, index) => ({ block, index }))
      .filter(({ block }) => block.role === 'run');
    expect(steps[0]?.block.text).toContain(DEFAULT_URL_EXPANSION);
    const script = steps
      .map(({ block }) => `printf '%s\\n' '${STEP_SEPARATOR}'\n${block.text}`)
      .join('\n');
    const result = await runBash(script, terminalEnv(service.url));
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const outputs = result.stdout.split(`${STEP_SEPARATOR}\n`).slice(1);
    expect(outputs.length).toBe(steps.length);
    steps.forEach(({ block, index }, i) => {
      expectPrints(outputs[i] ?? '', printsAfter(index), block.text.split('\n')[0] ?? '');
    });
  });

  it('delivers a message sent from a self-contained second terminal to the running SSE stream', async () => {
    const listenIndex = blocks.findIndex((block) => block.role === 'listen');
    const secondIndex = blocks.findIndex((block) => block.role === 'second-terminal');
    const listen = blocks[listenIndex];
    const second = blocks[secondIndex];
    expect(listen?.text).toContain(DEFAULT_URL_EXPANSION);
    expect(second?.text).toContain(DEFAULT_URL_EXPANSION);
    const expectedStream = blocks.find((block) => block.role === 'listener-prints')?.text ?? '';

    const stream = startBash(listen?.text ?? '', terminalEnv(service.url), LISTENER_MAX_SECONDS);
    try {
      // A fresh shell with nothing but HOLDLINE_URL: the block defines what it uses.
      const sent = await runBash(second?.text ?? '', terminalEnv(service.url));
      expect(sent.stderr).toBe('');
      expect(sent.code).toBe(0);
      expectPrints(sent.stdout, printsAfter(secondIndex), 'second terminal');

      const wanted = outputLines(expectedStream).length;
      const printed = await stream.waitFor(
        // Whole lines only: an event ends with a blank line.
        (output) => outputLines(output).length >= wanted && output.endsWith('\n\n'),
        DELIVERY_TIMEOUT_MS,
      );
      expectPrints(printed, expectedStream, 'SSE stream');
    } finally {
      await stream.interrupt();
    }
    // Ctrl-C gave back the unacked delivery, as the README says: a long poll gets it again
    // as soon as the service has released it.
    const again = await runBash(
      `curl -s "$HOLDLINE_URL/graphql" -H 'content-type: application/json' -d '{"query":"mutation { receive(queue: \\"orders\\", waitSeconds: 5) { message { id payload } } }"}'`,
      terminalEnv(service.url),
    );
    expect(JSON.parse(again.stdout)).toEqual({
      data: { receive: [{ message: { id: '2', payload: { orderId: 43 } } }] },
    });
  });
});
