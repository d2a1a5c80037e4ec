#!/usr/bin/env node
// The `holdline` command. The sources are TypeScript run through tsx's loader, so the
// package needs no build step on Node 20.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
