import { FlowProducer, type JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import { SWEEP_QUEUE } from './names.ts';

/** How long finished jobs stay visible in Bull Board; Redis keeps them forever otherwise. */
export const KEEP_COMPLETED = { age: 7 * 86_400, count: 2_000 };
export const KEEP_FAILED = { age: 30 * 86_400, count: 5_000 };

export type SweepQueue = { queue: Queue; flows: FlowProducer; prefix: string; config: Config };

export function createSweepQueue(config: Config, connection: Redis): SweepQueue {
  const prefix = config.QUEUE_PREFIX;
  return {
    queue: new Queue(SWEEP_QUEUE, { connection, prefix }),
    flows: new FlowProducer({ connection, prefix }),
    prefix,
    config,
  };
}

/** Options of every partition job: retried with backoff and jitter, then failed visibly. */
export function partitionJobOptions(config: Config): JobsOptions {
  return {
    attempts: config.SWEEP_ATTEMPTS,
    backoff: { type: 'exponential', delay: 1_000, jitter: 0.5 },
    removeOnComplete: KEEP_COMPLETED,
    removeOnFail: KEEP_FAILED,
    // A partition that fails for good must not hold up its run's totals.
    ignoreDependencyOnFailure: true,
  };
}

export async function closeSweepQueue(q: SweepQueue): Promise<void> {
  await Promise.allSettled([q.queue.close(), q.flows.close()]);
}
