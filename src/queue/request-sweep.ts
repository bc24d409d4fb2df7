import { QueueEvents } from 'bullmq';
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

/** Waits until the tick has started (or joined) a run and that run has finished; its totals. */
export async function waitForSweep(
  sq: SweepQueue,
  tickJobId: string,
  options: { redisUrl: string; timeoutMs: number; logger: Logger },
): Promise<RunSummary> {
  const timeoutMs = options.timeoutMs;
  // QueueEvents blocks on Redis, so it needs a connection of the worker kind.
  const connection = createRedis(
    { REDIS_URL: options.redisUrl, QUEUE_PREFIX: sq.prefix },
    'worker',
    options.logger,
  );
  const events = new QueueEvents(SWEEP_QUEUE, { connection, prefix: sq.prefix });
  events.on('error', (err) => redisTrouble(connection, err));
  try {
    await events.waitUntilReady();
    const tick = await sq.queue.getJob(tickJobId);
    if (!tick) throw new Error(`sweep request ${tickJobId} is gone from the queue`);
    const { runId } = (await tick.waitUntilFinished(events, timeoutMs)) as TickResult;
    const run = await sq.queue.getJob(runJobId(runId));
    if (!run) throw new Error(`run ${runId} is gone from the queue`);
    return (await run.waitUntilFinished(events, timeoutMs)) as RunSummary;
  } finally {
    await events.close();
    connection.disconnect();
  }
}
