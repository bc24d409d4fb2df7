import type { Queue } from 'bullmq';

/**
 * The fleet-wide cap on partition sweeps running at once (SWEEP_MAX_STREAMS): BullMQ's global
 * concurrency on the partition queue, a field in the queue's meta hash that every worker's
 * fetch script checks against the queue's active list. It lives in Redis, so every worker
 * writes it again at start, on every reconnect and now and then: a Redis that failed over to a
 * replica without it, or restarted empty, has it back within one resync. A SIGKILLed worker's
 * job stays in the active list until its job lock expires and the stalled check moves it back
 * to wait: its slot comes back then.
 */
export async function applyStreamCap(queue: Queue, cap: number | null): Promise<void> {
  if (cap === null) await queue.removeGlobalConcurrency();
  else await queue.setGlobalConcurrency(cap);
}

export type Streams = {
  /** Partition sweeps running now (jobs in the partition queue's active list). */
  inUse: number;
  /** The cap as Redis holds it (null: none). */
  cap: number | null;
};

export async function readStreams(queue: Queue): Promise<Streams> {
  const [inUse, cap] = await Promise.all([queue.getActiveCount(), queue.getGlobalConcurrency()]);
  return { inUse, cap };
}
