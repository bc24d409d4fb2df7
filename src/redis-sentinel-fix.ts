import { createRequire } from 'node:module';
import { SentinelConnector } from 'ioredis';

/**
 * ioredis's Sentinel connector, minus a race that ends a client for good. The failover detector
 * of a lost connection stays subscribed to `+switch-master` while the client reconnects; when
 * that message arrives in the middle of the reconnect's question to the sentinels, the detector
 * aborts the reconnect, and ioredis then ends the client: every later command fails with
 * "Connection is closed.", with no retry (seen in CI after a SIGKILLed primary; ioredis#1683
 * reports pods stuck the same way). A detector has nothing left to do once its connection is
 * gone, since the reconnect asks the sentinels for the primary anyway, so it is dropped before
 * each connect. The new connection starts its own. Duplicates (BullMQ's blocking connections)
 * inherit it through the options.
 */
export class SentinelReconnector extends SentinelConnector {
  override connect(...args: Parameters<SentinelConnector['connect']>) {
    const self = this as unknown as { failoverDetector?: { cleanup: () => void } };
    self.failoverDetector?.cleanup();
    self.failoverDetector = undefined;
    return super.connect(...args);
  }
}

/**
 * The fix above reaches a private field of ioredis (SentinelConnector's `failoverDetector`, and
 * the detector's `cleanup()`), which a release may rename without notice: ioredis is pinned to
 * an exact version (package.json) and this check, run before any Sentinel client is made and
 * by the tests, says so at once instead of the fix silently doing nothing.
 */
export function sentinelInternalsProblem(
  Connector: typeof SentinelConnector = SentinelConnector,
  Detector: { prototype: object } | null = loadFailoverDetector(),
): string | undefined {
  const connector = new Connector({
    sentinels: [{ host: '127.0.0.1', port: 1 }],
    name: 'check',
  } as ConstructorParameters<typeof SentinelConnector>[0]);
  const problems = [
    Object.hasOwn(connector, 'failoverDetector')
      ? ''
      : 'SentinelConnector has no failoverDetector field',
    typeof (Detector?.prototype as { cleanup?: unknown } | undefined)?.cleanup === 'function'
      ? ''
      : 'FailoverDetector has no cleanup()',
    /this\.failoverDetector\s*=/.test(
      String(
        (Connector.prototype as unknown as { initFailoverDetector?: unknown }).initFailoverDetector,
      ),
    )
      ? ''
      : 'SentinelConnector.initFailoverDetector no longer sets failoverDetector',
  ].filter(Boolean);
  return problems.length ? problems.join('; ') : undefined;
}

function loadFailoverDetector(): { prototype: object } | null {
  try {
    return createRequire(import.meta.url)(
      'ioredis/built/connectors/SentinelConnector/FailoverDetector.js',
    ).FailoverDetector;
  } catch {
    return null;
  }
}

let checked = false;

/** Throws, naming what changed, if the installed ioredis no longer fits SentinelReconnector. */
export function assertSentinelInternals(): void {
  if (checked) return;
  const problem = sentinelInternalsProblem();
  if (problem)
    throw new Error(
      `the installed ioredis does not fit the Sentinel reconnect fix (src/redis-sentinel-fix.ts): ${problem}. ioredis is pinned in package.json for this reason; review the fix before upgrading it`,
    );
  checked = true;
}
