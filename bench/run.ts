/**
 * Runs every bench script (bench/*.ts except this one and the soak) one after another, each
 * in its own process, passing the arguments through (`npm run bench -- --smoke`). Exits
 * non-zero when one fails or overruns its time limit; the rest still run.
 *
 *   npx tsx bench/run.ts [--smoke]
 */
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseBenchArgs } from './harness/args.ts';
import { Overview } from './harness/overview.ts';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
/** A script still running after this long is stopped (SIGTERM: it drops its database). */
const SCRIPT_TIME_LIMIT_MS = 30 * 60_000;
const SMOKE_SCRIPT_TIME_LIMIT_MS = 2 * 60_000;
/**
 * Scripts left out: the soak runs for ten minutes and takes its own options (--minutes,
 * --rate); `npm run bench:soak` runs it. service-ab.ts compares this checkout with another
 * one it is given (BASELINE), for a change in progress.
 */
const RUN_SEPARATELY: ReadonlySet<string> = new Set(['soak.ts', 'service-ab.ts']);

const argv = process.argv.slice(2);
const args = parseBenchArgs(argv);
const overview = new Overview();

/** Runs one script under tsx; resolves with its exit code (null when killed by a signal). */
function runScript(script: string, timeLimitMs: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', import.meta.resolve('tsx'), path.join(BENCH_DIR, script), ...argv],
      { stdio: ['inherit', 'pipe', 'inherit'] },
    );
    // Passed through as it comes; summary lines also feed the overview table at the end.
    let partial = '';
    child.stdout.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk);
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) overview.add(line);
    });
    const timer = setTimeout(() => {
      process.stderr.write(`${script}: over ${timeLimitMs} ms, stopping it\n`);
      child.kill('SIGTERM');
    }, timeLimitMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

async function main(): Promise<void> {
  const scripts = (await readdir(BENCH_DIR))
    .filter(
      (f) =>
        f.endsWith('.ts') &&
        f !== path.basename(fileURLToPath(import.meta.url)) &&
        !RUN_SEPARATELY.has(f),
    )
    .sort();
  const limit = args.smoke ? SMOKE_SCRIPT_TIME_LIMIT_MS : SCRIPT_TIME_LIMIT_MS;
  const failed: string[] = [];
  for (const script of scripts) {
    process.stderr.write(`== ${script}${args.smoke ? ' (smoke)' : ''}\n`);
    const code = await runScript(script, limit);
    if (code !== 0) failed.push(script);
  }
  const rates = overview.renderRates();
  if (rates !== undefined) {
    process.stdout.write(
      `\nAll workloads: median per second (× that workload's raw limit; × pgmq where it ran)\n\n${rates}\n`,
    );
  }
  const latencies = overview.renderLatencies();
  if (latencies !== undefined) {
    process.stdout.write(
      `\nLatency workloads: median commit→handler p50 / p99, ms\n\n${latencies}\n`,
    );
  }
  if (failed.length > 0) {
    process.stderr.write(`failed: ${failed.join(', ')}\n`);
    process.exitCode = 1;
  }
}

await main();
