#!/usr/bin/env node
// The `holdline` command. It runs the JavaScript build in dist/ (made by `npm run build`, by
// `prepare` on install, and shipped in the package) when that build is at least as new as
// every source in src/. In a checkout whose sources changed since the last build it runs the
// TypeScript sources through tsx's loader instead, so it is never stale; that costs about a
// second of start-up and 50 MB of memory, which is why the build is preferred.
import { existsSync, readdirSync, statSync } from 'node:fs';
import process from 'node:process';
import { URL, fileURLToPath } from 'node:url';

// The service runs as production unless NODE_ENV says otherwise, set before any library is
// loaded (graphql-js reads it once, at import). Outside production graphql-js double-checks
// every instanceof it makes for a second copy of itself: about a fifth of the service's CPU
// per message on a drain over HTTP (docs/performance.md).
if (process.argv[2] === 'serve') process.env.NODE_ENV ??= 'production';

const root = new URL('../', import.meta.url);
const built = new URL('dist/src/cli.js', root);

/**
 * The newest modification time of the files under `dir`, in ms, leaving out those under
 * `skip` (a folder URL) when given.
 */
function newestMtimeMs(dir, skip) {
  const skipped = skip === undefined ? undefined : fileURLToPath(skip);
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) {
      // parentPath: Node 20.12+; path: its name before that.
      const file = `${entry.parentPath ?? entry.path}/${entry.name}`;
      if (skipped !== undefined && file.startsWith(skipped)) continue;
      newest = Math.max(newest, statSync(file).mtimeMs);
    }
  }
  return newest;
}

// The browser dashboard (src/dashboard/) is bundled apart from the server, so its sources
// neither make the server's build stale nor can tsx run them. In a checkout (the builder,
// which the package does not ship, is there), `serve` rebuilds a bundle older than its
// sources first, so that it never serves a stale dashboard either (esbuild, well under a second).
const dashboardSources = new URL('src/dashboard/', root);
const dashboardBundle = new URL('dist/dashboard/dashboard.js', root);
const dashboardBuilder = new URL('scripts/build-dashboard.ts', root);
if (
  process.argv[2] === 'serve' &&
  existsSync(dashboardBuilder) &&
  existsSync(dashboardSources) &&
  (!existsSync(dashboardBundle) ||
    statSync(dashboardBundle).mtimeMs < newestMtimeMs(dashboardSources))
) {
  try {
    const { tsImport } = await import('tsx/esm/api');
    const { buildDashboard } = await tsImport(dashboardBuilder.href, import.meta.url);
    await buildDashboard();
  } catch (error) {
    // The service still runs; `/` then serves the bundle there is, or the start page.
    process.stderr.write(`holdline: the dashboard was not rebuilt: ${error}\n`);
  }
}

const serverSources = newestMtimeMs(new URL('src/', root), dashboardSources);
if (existsSync(built) && statSync(built).mtimeMs >= serverSources) {
  await import(built.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli.ts');
}
