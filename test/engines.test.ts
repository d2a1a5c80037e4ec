/**
 * package.json says Node 20 or later, so every installed package must accept Node 20: a
 * package whose `engines.node` does not makes `npm ci` warn (EBADENGINE) and may use APIs Node
 * 20 lacks. The overrides in package.json pin versions that accept it.
 */
import { readFileSync } from 'node:fs';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

interface Lock {
  packages: Record<string, { version?: string; engines?: { node?: string } | string[] }>;
}

/**
 * Node 20 as the project is run and tested on it (its current release line); some tools
 * (vitest, eslint) need 20.19 or later, which is why it is not 20.0.0.
 */
const NODE_20 = '20.20.2';

const lock = JSON.parse(
  readFileSync(new URL('../package-lock.json', import.meta.url), 'utf8'),
) as Lock;

describe('package-lock.json', () => {
  it('holds only packages whose engines.node accepts Node 20', () => {
    const refusing = Object.entries(lock.packages)
      .map(([where, entry]) => ({
        where,
        version: entry.version,
        node: Array.isArray(entry.engines) ? undefined : entry.engines?.node,
      }))
      .filter((p) => p.node !== undefined)
      .filter((p) => !semver.satisfies(NODE_20, p.node!))
      .map((p) => `${p.where}@${p.version} wants node ${p.node}`);
    expect(refusing).toEqual([]);
  });
});
