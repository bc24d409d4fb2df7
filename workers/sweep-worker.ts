import { type Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../src/config.ts';
import { createPool, type Pool } from '../src/db/pool.ts';
import type { Logger } from '../src/log.ts';
import { createMetrics, type Metrics } from '../src/metrics.ts';
import { createRedis } from '../src/queue/connection.ts';
import {
  JobName,
  type PartitionData,
  type RunData,
  SWEEP_QUEUE,
  type TickData,
} from '../src/queue/names.ts';
import { upsertSchedulers } from '../src/queue/scheduler.ts';
import { closeSweepQueue, createSweepQueue } from '../src/queue/sweep-queue.ts';
import { processPartitionJob } from '../src/sweep/partition-job.ts';
import { deleteExpiredEntries } from '../src/sweep/retention.ts';
import { startOrJoinRun, summarizeRun } from '../src/sweep/run-jobs.ts';

export type SweepWorker = {
  worker: Worker;
  metrics: Metrics;
  /** Lets the chunk under way commit, releases locks, waits for active jobs; bounded. */
  close: () => Promise<void>;
  pool: Pool;
  redis: Redis;
};

/**
 * A worker process's share of the sweeper: takes tick, run, partition and retention jobs from
 * the queue. Any number of these run side by side; none is special.
 */
export async function startSweepWorker(config: Config, logger: Logger): Promise<SweepWorker> {
  const redis = createRedis(config.REDIS_URL, 'worker', logger);
  const sq = createSweepQueue(config, redis);
  // The queue shares `redis`, whose errors createRedis already logs (once per new error);
  // with no listener BullMQ prints each one to stderr, outside the JSON log.
  sq.queue.on('error', () => {});
  const pool = createPool(config.DATABASE_URL, logger, {
    max: config.SWEEP_CONCURRENCY + 2,
    applicationName: 'audit-sweeper worker',
  });
  const metrics = createMetrics({ pool, staleAfterMs: config.STALE_AFTER });
  const shutdown = new AbortController();

  const processor = async (job: Job) => {
    switch (job.name) {
      case JobName.tick:
        return startOrJoinRun(sq, redis, (job.data as TickData).trigger ?? 'manual');
      case JobName.run:
        return summarizeRun(sq, redis, job as Job<RunData>, { logger, metrics });
      case JobName.partition:
        return processPartitionJob(job as Job<PartitionData>, {
          sq,
          redis,
          pool,
          logger,
          metrics,
          shutdown: shutdown.signal,
        });
      case JobName.retention: {
        if (config.RETENTION === null) return { skipped: 'RETENTION=off' };
        const status = await deleteExpiredEntries(pool, {
          retentionMs: config.RETENTION,
          timeBudgetMs: config.SWEEP_TIME_BUDGET,
          signal: shutdown.signal,
        });
        if (status.error) throw new Error(status.error);
        logger.info({ status }, 'retention run finished');
        return status;
      }
      default:
        throw new Error(`unknown job name "${job.name}"`);
    }
  };

  const worker = new Worker(SWEEP_QUEUE, processor, {
    connection: redis,
    prefix: sq.prefix,
    concurrency: config.SWEEP_CONCURRENCY,
    // A dead worker's jobs are taken over only once its partition locks have expired: the job
    // lock outlives the last partition-lock renewal (at most one TTL) by at least half a TTL
    // (lockDuration 2 TTL, renewed at least every TTL / 2). Were it the other way round, the
    // re-run job would find its own dead predecessor's lock, skip, and leave the partition
    // unswept until the next tick. Takeover comes within about 2 to 4 TTLs.
    lockDuration: 2 * config.SWEEP_LOCK_TTL,
    lockRenewTime: config.SWEEP_LOCK_TTL / 2,
    stalledInterval: config.SWEEP_LOCK_TTL,
    // Scheduler-made jobs are exempt from maxStalledCount: without this, a tick that kills its
    // worker would be retried forever.
    maxStartedAttempts: config.SWEEP_ATTEMPTS + 1,
  });
  worker.on('failed', (job, err) =>
    logger.error(
      { job: job?.id, name: job?.name, attemptsMade: job?.attemptsMade, err: err.message },
      'job failed',
    ),
  );
  worker.on('error', (err) => logger.warn({ err }, 'worker error'));

  const ensureSchedulers = () =>
    upsertSchedulers(sq).catch((err) =>
      logger.warn({ err }, 'could not upsert the job schedulers; will retry'),
    );
  // Again on every reconnect (Redis may have restarted empty) and now and then in case a
  // scheduler was removed by hand.
  redis.on('ready', ensureSchedulers);
  const resync = setInterval(ensureSchedulers, Math.max(config.SWEEP_EVERY, 30_000));
  await worker.waitUntilReady();
  await ensureSchedulers();
  logger.info(
    {
      partitions: config.SWEEP_PARTITIONS,
      every: config.SWEEP_EVERY,
      staleAfter: config.STALE_AFTER,
    },
    'sweep worker started',
  );

  return {
    worker,
    metrics,
    pool,
    redis,
    close: async () => {
      clearInterval(resync);
      redis.off('ready', ensureSchedulers);
      shutdown.abort();
      // Waits for the chunk under way; the command's runUntilSignal bounds the whole shutdown.
      await worker.close();
      await closeSweepQueue(sq);
      await pool.end();
      redis.disconnect();
    },
  };
}
