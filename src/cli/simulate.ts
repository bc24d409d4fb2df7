import type { Config } from '../config.ts';
import { createPool } from '../db/pool.ts';
import { createLogger } from '../log.ts';
import { runTraffic, TrafficStoppedError } from '../simulate/traffic.ts';
import { AuditLogStore } from '../store/store.ts';
import type { OptionValues } from './options.ts';
import { checkSimulateOptions } from './simulate-options.ts';

/**
 * `audit-sweeper simulate`: writes demo audit traffic until --duration has passed or SIGINT /
 * SIGTERM arrives, then lets the operations in flight complete and exits 0. A second signal
 * abandons them (exit 1): their rows stay incomplete, like a real crash.
 */
export async function run(config: Config, values: OptionValues): Promise<number> {
  const options = checkSimulateOptions(values);
  if (typeof options === 'string') {
    console.error(options);
    return 2;
  }
  const logger = createLogger(config.LOG_LEVEL, 'simulate');
  const pool = createPool(config.DATABASE_URL, logger, {
    max: 20,
    applicationName: 'audit-sweeper simulate',
  });
  const store = new AuditLogStore(pool, { logger });
  const stopping = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (!stopping.signal.aborted) {
      logger.info({ signal }, 'stopping: no new operations; completing those in flight');
      stopping.abort();
      return;
    }
    logger.warn({ signal }, 'second signal: abandoning operations in flight');
    process.exit(1);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await runTraffic(store, { ...options, signal: stopping.signal, logger });
    return 0;
  } catch (err) {
    if (!(err instanceof TrafficStoppedError)) throw err;
    const code = (err.cause as { code?: string })?.code;
    console.error(
      code === '42P01'
        ? 'the audit_log table does not exist: run `audit-sweeper migrate` first'
        : err.message,
    );
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await pool.end();
  }
}
