import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Pool } from '../db/pool.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { type PartitionData, SWEEP_QUEUE, type SweepStatus } from '../queue/names.ts';
import { PartitionLock } from '../queue/partition-lock.ts';
import type { SweepQueue } from '../queue/sweep-queue.ts';
import { continuePartition } from './run-jobs.ts';
import { sweepPartition } from './sweep-partition.ts';

export type PartitionJobDeps = {
  sq: SweepQueue;
  redis: Redis;
  pool: Pool;
  logger: Logger;
  metrics: Metrics;
  /** Aborted when the process is shutting down. */
  shutdown: AbortSignal;
};

class LockLostError extends Error {
  constructor() {
    super(
      'partition lock lost (this worker stalled past SWEEP_LOCK_TTL); another sweep owns it now',
    );
  }
}

/**
 * What a partition job does: take the partition's lock (or report that another sweep holds
 * it), sweep under it while renewing it, release it, and continue in a new job at once if the
 * time budget ran out first. A failed sweep throws, so BullMQ retries it with backoff.
 */
export async function processPartitionJob(
  job: Job<PartitionData>,
  deps: PartitionJobDeps,
): Promise<SweepStatus> {
  const { config } = deps.sq;
  const { partition, partitions } = job.data;
  const log = deps.logger.child({ job: job.id, runId: job.data.runId, partition });
  const lock = new PartitionLock(
    deps.redis,
    `${deps.sq.prefix}:${SWEEP_QUEUE}`,
    `${partition}-of-${partitions}`,
    config.SWEEP_LOCK_TTL,
  );

  if (!(await lock.acquire())) {
    deps.metrics.lockContention.inc();
    deps.metrics.partitionSweeps.inc({ outcome: 'skipped_locked' });
    log.info('another sweep of this partition is under way; nothing to do');
    await job.log('skipped: another sweep of this partition holds its lock');
    return {
      partition,
      partitions,
      finalized: 0,
      chunks: 0,
      cutoff: null,
      durationMs: 0,
      drained: false,
      skipped: 'locked',
    };
  }

  const lockLost = new AbortController();
  const renewal = setInterval(() => {
    lock.renew().then(
      (held) => held || lockLost.abort(),
      (err) => log.warn({ err }, 'partition lock renewal failed'),
    );
  }, config.SWEEP_LOCK_TTL / 3);
  let status: SweepStatus;
  try {
    status = await sweepPartition(deps.pool, {
      partition,
      partitions,
      staleAfterMs: config.STALE_AFTER,
      chunkSize: config.SWEEP_CHUNK_SIZE,
      timeBudgetMs: config.SWEEP_TIME_BUDGET,
      signal: AbortSignal.any([deps.shutdown, lockLost.signal]),
      beforeChunk: async () => {
        if (!(await lock.renew())) {
          lockLost.abort();
          throw new LockLostError();
        }
      },
      onChunk: async (p) => {
        await job.updateProgress(p);
        await job.log(
          `chunk ${p.chunks}: ${p.lastChunk} rows timed out (${p.finalized} in this job)`,
        );
      },
    });
  } finally {
    clearInterval(renewal);
    await lock
      .release()
      .catch((err) => log.warn({ err }, 'partition lock release failed; it expires by itself'));
  }

  deps.metrics.rowsFinalized.inc(status.finalized);
  deps.metrics.partitionSweepDuration.observe(status.durationMs / 1000);
  // Chunks committed by earlier attempts of this job that then failed.
  const earlier = job.data.finalizedByFailedAttempts ?? 0;
  if (status.error) {
    deps.metrics.partitionSweeps.inc({ outcome: 'failed' });
    log.error({ status }, 'partition sweep failed');
    if (status.finalized > 0)
      await job
        .updateData({ ...job.data, finalizedByFailedAttempts: earlier + status.finalized })
        .catch((err) => log.warn({ err }, 'could not record the rows this attempt timed out'));
    throw new Error(
      `${status.error} (after timing out ${status.finalized} rows in ${status.chunks} chunks)`,
    );
  }
  if (status.finalized > 0)
    log.warn({ status }, 'timed out audit log entries whose completion was lost');
  else log.debug({ status }, 'partition swept');
  deps.metrics.partitionSweeps.inc({ outcome: status.drained ? 'drained' : 'budget_spent' });
  // Out of time, or shutting down: the rest goes to a new job that any worker may take at once.
  // When the lock was lost, its new holder carries on instead.
  if (!status.drained && !lockLost.signal.aborted) await continuePartition(deps.sq, job);
  return earlier ? { ...status, finalized: earlier + status.finalized } : status;
}
