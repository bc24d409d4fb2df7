import { type Config, ConfigError } from '../config.ts';
import { createPool } from '../db/pool.ts';
import { formatDuration, parseBoundedDuration, TIMER_MAX_MS } from '../duration.ts';
import { errorMessage } from '../errors.ts';
import { readSettingsToCountWith } from '../fleet/drift.ts';
import { createLogger } from '../log.ts';
import { connectProducer } from '../queue/connection.ts';
import { requestSweep, SweepTimeoutError, waitForSweep } from '../queue/request-sweep.ts';
import { closeSweepQueue, createSweepQueue, type SweepQueue } from '../queue/sweep-queue.ts';
import { readSweepProgress } from '../read/sweep-progress.ts';
import { RedisSetupError } from '../redis-client.ts';
import { scrubSecrets } from '../secrets.ts';
import { describeDryRun, dryRun } from '../sweep/dry-run.ts';
import { type OptionValues, UsageError } from './options.ts';

/** How long `sweep --wait` waits by default; a big backlog may need `--timeout 1h`. */
const DEFAULT_TIMEOUT = '5m';
/** Then `sweep --wait` says that no worker has taken the request. */
const NO_WORKER_AFTER_MS = 5_000;
/** `sweep --wait` gave up waiting. */
export const EXIT_TIMEOUT = 3;

/**
 * `audit-sweeper sweep [--wait [--timeout D]] [--json]`: asks the workers for a sweep now. With
 * --wait, prints the run's totals and exits 1 if a partition failed, 3 if it did not finish
 * within the timeout. Notes go to stderr, so that stdout holds only the result.
 */
export async function run(config: Config, options: OptionValues): Promise<number> {
  if (options['dry-run']) return dryRunCommand(config, options);
  if (options.timeout !== undefined && !options.wait)
    throw new UsageError('--timeout only applies with --wait');
  // The wait is one timer: longer than a timer holds, it would give up at once.
  const timeout = parseBoundedDuration(
    String(options.timeout ?? DEFAULT_TIMEOUT),
    1_000,
    TIMER_MAX_MS,
  );
  if ('error' in timeout)
    throw new UsageError(`--timeout ${timeout.error}, got "${options.timeout}"`);
  const timeoutMs = timeout.ms;
  const logger = createLogger(config.LOG_LEVEL, 'sweep');
  const redis = await connectProducer(config, logger);
  const sq = createSweepQueue(redis, config.QUEUE_PREFIX);
  try {
    const tickId = await requestSweep(sq);
    if (!options.wait) {
      print(options.json, { requested: tickId }, `sweep requested (job ${tickId})`);
      return 0;
    }
    try {
      const summary = await waitForSweep(sq, tickId, {
        redisUrl: config.REDIS_URL,
        timeoutMs,
        logger,
        noWorkerAfterMs: NO_WORKER_AFTER_MS,
        onNoWorker: (paused) =>
          console.error(
            paused
              ? `waiting for a worker: the queue is paused (resume it in Bull Board); giving up after ${formatDuration(timeoutMs)}`
              : `waiting for a worker: none has taken the request after ${NO_WORKER_AFTER_MS / 1000}s (is \`audit-sweeper worker\` running with this REDIS_URL and QUEUE_PREFIX=${config.QUEUE_PREFIX}?); giving up after ${formatDuration(timeoutMs)}`,
          ),
      });
      const text = [
        `run ${summary.runId}: ${summary.finalized} entries timed out in ${summary.chunks} chunks over ${summary.partitions} partitions, ${summary.durationMs} ms`,
        ...summary.failedPartitions.map((f) => `  partition ${f.partition} failed: ${f.error}`),
      ].join('\n');
      print(options.json, summary, text);
      return summary.failedPartitions.length ? 1 : 0;
    } catch (err) {
      if (!(err instanceof SweepTimeoutError)) throw err;
      console.error(
        `timed out after ${formatDuration(timeoutMs)}: ${await whereItStands(sq, tickId)}`,
      );
      return EXIT_TIMEOUT;
    }
  } finally {
    await closeSweepQueue(sq);
    redis.disconnect();
  }
}

/** One line on where a sweep request stands, for the timeout message. */
async function whereItStands(sq: SweepQueue, tickId: string): Promise<string> {
  const p = await readSweepProgress(sq, tickId).catch(() => null);
  if (!p) return `sweep request ${tickId} is gone from the queue`;
  if (!p.runId)
    return `no worker has taken sweep request ${tickId} (${p.tickState}); the request stays queued`;
  const done = p.progress
    ? `, ${p.progress.partitionsDone} of ${p.progress.partitions} partitions done, ${p.progress.finalized} entries timed out so far`
    : '';
  return `run ${p.runId} is still under way${done}; it goes on without this command (see \`audit-sweeper status\`)`;
}

function print(json: unknown, value: unknown, text: string) {
  console.log(json ? JSON.stringify(value) : text);
}

/**
 * `sweep --dry-run`: what a sweep would finalize now, with the settings the workers run with
 * (Redis is asked for them; without it, this command's own). Reads only.
 */
async function dryRunCommand(config: Config, options: OptionValues): Promise<number> {
  if (options.wait) throw new UsageError('--dry-run cannot be combined with --wait');
  const logger = createLogger(config.LOG_LEVEL, 'sweep');
  const redis = await connectProducer(config, logger).catch((err: unknown) => {
    if (err instanceof ConfigError || err instanceof RedisSetupError) throw err;
    console.error(
      scrubSecrets(
        `Redis does not answer (${errorMessage(err)}): counting with this command's own settings`,
      ),
    );
    return null;
  });
  const pool = createPool(config.DATABASE_URL, logger, {
    max: 1,
    applicationName: 'audit-sweeper sweep --dry-run',
  });
  try {
    const sq = redis ? createSweepQueue(redis, config.QUEUE_PREFIX) : null;
    const { settings, source } = await readSettingsToCountWith(
      sq && redis ? { sq, redis } : null,
      config,
    );
    if (sq) await closeSweepQueue(sq);
    const report = await dryRun(pool, {
      staleAfterMs: settings.STALE_AFTER,
      partitions: settings.SWEEP_PARTITIONS,
      settingsSource: source,
    });
    print(options.json, report, describeDryRun(report));
    return 0;
  } finally {
    redis?.disconnect();
    await pool.end();
  }
}
