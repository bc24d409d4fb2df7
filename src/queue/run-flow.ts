import type { Job } from 'bullmq';
import { partitionJobId, runJobId } from './job-ids.ts';
import {
  JobName,
  PARTITION_QUEUE,
  type PartitionData,
  type RunData,
  SWEEP_QUEUE,
  type Trigger,
} from './jobs.ts';
import {
  KEEP_COMPLETED,
  KEEP_FAILED,
  partitionJobOptions,
  type SweepQueue,
} from './sweep-queue.ts';

/**
 * A run is one sweep of every partition: a `run` parent job (in SWEEP_QUEUE) whose children are
 * the partition jobs (in PARTITION_QUEUE), added atomically as a BullMQ flow. The parent is processed once every child has
 * completed or failed for good, and returns the totals.
 */
export async function addRunFlow(
  sq: SweepQueue,
  run: { runId: string; trigger: Trigger; partitions: number; only?: number[] },
  settings: { SWEEP_ATTEMPTS: number },
  /**
   * Partitions that failed in their last run: they get one attempt, no retries, so a partition
   * that keeps failing cannot hold the run (and every other partition's next run) for the whole
   * backoff. Their first failure is retried as usual.
   */
  failing: ReadonlySet<number> = new Set(),
): Promise<void> {
  const { runId, partitions } = run;
  const data: RunData = { ...run, startedAt: new Date().toISOString() };
  const swept = run.only ?? Array.from({ length: partitions }, (_, partition) => partition);
  await sq.flows.add({
    name: JobName.run,
    queueName: SWEEP_QUEUE,
    data,
    opts: { jobId: runJobId(runId), removeOnComplete: KEEP_COMPLETED, removeOnFail: KEEP_FAILED },
    children: swept.map((partition) => ({
      name: JobName.partition,
      queueName: PARTITION_QUEUE,
      data: { runId, partition, partitions, continuation: 0 } satisfies PartitionData,
      opts: {
        ...partitionJobOptions(settings),
        ...(failing.has(partition) ? { attempts: 1 } : {}),
        jobId: partitionJobId(runId, partition, 0),
      },
    })),
  });
}

/**
 * Adds a partition's next job to the same run, when its time budget ran out before it drained,
 * or it stopped for a shutdown or a pause. A parked job (paused) starts after `delayMs`, or when
 * `resume` promotes it.
 */
export async function continuePartition(
  sq: SweepQueue,
  job: Job<PartitionData>,
  settings: { SWEEP_ATTEMPTS: number },
  park?: { delayMs: number; parkedAt: number },
): Promise<void> {
  const { runId, partition, partitions, continuation } = job.data;
  const next: PartitionData = { runId, partition, partitions, continuation: continuation + 1 };
  if (park) next.parkedAt = job.data.parkedAt ?? park.parkedAt;
  // A copy of this job (Bull Board's "duplicate", a retried completed job) may have taken the
  // next id already; adding it again would be silently ignored and stop the drain until the next
  // tick. Take the next free number instead: an extra chain is harmless, the lock keeps it apart.
  while (await sq.partitions.getJob(partitionJobId(runId, partition, next.continuation)))
    next.continuation += 1;
  await sq.partitions.add(JobName.partition, next, {
    ...partitionJobOptions(settings),
    jobId: partitionJobId(next.runId, next.partition, next.continuation),
    ...(park ? { delay: park.delayMs } : {}),
    ...(job.parent?.id ? { parent: { id: job.parent.id, queue: job.parent.queueKey } } : {}),
  });
}
