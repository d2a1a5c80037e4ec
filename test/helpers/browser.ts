import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';

/** Debian's chromium (TOOLCHAIN.md), never a downloaded browser; `.ci/run` installs it. */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Launches headless chromium. Fails, never skips, when it is missing: without the browser
 * nothing in test/browser/ would be proven.
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/**
 * A fresh browser context (its own ephemeral profile) in which every request to another
 * origin than `origin` is aborted and recorded: the service must work as if the machine had
 * no internet, and must not even try to reach out.
 */
export async function offlineContext(
  browser: Browser,
  origin: string,
  options: { viewport?: { width: number; height: number } } = {},
): Promise<{ context: BrowserContext; page: Page; external: string[] }> {
  const context = await browser.newContext(options);
  const external: string[] = [];
  await context.route('**/*', async (route) => {
    const url = route.request().url();
    if (new URL(url).origin === origin) return route.continue();
    external.push(url);
    return route.abort('internetdisconnected');
  });
  return { context, page: await context.newPage(), external };
}

/**
 * Runs `use` with a page of a fresh {@link offlineContext} (only `origin` reachable; the
 * list of blocked requests to other hosts is passed along), closes the context after,
 * whatever happens, and returns what `use` returned.
 */
export async function withOfflinePage<T>(
  browser: Browser,
  origin: string,
  use: (page: Page, external: readonly string[]) => Promise<T>,
  options: { viewport?: { width: number; height: number } } = {},
): Promise<T> {
  const { context, page, external } = await offlineContext(browser, origin, options);
  try {
    return await use(page, external);
  } finally {
    await context.close();
  }
}
