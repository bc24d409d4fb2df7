import { type Job, MetricsTime } from 'bullmq';
import type { Config } from '../src/config.ts';
import { ImpactSampler, MAX_RATE } from '../src/control/adaptive.ts';
import { ChunkGate } from '../src/control/gate.ts';
import { applyStreamCap } from '../src/control/streams.ts';
import { createPool, createReadinessPool, type Pool } from '../src/db/pool.ts';
import { type Heartbeat, startHeartbeat, workerIdentity } from '../src/fleet/heartbeat.ts';
import { fleetSettingsOf } from '../src/fleet/settings.ts';
import type { Logger } from '../src/log.ts';
import { RepeatedErrors } from '../src/log-repeats.ts';
import { createMetrics, type Metrics } from '../src/metrics.ts';
import { checkRedisForWorker, createRedis } from '../src/queue/connection.ts';
import { JobName, PARTITION_QUEUE, SWEEP_QUEUE } from '../src/queue/jobs.ts';
import { upsertSchedulers } from '../src/queue/schedulers.ts';
import {
  closeSweepQueue,
  createSweepQueue,
  KEEP_COMPLETED,
  KEEP_FAILED,
  trimFinishedJobs,
} from '../src/queue/sweep-queue.ts';
import { TolerantWorker } from '../src/queue/tolerant-job.ts';
import { readOverview } from '../src/read/overview.ts';
import { redisTrouble } from '../src/redis-client.ts';
import { type FetchState, watchFetching } from './fetch-watchdog.ts';
import type { JobContext, WorkerSettings } from './job-context.ts';
import { checkJobEntry } from './job-entry.ts';
import { processPartition } from './jobs/partition.ts';
import { processRetention } from './jobs/retention.ts';
import { processRun } from './jobs/run.ts';
import { processTick } from './jobs/tick.ts';

// biome-ignore lint/suspicious/noExplicitAny: each processor narrows its own job's data type.
type Processor = (job: Job<any>, ctx: JobContext) => Promise<unknown>;

/** A queue with jobs due and this process's Worker for it idle this long: replace the Worker. */
const FETCH_STUCK_AFTER_MS = 15_000;
/** How often each worker writes SWEEP_MAX_STREAMS to Redis again (besides start and reconnects). */
const STREAM_CAP_RESYNC_MS = 5_000;

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
  /** For the probes: one connection of their own, apart from the chunks'. */
  readinessPool: Pool;
  redis: JobContext['redis'];
  /** Resolves once Redis has answered and the schedulers are upserted (may take an outage). */
  ready: Promise<void>;
};

/**
 * A worker process's share of the sweeper: one BullMQ Worker per queue (ticks, runs and
 * retention; partition jobs), both with the same concurrency and lock rules. Any number of
 * these processes run side by side; none is special. Resolves once Redis answers.
 */
type SweepWorkerOptions = {
  /** Metrics to count into (`start` shares the dashboard's); by default its own. */
  metrics?: Metrics;
};

type SweepWorkerConfig = WorkerSettings &
  Pick<Config, 'REDIS_URL' | 'DATABASE_URL' | 'QUEUE_PREFIX'> &
  Partial<Pick<Config, 'DATABASE_READ_URL'>>;

export async function startSweepWorker(
  config: SweepWorkerConfig,
  logger: Logger,
  options: SweepWorkerOptions = {},
): Promise<SweepWorker> {
  const sweeper = createSweepWorker(config, logger, options);
  await sweeper.ready;
  return sweeper;
}

/**
 * The sweep worker, returned at once: it connects in the background (`ready`), so that a
 * process started during a Redis outage can serve its probes and shut down cleanly meanwhile.
 */
export function createSweepWorker(
  config: SweepWorkerConfig,
  logger: Logger,
  options: SweepWorkerOptions = {},
): SweepWorker {
  const redis = createRedis(config, 'worker', logger);
  const sq = createSweepQueue(redis, config.QUEUE_PREFIX);
  // Every statement bounded: a chunk behind DDL fails and is retried instead of holding its
  // partition (and its place in the DDL's lock queue) for as long as the DDL takes.
  const pool = createPool(config.DATABASE_URL, logger, {
    max: config.SWEEP_CONCURRENCY + 2,
    applicationName: 'audit-sweeper worker',
    statementTimeoutMs: config.SWEEP_STATEMENT_TIMEOUT,
    lockTimeoutMs: config.SWEEP_LOCK_TIMEOUT,
  });
  const readinessPool = createReadinessPool(config.DATABASE_URL, logger);
  // The backlog gauges only read: from DATABASE_READ_URL when there is one.
  const gaugePool = config.DATABASE_READ_URL
    ? createPool(config.DATABASE_READ_URL, logger, {
        max: 1,
        applicationName: 'audit-sweeper worker gauges',
      })
    : pool;
  const me = workerIdentity();
  const metrics =
    options.metrics ??
    createMetrics({
      logger,
      // The same read as the overview: the backlog counted with the fleet's cutoff.
      overview: () =>
        readOverview(
          { pool: gaugePool, sq, redis },
          { settings: config, reader: `worker ${me.host} pid ${me.pid}` },
          20,
        ),
    });
  const shutdown = new AbortController();
  const fleetSettings = fleetSettingsOf(config);
  const ctx: JobContext = {
    settings: config,
    fleetSettings,
    sq,
    redis,
    pool,
    logger,
    metrics,
    gate: new ChunkGate({ redis, sq, pool, logger, metrics, settings: config }),
    shutdown: shutdown.signal,
  };

  // The adaptive throttle's probe, on a connection of its own (never behind the chunks).
  const probePool =
    config.SWEEP_IMPACT_TARGET === null
      ? null
      : createPool(config.DATABASE_URL, logger, {
          max: 1,
          applicationName: 'audit-sweeper probe',
          statementTimeoutMs: 10_000,
        });
  const sampler =
    probePool && config.SWEEP_IMPACT_TARGET !== null
      ? new ImpactSampler({
          redis,
          sq,
          probePool,
          logger,
          target: config.SWEEP_IMPACT_TARGET,
          ceiling: config.SWEEP_MAX_ROWS_PER_SECOND ?? MAX_RATE,
        })
      : null;

  const repeats = new RepeatedErrors(logger);
  // Jobs in hand, for the heartbeat (the fleet view shows them).
  const inHand = new Map<string, string>();
  const startWorker = (queueName: string, state: FetchState) => {
    const processors = PROCESSORS[queueName] ?? {};
    const worker = new TolerantWorker(
      queueName,
      async (job: Job) => {
        // Every job's name and data are checked here, before any processor sees them.
        job.data = await checkJobEntry(job, queueName);
        const process = processors[job.name as JobName] as Processor;
        state.active += 1;
        state.lastStart = Date.now();
        const key = `${queueName}/${job.id}`;
        inHand.set(key, job.name);
        try {
          return await process(job, ctx);
        } finally {
          state.active -= 1;
          inHand.delete(key);
        }
      },
      {
        connection: redis,
        prefix: sq.prefix,
        concurrency: config.SWEEP_CONCURRENCY,
        // The BullMQ worker name (queue.getWorkers(), a job's processedBy) is the fleet id.
        name: me.id,
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
        // For jobs that do not say (added by hand, or by anything but the product): finished
        // jobs are not kept forever. trimFinishedJobs bounds those that ask to be kept.
        removeOnComplete: KEEP_COMPLETED,
        removeOnFail: KEEP_FAILED,
        // BullMQ's own per-minute counts of completed and failed jobs, which Bull Board charts:
        // two weeks of minutes, about 20k data points (a few hundred KB) per queue and state.
        metrics: { maxDataPoints: MetricsTime.ONE_WEEK * 2 },
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
    // A worker's errors are Redis errors (a job's own go to 'failed'): logged with the
    // connection's, once per change of state, not once per bounced command during a failover.
    worker.on('error', (err) => redisTrouble(redis, err));
    return worker;
  };
  const slots = [sq.queue, sq.partitions].map((queue) => {
    const state: FetchState = { active: 0, lastStart: Date.now() };
    const slot = { queue, state, worker: startWorker(queue.name, state), stopWatching: () => {} };
    slot.stopWatching = watchFetching({
      queue,
      state: () => slot.state,
      replace: () => {
        const stuck = slot.worker;
        slot.state = { active: 0, lastStart: Date.now() };
        slot.worker = startWorker(queue.name, slot.state);
        // It runs nothing; do not wait for its parked fetch loop.
        stuck.close(true).catch(() => {});
      },
      stuckAfterMs: FETCH_STUCK_AFTER_MS,
      logger,
    });
    return slot;
  });
  const workers = () => slots.map((s) => s.worker);

  const ensureSchedulers = () =>
    Promise.all([
      upsertSchedulers(sq, config).catch((err) =>
        logger.warn({ err }, 'could not upsert the job schedulers; will retry'),
      ),
      trimFinishedJobs(sq).catch((err) =>
        logger.warn({ err }, 'could not trim finished jobs; will retry'),
      ),
      applyStreamCap(sq.partitions, config.SWEEP_MAX_STREAMS).catch((err) =>
        logger.warn({ err }, 'could not set SWEEP_MAX_STREAMS on the partition queue; will retry'),
      ),
    ]);
  // Again on every reconnect (Redis may have restarted empty) and now and then in case a
  // scheduler was removed by hand.
  redis.on('ready', ensureSchedulers);
  const resync = setInterval(ensureSchedulers, Math.max(config.SWEEP_EVERY, 30_000));
  // SWEEP_MAX_STREAMS comes back this soon after a Redis that lost it (failover, flush).
  const capResync = setInterval(
    () => applyStreamCap(sq.partitions, config.SWEEP_MAX_STREAMS).catch(() => {}),
    STREAM_CAP_RESYNC_MS,
  );
  let started = false;
  let heartbeat: Heartbeat | undefined;
  const ready = (async () => {
    // A REDIS_URL of the wrong scheme (a cluster node, a replica, an unknown master) rejects
    // `ready` with a RedisSetupError: one clear line instead of MOVED or READONLY errors.
    await checkRedisForWorker(config, logger, shutdown.signal);
    await Promise.all(workers().map((w) => w.waitUntilReady()));
    await ensureSchedulers();
    heartbeat = startHeartbeat(
      sq,
      redis,
      {
        ...me,
        concurrency: config.SWEEP_CONCURRENCY,
        settings: fleetSettings,
        startedAt: new Date().toISOString(),
      },
      () => [...inHand].map(([id, name]) => ({ id, name })),
      (err) => logger.warn({ err }, 'could not write the heartbeat; will retry'),
    );
    await heartbeat.beat();
    started = true;
    logger.info(
      {
        workerId: me.id,
        partitions: config.SWEEP_PARTITIONS,
        every: config.SWEEP_EVERY,
        staleAfter: config.STALE_AFTER,
      },
      'sweep worker started',
    );
  })();
  // A close before Redis ever answered ends the wait; the caller sees it through `ready`.
  ready.catch(() => {});

  return {
    metrics,
    readinessPool,
    redis,
    ready,
    close: async () => {
      clearInterval(resync);
      clearInterval(capResync);
      sampler?.stop();
      redis.off('ready', ensureSchedulers);
      shutdown.abort();
      for (const s of slots) s.stopWatching();
      // Never connected: there is no job to wait for, and closing BullMQ's side would wait for
      // a Redis that does not answer. Cut the connection first.
      if (!started) redis.disconnect();
      // Waits for the chunk under way; the command's runUntilSignal bounds the whole shutdown.
      await Promise.all(workers().map((w) => w.close(!started)));
      // Leaves the fleet at once (a killed process drops off when its heartbeat expires).
      await heartbeat?.stop().catch(() => {});
      await closeSweepQueue(sq);
      await pool.end();
      await probePool?.end();
      if (gaugePool !== pool) await gaugePool.end();
      await readinessPool.end();
      redis.disconnect();
    },
  };
}
