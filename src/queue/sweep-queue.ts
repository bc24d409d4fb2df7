import { FlowProducer, type JobsOptions, Queue } from 'bullmq';
import { type RedisClient, redisTrouble } from '../redis-client.ts';
import { PARTITION_QUEUE, SWEEP_QUEUE } from './jobs.ts';

/** How long finished jobs stay visible in Bull Board; Redis keeps them forever otherwise. */
export const KEEP_COMPLETED = { age: 7 * 86_400, count: 2_000 };
export const KEEP_FAILED = { age: 30 * 86_400, count: 5_000 };

/**
 * The two queues (ticks, runs and retention in `queue`; partition jobs in `partitions`) and the
 * flow producer that adds whole runs across them, on one connection and prefix.
 */
export type SweepQueue = { queue: Queue; partitions: Queue; flows: FlowProducer; prefix: string };

export function createSweepQueue(connection: RedisClient, prefix: string): SweepQueue {
  const queue = new Queue(SWEEP_QUEUE, { connection, prefix });
  const partitions = new Queue(PARTITION_QUEUE, { connection, prefix });
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

export async function closeSweepQueue(q: SweepQueue): Promise<void> {
  await Promise.allSettled([q.queue.close(), q.partitions.close(), q.flows.close()]);
}
