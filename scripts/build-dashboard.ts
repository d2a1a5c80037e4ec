import { mkdir, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = new URL('../', import.meta.url);

/** Where the built dashboard goes; the service serves it from there (src/server/dashboard.ts). */
export const DASHBOARD_OUT_DIR = fileURLToPath(new URL('dist/dashboard/', ROOT));

/**
 * Bundles the browser dashboard (src/dashboard/) into dist/dashboard/: `dashboard.js` (the
 * app, uPlot and the graphql-ws client, minified) and `dashboard.css` (its styles and
 * uPlot's). Everything the page loads comes from these two files, so the dashboard works
 * without internet. Runs in `npm run build` (and so in `prepare` on install) and before the
 * tests (test/setup/global-setup.ts), so the browser tests always see the current sources.
 */
export async function buildDashboard(): Promise<void> {
  await rm(DASHBOARD_OUT_DIR, { recursive: true, force: true });
  await mkdir(DASHBOARD_OUT_DIR, { recursive: true });
  await build({
    entryPoints: {
      dashboard: fileURLToPath(new URL('src/dashboard/main.ts', ROOT)),
    },
    outdir: DASHBOARD_OUT_DIR,
    bundle: true,
    minify: true,
    format: 'esm',
    // What Debian's chromium and the evergreen browsers of 2024 on run.
    target: ['chrome110', 'firefox115', 'safari16'],
    // Licence comments of the bundled libraries (uPlot: MIT) stay, at the end of the file.
    legalComments: 'eof',
    logLevel: 'warning',
  });
  await build({
    entryPoints: { dashboard: fileURLToPath(new URL('src/dashboard/dashboard.css', ROOT)) },
    outdir: DASHBOARD_OUT_DIR,
    bundle: true,
    minify: true,
    legalComments: 'eof',
    logLevel: 'warning',
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await buildDashboard();
}
