import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { SentinelConnector } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { sentinelInternalsProblem } from '../src/redis-sentinel-fix.ts';

/**
 * The Sentinel reconnect fix (src/redis-sentinel-fix.ts, replayed for real in
 * test/redis-sentinel-reconnect.test.ts) reaches a private field of ioredis. ioredis is pinned
 * to an exact version, and a check run before any Sentinel client is made says when an upgrade
 * changed what the fix relies on.
 */

const require = createRequire(import.meta.url);

describe('the Sentinel fix and ioredis', () => {
  it('ioredis is pinned to one exact version, the one installed', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    expect(pkg.dependencies.ioredis).toMatch(/^\d+\.\d+\.\d+$/);
    expect(require('ioredis/package.json').version).toBe(pkg.dependencies.ioredis);
  });

  it('the installed ioredis has what the fix relies on', () => {
    expect(sentinelInternalsProblem()).toBeUndefined();
  });

  it('an ioredis without the private field, or whose detector lost cleanup(), is caught', () => {
    class Renamed extends SentinelConnector {
      constructor(options: ConstructorParameters<typeof SentinelConnector>[0]) {
        super(options);
        const self = this as unknown as Record<string, unknown>;
        self.detector = self.failoverDetector;
        delete self.failoverDetector;
      }
    }
    expect(sentinelInternalsProblem(Renamed)).toMatch(/no failoverDetector field/);
    expect(sentinelInternalsProblem(SentinelConnector, class {})).toMatch(/no cleanup\(\)/);
    expect(sentinelInternalsProblem(SentinelConnector, null)).toMatch(/no cleanup\(\)/);
  });
});
