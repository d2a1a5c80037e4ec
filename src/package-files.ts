import { existsSync } from 'node:fs';

/**
 * The package's root folder, where migrations/ and schema.graphql live. This module runs
 * from src/ (TypeScript through tsx: tests, a checkout's sources) or from dist/src/ (the
 * build, which bin/holdline.js and importers of the package run), one or two folders below
 * the root; the root is the first of those that holds package.json.
 */
function findPackageRoot(): URL {
  for (const up of ['../', '../../']) {
    const root = new URL(up, import.meta.url);
    if (existsSync(new URL('package.json', root))) return root;
  }
  throw new Error(`holdline: no package.json above ${import.meta.url}`);
}

export const PACKAGE_ROOT = findPackageRoot();
