import { type Job, Worker } from 'bullmq';
import type { Config } from '../src/config.ts';
import { createPool, type Pool } from '../src/db/pool.ts';
import type { Logger } from '../src/log.ts';
import { RepeatedErrors } from '../src/log-repeats.ts';
import { createMetrics, type Metrics } from '../src/metrics.ts';
import { createRedis } from '../src/queue/connection.ts';
import { JobName, PARTITION_QUEUE, SWEEP_QUEUE } from '../src/queue/jobs.ts';
import { upsertSchedulers } from '../src/queue/schedulers.ts';
import { closeSweepQueue, createSweepQueue } from '../src/queue/sweep-queue.ts';
import type { JobContext, WorkerSettings } from './job-context.ts';
import { processPartition } from './jobs/partition.ts';
import { processRetention } from './jobs/retention.ts';
import { processRun } from './jobs/run.ts';
import { processTick } from './jobs/tick.ts';

// biome-ignore lint/suspicious/noExplicitAny: each processor narrows its own job's data type.
type Processor = (job: Job<any>, ctx: JobContext) => Promise<unknown>;

/**
 * Which function processes each job name, per queue: one file per job kind, under jobs/. A job
 * under a name its queue does not hold fails visibly instead of being run by the wrong code.
 */
const PROCESSORS: Record<string, Partial<Record<JobName, Processor>>> = {
  [SWEEP_QUEUE]: {
    [JobName.tick]: processTick,
    [JobName.run]: processRun,
    [JobName.retention]: processRetention,
  },
  [PARTITION_QUEUE]: { [JobName.partition]: processPartition },
};

export type SweepWorker = {
  metrics: Metrics;
  /** Lets the chunk under way commit, releases locks, waits for active jobs; bounded. */
  close: () => Promise<void>;
  /** For the probes. */
  pool: Pool;
  redis: JobContext['redis'];
};

/**
 * A worker process's share of the sweeper: one BullMQ Worker per queue (ticks, runs and
 * retention; partition jobs), both with the same concurrency and lock rules. Any number of
 * these processes run side by side; none is special.
 */
export async function startSweepWorker(
  config: WorkerSettings & Pick<Config, 'REDIS_URL' | 'DATABASE_URL' | 'QUEUE_PREFIX'>,
  logger: Logger,
  /** Metrics to count into (`start` shares the dashboard's); by default its own. */
  options: { metrics?: Metrics } = {},
): Promise<SweepWorker> {
  const redis = createRedis(config.REDIS_URL, 'worker', logger);
  const sq = createSweepQueue(redis, config.QUEUE_PREFIX);
  // The queues share `redis`, whose errors createRedis already logs (once per new error);
  // with no listener BullMQ prints each one to stderr, outside the JSON log.
  sq.queue.on('error', () => {});
  sq.partitions.on('error', () => {});
  const pool = createPool(config.DATABASE_URL, logger, {
    max: config.SWEEP_CONCURRENCY + 2,
    applicationName: 'audit-sweeper worker',
  });
  const metrics = options.metrics ?? createMetrics({ pool, staleAfterMs: config.STALE_AFTER });
  const shutdown = new AbortController();
  const ctx: JobContext = {
    settings: config,
    sq,
    redis,
    pool,
    logger,
    metrics,
    shutdown: shutdown.signal,
  };

  const repeats = new RepeatedErrors(logger);
  redis.on('ready', () => repeats.succeeded('queue worker'));
  const startWorker = (queueName: string) => {
    const processors = PROCESSORS[queueName] ?? {};
    const worker = new Worker(
      queueName,
      async (job: Job) => {
        const process = processors[job.name as JobName];
        if (!process) throw new Error(`unknown job name "${job.name}" in queue ${queueName}`);
        return process(job, ctx);
      },
      {
        connection: redis,
        prefix: sq.prefix,
        concurrency: config.SWEEP_CONCURRENCY,
        // A dead worker's jobs are taken over only once its partition locks have expired: the
        // job lock outlives the last partition-lock renewal (at most one TTL) by at least half a
        // TTL (lockDuration 2 TTL, renewed at least every TTL / 2). Were it the other way round,
        // the re-run job would find its own dead predecessor's lock, skip, and leave the
        // partition unswept until the next tick. Takeover comes within about 2 to 4 TTLs.
        lockDuration: 2 * config.SWEEP_LOCK_TTL,
        lockRenewTime: config.SWEEP_LOCK_TTL / 2,
        stalledInterval: config.SWEEP_LOCK_TTL,
        // Scheduler-made jobs are exempt from maxStalledCount: without this, a tick that kills
        // its worker would be retried forever.
        maxStartedAttempts: config.SWEEP_ATTEMPTS + 1,
      },
    );
    // Once per change of state, with a count: a database outage fails every job attempt.
    worker.on('failed', (job, err) =>
      repeats.failed(
        `${job?.name ?? 'unknown'} jobs`,
        err.message,
        { job: job?.id, name: job?.name, attemptsMade: job?.attemptsMade },
        'job failed',
      ),
    );
    worker.on('completed', (job) => repeats.succeeded(`${job.name} jobs`));
    worker.on('error', (err) => repeats.failed('queue worker', err.message, {}, 'worker error'));
    return worker;
  };
  const workers = [startWorker(SWEEP_QUEUE), startWorker(PARTITION_QUEUE)];

  const ensureSchedulers = () =>
    upsertSchedulers(sq, config).catch((err) =>
      logger.warn({ err }, 'could not upsert the job schedulers; will retry'),
    );
  // Again on every reconnect (Redis may have restarted empty) and now and then in case a
  // scheduler was removed by hand.
  redis.on('ready', ensureSchedulers);
  const resync = setInterval(ensureSchedulers, Math.max(config.SWEEP_EVERY, 30_000));
  await Promise.all(workers.map((w) => w.waitUntilReady()));
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
    metrics,
    pool,
    redis,
    close: async () => {
      clearInterval(resync);
      redis.off('ready', ensureSchedulers);
      shutdown.abort();
      // Waits for the chunk under way; the command's runUntilSignal bounds the whole shutdown.
      await Promise.all(workers.map((w) => w.close()));
      await closeSweepQueue(sq);
      await pool.end();
      redis.disconnect();
    },
  };
}
