import { setTimeout as sleep } from 'node:timers/promises';
import { type Job, type Queue, QueueEvents } from 'bullmq';
import type { Logger } from '../log.ts';
import { redisTrouble } from '../redis-client.ts';
import { createRedis } from './connection.ts';
import { runJobId } from './job-ids.ts';
import { JobName, type RunSummary, SWEEP_QUEUE, type TickData, type TickResult } from './jobs.ts';
import type { SweepQueue } from './sweep-queue.ts';

/**
 * Asks for a sweep now (CLI `sweep`, the dashboard's "Sweep now"). The tick is deduplicated while
 * one is waiting; a worker then starts a run, or joins the one under way.
 * Returns the tick job's id.
 */
export async function requestSweep(sq: SweepQueue): Promise<string> {
  const job = await sq.queue.add(JobName.tick, { trigger: 'manual' } satisfies TickData, {
    deduplication: { id: 'manual-sweep' },
    removeOnComplete: { count: 1_000 },
    removeOnFail: { count: 1_000 },
    attempts: 3,
  });
  if (!job.id) throw new Error('the queue returned no job id');
  return job.id;
}

/** `waitForSweep` gave up: the run (or the tick, if no worker took it) was not done in time. */
export class SweepTimeoutError extends Error {
  override name = 'SweepTimeoutError';
}

/** States in which no worker has taken a job yet. */
const NOT_TAKEN = new Set(['waiting', 'prioritized', 'delayed', 'waiting-children', 'unknown']);

/**
 * Waits until the tick has started (or joined) a run and that run has finished; its totals.
 * Throws SweepTimeoutError after `timeoutMs` in all. `onNoWorker` is called once if no worker
 * has taken the tick after `noWorkerAfterMs` (a stopped fleet, a paused queue, a wrong prefix).
 */
export async function waitForSweep(
  sq: SweepQueue,
  tickJobId: string,
  options: {
    redisUrl: string;
    timeoutMs: number;
    logger: Logger;
    noWorkerAfterMs?: number;
    onNoWorker?: (queuePaused: boolean) => void;
  },
): Promise<RunSummary> {
  const deadline = Date.now() + options.timeoutMs;
  // QueueEvents blocks on Redis, so it needs a connection of the worker kind.
  const connection = createRedis(
    { REDIS_URL: options.redisUrl, QUEUE_PREFIX: sq.prefix },
    'worker',
    options.logger,
  );
  const events = new QueueEvents(SWEEP_QUEUE, { connection, prefix: sq.prefix });
  events.on('error', (err) => redisTrouble(connection, err));
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new SweepTimeoutError(`no result after ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
  });
  const { onNoWorker } = options;
  const noWorker = onNoWorker
    ? setTimeout(async () => {
        const state = await sq.queue.getJobState(tickJobId).catch(() => 'unknown');
        if (NOT_TAKEN.has(state)) onNoWorker(await sq.queue.isPaused().catch(() => false));
      }, options.noWorkerAfterMs ?? 5_000)
    : undefined;
  // Our own deadline decides, so BullMQ's fires just after it (its timer outlives close()).
  const remaining = () => Math.max(1, deadline - Date.now()) + 100;
  const stop = new AbortController();
  try {
    const wait = async () => {
      await events.waitUntilReady();
      const tick = await sq.queue.getJob(tickJobId);
      if (!tick) throw new Error(`sweep request ${tickJobId} is gone from the queue`);
      const result = (await finished(
        sq.queue,
        tick,
        events,
        remaining(),
        stop.signal,
      )) as TickResult;
      if (result.runId === null)
        throw new Error(
          `the sweeper is paused (by ${result.pausedBy}): no run started; audit-sweeper resume ends the pause`,
        );
      const { runId } = result;
      const run = await sq.queue.getJob(runJobId(runId));
      if (!run) throw new Error(`run ${runId} is gone from the queue`);
      return (await finished(sq.queue, run, events, remaining(), stop.signal)) as RunSummary;
    };
    return await Promise.race([wait(), timedOut]);
  } finally {
    stop.abort();
    clearTimeout(timer);
    clearTimeout(noWorker);
    await events.close();
    connection.disconnect();
  }
}

/** How often a wait looks at the job itself, besides listening for its events. */
const LOOK_EVERY_MS = 1_000;

/**
 * A job's return value once it has finished (its failure thrown). Listening to the queue's
 * events is not enough: the events reader starts at the stream's end ('$') a moment after it is
 * ready, so a job finishing in that moment sends an event nobody reads (seen in CI: a tick taken
 * at once, and `sweep --wait` waited out its whole timeout for a run long finished). So the job
 * is also read every second; whichever tells first wins.
 */
async function finished(
  queue: Queue,
  job: Job,
  events: QueueEvents,
  ttlMs: number,
  stop: AbortSignal,
): Promise<unknown> {
  const looked = (async () => {
    while (!stop.aborted) {
      await sleep(LOOK_EVERY_MS, undefined, { signal: stop }).catch(() => undefined);
      if (stop.aborted) break;
      const state = await job.getState().catch(() => undefined);
      if (state === 'completed' || state === 'failed') {
        const now = await queue.getJob(job.id as string);
        if (!now) throw new Error(`job ${job.id} is gone from the queue`);
        if (state === 'failed') throw new Error(now.failedReason);
        return now.returnvalue;
      }
    }
    return new Promise<never>(() => {});
  })();
  return Promise.race([job.waitUntilFinished(events, ttlMs), looked]);
}
