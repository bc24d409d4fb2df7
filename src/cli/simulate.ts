import { parseArgs } from 'node:util';
import type { Config } from '../config.ts';
import { createPool } from '../db/pool.ts';
import { DURATION_HINT, parseDuration } from '../duration.ts';
import { createLogger } from '../log.ts';
import { runTraffic, TrafficStoppedError } from '../simulate/traffic.ts';
import { AuditLogStore } from '../store/store.ts';

export const DEFAULT_RATE = 20;
export const DEFAULT_CRASH_RATIO = 0.05;
export const MAX_RATE = 10_000;

const DECIMAL = /^(\d+(\.\d*)?|\.\d+)$/;

type Options = { rate: number; crashRatio: number; durationMs?: number; seed?: number };

/** Checks the options; returns a one-line message for the first bad one. */
export function parseSimulateOptions(args: string[]): Options | string {
  let values: Record<string, string | undefined>;
  try {
    // Any parse error (unknown option, missing value, stray argument) is a usage error.
    values = parseArgs({
      args,
      allowPositionals: false,
      strict: true,
      options: {
        rate: { type: 'string' },
        'crash-ratio': { type: 'string' },
        duration: { type: 'string' },
        seed: { type: 'string' },
      },
    }).values;
  } catch (err) {
    return (err as Error).message.replace(/\s*\n\s*/g, ' ');
  }
  const options: Options = { rate: DEFAULT_RATE, crashRatio: DEFAULT_CRASH_RATIO };
  if (values.rate !== undefined) {
    const rate = DECIMAL.test(values.rate) ? Number(values.rate) : Number.NaN;
    if (!(rate > 0 && rate <= MAX_RATE)) {
      return `invalid --rate ${JSON.stringify(values.rate)}: expected operations per second, a number above 0 and at most ${MAX_RATE}`;
    }
    options.rate = rate;
  }
  const ratio = values['crash-ratio'];
  if (ratio !== undefined) {
    const crashRatio = DECIMAL.test(ratio) ? Number(ratio) : Number.NaN;
    if (!(crashRatio >= 0 && crashRatio <= 1)) {
      return `invalid --crash-ratio ${JSON.stringify(ratio)}: expected a fraction from 0 to 1, like 0.05`;
    }
    options.crashRatio = crashRatio;
  }
  if (values.duration !== undefined) {
    const ms = parseDuration(values.duration);
    if (ms === undefined || ms <= 0) {
      return `invalid --duration ${JSON.stringify(values.duration)}: expected ${DURATION_HINT}`;
    }
    options.durationMs = ms;
  }
  if (values.seed !== undefined) {
    const seed = /^\d+$/.test(values.seed) ? Number(values.seed) : Number.NaN;
    if (!(seed <= 0xffffffff)) {
      return `invalid --seed ${JSON.stringify(values.seed)}: expected a whole number from 0 to ${0xffffffff}`;
    }
    options.seed = seed;
  }
  return options;
}

/**
 * `audit-sweeper simulate`: writes demo audit traffic until --duration has passed or SIGINT /
 * SIGTERM arrives, then lets the operations in flight complete and exits 0. A second signal
 * abandons them (exit 1): their rows stay incomplete, like a real crash.
 */
export async function run(config: Config, args: string[]): Promise<number> {
  const options = parseSimulateOptions(args);
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
