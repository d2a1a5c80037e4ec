import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/database.ts';
import { startServiceProcess } from '../helpers/service-process.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSC = path.join(ROOT, 'node_modules/typescript/bin/tsc');

/**
 * The package as a consumer project sees it: built (what `prepare` does on install), linked
 * into a throwaway project's node_modules (as an install from a tarball or git would place
 * it; a link, so that no registry is needed for the dependencies), then imported by plain
 * Node without a TypeScript loader, and type-checked by a consumer's tsc.
 */
describe('the holdline package', () => {
  let consumer: string;

  beforeAll(async () => {
    await run(process.execPath, [TSC, '-p', path.join(ROOT, 'tsconfig.build.json')], {
      cwd: ROOT,
    });
    consumer = await mkdtemp(path.join(os.tmpdir(), 'holdline-consumer-'));
    await mkdir(path.join(consumer, 'node_modules'));
    await symlink(ROOT, path.join(consumer, 'node_modules/holdline'), 'dir');
    await writeFile(
      path.join(consumer, 'package.json'),
      JSON.stringify({ name: 'consumer', type: 'module', private: true }),
    );
  }, 60_000);
  afterAll(async () => {
    await rm(consumer, { recursive: true, force: true });
  });

  it('is importable by plain Node as `holdline`', async () => {
    const { stdout } = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const m = await import('holdline');
         console.log(JSON.stringify(Object.fromEntries(
           ['createClient', 'consume', 'createInProcessClient', 'send', 'HoldlineError', 'QueueWorker']
             .map((name) => [name, typeof m[name]]))));`,
      ],
      { cwd: consumer },
    );
    expect(JSON.parse(stdout)).toEqual({
      createClient: 'function',
      consume: 'function',
      createInProcessClient: 'function',
      send: 'function',
      HoldlineError: 'function',
      QueueWorker: 'function',
    });
  });

  it('builds an HTTP client whose import graph holds no pg, no kysely and no engine', async () => {
    // Every module the built client entry loads, followed through relative imports; the
    // bare specifiers are the packages it needs.
    const entry = path.join(ROOT, 'dist/src/client/index.js');
    const files = new Set<string>();
    const packages = new Set<string>();
    const pending = [entry];
    for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
      if (files.has(file)) continue;
      files.add(file);
      const text = await readFile(file, 'utf8');
      for (const match of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)['"]([^'"]+)['"]/g)) {
        const specifier = match[1]!;
        if (specifier.startsWith('.')) pending.push(path.resolve(path.dirname(file), specifier));
        else packages.add(specifier.startsWith('node:') ? 'node:' : specifier.split('/')[0]!);
      }
    }
    const modules = [...files].map((f) => path.relative(path.join(ROOT, 'dist/src'), f)).sort();
    // The walk found the client: the HTTP client, the worker and their helpers.
    expect(modules).toEqual(expect.arrayContaining(['client/client.js', 'client/worker.js']));
    // contract.ts is imported for types only: erased, so not loaded. The worker's process
    // spans need the OpenTelemetry API (a no-op until the application installs an SDK).
    expect(modules.filter((m) => !m.startsWith('client/'))).toEqual([
      'abort-signals.js',
      'messaging-spans.js',
    ]);
    expect([...packages].sort()).toEqual(['@opentelemetry', 'node:']);

    // And it is what `holdline/client` gives plain Node.
    const { stdout } = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const m = await import('holdline/client');
         console.log(typeof m.createClient, typeof m.consume, typeof m.createInProcessClient);`,
      ],
      { cwd: consumer },
    );
    expect(stdout.trim()).toBe('function function undefined');
  });

  it('type-checks a consumer that uses the client, the worker and a transactional send', async () => {
    await writeFile(
      path.join(consumer, 'consumer.ts'),
      `import { consume, createClient, HoldlineError, send } from 'holdline';
import type { Message, TransactionTarget } from 'holdline';

const client = createClient({ url: 'http://localhost:4000', token: 't' });
const worker = consume<{ to: string }>(
  'emails',
  async (message: Message<{ to: string }>, { signal }) => {
    const to: string = message.payload.to;
    if (signal.aborted) throw new Error(to);
  },
  { client, concurrency: 4 },
);
worker.on('processed', ({ durationMs }) => console.log(durationMs));
export async function enqueue(trx: TransactionTarget): Promise<string> {
  const sent = await send(trx, 'emails', { payload: { to: 'a@example.com' } });
  return sent.id;
}
export function codeOf(error: unknown): string | undefined {
  return error instanceof HoldlineError ? error.code : undefined;
}
await worker.stop({ timeoutMs: 1000 });
`,
    );
    await writeFile(
      path.join(consumer, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2023',
          lib: ['ES2023'],
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ['node'],
          typeRoots: [path.join(ROOT, 'node_modules/@types')],
        },
        files: ['consumer.ts'],
      }),
    );
    const result = await run(process.execPath, [TSC, '-p', consumer], { cwd: consumer }).then(
      () => ({ ok: true, output: '' }),
      (error: { stdout: string }) => ({ ok: false, output: error.stdout }),
    );
    expect(result).toEqual({ ok: true, output: '' });
  });

  it('runs the CLI and the service from the build, finding migrations/ and the schema', async () => {
    const t = await createTestDatabase();
    const builtCli = path.join(ROOT, 'dist/src/cli.js');
    try {
      // The test database is migrated already: `migrate` reads migrations/ to find nothing due.
      const { stdout } = await run(process.execPath, [builtCli, 'migrate'], {
        env: { ...process.env, DATABASE_URL: t.url },
      });
      expect(stdout.trim()).toBe('schema up to date');
      // The service reads schema.graphql as it starts; /readyz is 200 when no migration is due.
      const service = await startServiceProcess(t.url, {}, [builtCli]);
      try {
        const ready = await fetch(`${service.url}/readyz`);
        expect(ready.status).toBe(200);
      } finally {
        service.child.kill('SIGTERM');
        await service.exited;
      }
    } finally {
      await t.drop();
    }
  });

  it('ships the built entry point, its types, the CLI and the migrations', async () => {
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: ROOT,
    });
    const [packed] = JSON.parse(stdout) as [{ files: { path: string }[] }];
    const files = packed.files.map((f) => f.path);
    expect(files).toEqual(
      expect.arrayContaining([
        'dist/src/index.js',
        'dist/src/index.d.ts',
        'dist/src/client/worker.js',
        'dist/src/cli.js',
        'bin/holdline.js',
        'migrations/0001_create_schema.sql',
      ]),
    );
    expect(files.some((f) => f.startsWith('test/'))).toBe(false);
  });
});
