import { FlowProducer, type JobsOptions } from 'bullmq';
import { type RedisClient, redisTrouble } from '../redis-client.ts';
import { PARTITION_QUEUE, SWEEP_QUEUE } from './jobs.ts';
import { TolerantQueue } from './tolerant-job.ts';

/** How long finished jobs stay visible in Bull Board; Redis keeps them forever otherwise. */
export const KEEP_COMPLETED = { age: 7 * 86_400, count: 2_000 };
export const KEEP_FAILED = { age: 30 * 86_400, count: 5_000 };

/**
 * The two queues (ticks, runs and retention in `queue`; partition jobs in `partitions`) and the
 * flow producer that adds whole runs across them, on one connection and prefix. Both read jobs
 * whose stored JSON is corrupt instead of throwing (TolerantQueue), so Bull Board lists them.
 */
export type SweepQueue = {
  queue: TolerantQueue;
  partitions: TolerantQueue;
  flows: FlowProducer;
  prefix: string;
};

export function createSweepQueue(connection: RedisClient, prefix: string): SweepQueue {
  const queue = new TolerantQueue(SWEEP_QUEUE, { connection, prefix });
  const partitions = new TolerantQueue(PARTITION_QUEUE, { connection, prefix });
  const flows = new FlowProducer({ connection, prefix });
  // Their errors are the shared connection's: logged with its own, once per change of state.
  // With no listener BullMQ prints each one to stderr, outside the JSON log.
  const trouble = (err: Error) => redisTrouble(connection, err);
  queue.on('error', trouble);
  partitions.on('error', trouble);
  flows.on('error', trouble);
  return { queue, partitions, flows, prefix };
}

/**
 * A key of the product's own beside the queue's (`<prefix>:audit-sweep:<name>`): same prefix,
 * so the same Redis Cluster hash slot as BullMQ's keys.
 */
export const productKey = (sq: Pick<SweepQueue, 'prefix'>, name: string) =>
  `${sq.prefix}:${SWEEP_QUEUE}:${name}`;

/** Options of every partition job: retried with backoff and jitter, then failed visibly. */
export function partitionJobOptions(settings: { SWEEP_ATTEMPTS: number }): JobsOptions {
  return {
    attempts: settings.SWEEP_ATTEMPTS,
    backoff: { type: 'exponential', delay: 1_000, jitter: 0.5 },
    removeOnComplete: KEEP_COMPLETED,
    removeOnFail: KEEP_FAILED,
    // A partition that fails for good must not hold up its run's totals.
    ignoreDependencyOnFailure: true,
  };
}

/**
 * Bounds what is kept of finished jobs whoever added them: a job may ask to be kept forever
 * (removeOnFail: false), or come from a producer that set nothing. Beyond KEEP_* age or count,
 * the oldest go. Safe from every worker at once.
 */
export async function trimFinishedJobs(
  sq: SweepQueue,
  bounds = { failed: KEEP_FAILED, completed: KEEP_COMPLETED },
): Promise<void> {
  for (const queue of [sq.queue, sq.partitions]) {
    for (const state of ['failed', 'completed'] as const) {
      const keep = bounds[state];
      await queue.clean(keep.age * 1000, 1000, state);
      const extra = (await queue.getJobCountByTypes(state)) - keep.count;
      if (extra > 0) await queue.clean(0, extra, state);
    }
  }
}

export async function closeSweepQueue(q: SweepQueue): Promise<void> {
  await Promise.allSettled([q.queue.close(), q.partitions.close(), q.flows.close()]);
}
