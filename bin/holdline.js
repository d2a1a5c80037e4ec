#!/usr/bin/env node
// The `holdline` command. It runs the JavaScript build in dist/ (made by `npm run build`, by
// `prepare` on install, and shipped in the package) when that build is at least as new as
// every source in src/. In a checkout whose sources changed since the last build it runs the
// TypeScript sources through tsx's loader instead, so it is never stale; that costs about a
// second of start-up and 50 MB of memory, which is why the build is preferred.
import { existsSync, readdirSync, statSync } from 'node:fs';
import process from 'node:process';
import { URL } from 'node:url';

// The service runs as production unless NODE_ENV says otherwise, set before any library is
// loaded (graphql-js reads it once, at import). Outside production graphql-js double-checks
// every instanceof it makes for a second copy of itself: about a fifth of the service's CPU
// per message on a drain over HTTP (docs/performance.md).
if (process.argv[2] === 'serve') process.env.NODE_ENV ??= 'production';

const root = new URL('../', import.meta.url);
const built = new URL('dist/src/cli.js', root);

/** The newest modification time of the files under `dir`, in ms. */
function newestMtimeMs(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) {
      // parentPath: Node 20.12+; path: its name before that.
      const file = `${entry.parentPath ?? entry.path}/${entry.name}`;
      newest = Math.max(newest, statSync(file).mtimeMs);
    }
  }
  return newest;
}

if (existsSync(built) && statSync(built).mtimeMs >= newestMtimeMs(new URL('src/', root))) {
  await import(built.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli.ts');
}
