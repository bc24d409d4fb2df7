import { isCancelledStatement, isLockTimeout, type Pool } from '../db/pool.ts';
import { errorMessage } from '../errors.ts';
import { finalizeStaleChunk, oldestIncompleteStart, staleCutoff } from '../sql/sweep.ts';
import { auditLogLayout } from '../sql/time-partitions.ts';
import { partitionRange } from './partitions.ts';
import type { SweepStatus } from './status.ts';

export type SweepPartitionOptions = {
  partition: number;
  partitions: number;
  staleAfterMs: number;
  chunkSize: number;
  /** Stop after the chunk that passes this much time; the caller continues in a new job. */
  timeBudgetMs: number;
  /** At most this many chunks (the reference's one-statement-per-run behaviour is maxChunks 1). */
  maxChunks?: number;
  /** Aborting stops the sweep before its next chunk; the chunk under way commits. */
  signal?: AbortSignal;
  /**
   * Runs before every chunk and may wait there (pause, throttles, pacing); it may also cap the
   * next chunk's rows by returning a number. Throwing stops the sweep (the lock holder checks
   * its lock here); so does an abort of `signal` while it waits.
   */
  beforeChunk?: () => Promise<number | undefined>;
  onChunk?: (progress: {
    chunks: number;
    finalized: number;
    lastChunk: number;
    /** The row limit the chunk ran with. */
    limit: number;
  }) => void | Promise<void>;
};

/**
 * One activation of the sweeper for one partition: times out the partition's stale rows in
 * chunks, each one short transaction, until none is left or the time budget is spent. The cutoff
 * comes from the database clock once per activation. Never throws: a failure is reported in
 * the status's `error`, with what was done before it.
 */
export async function sweepPartition(pool: Pool, o: SweepPartitionOptions): Promise<SweepStatus> {
  const started = performance.now();
  const { low, high } = partitionRange(o.partition, o.partitions);
  const status: SweepStatus = {
    partition: o.partition,
    partitions: o.partitions,
    finalized: 0,
    chunks: 0,
    cutoff: null,
    durationMs: 0,
    drained: false,
  };
  try {
    // The layout is read per activation: a `migrate` may convert the table under running workers.
    const [cutoff, layout] = await Promise.all([
      staleCutoff(pool, { staleAfterMs: o.staleAfterMs }),
      auditLogLayout(pool),
    ]);
    // Time partitions older than every incomplete row are left out of each chunk's plan.
    const from = layout === 'partitioned' ? await oldestIncompleteStart(pool) : null;
    status.cutoff = cutoff;
    while (!o.signal?.aborted && status.chunks < (o.maxChunks ?? Number.POSITIVE_INFINITY)) {
      const limit = Math.min(o.chunkSize, (await o.beforeChunk?.()) ?? o.chunkSize);
      if (o.signal?.aborted) break;
      const finalized = await finalizeStaleChunk(pool, { cutoff, low, high, limit, layout, from });
      status.chunks += 1;
      status.finalized += finalized;
      await o.onChunk?.({
        chunks: status.chunks,
        finalized: status.finalized,
        lastChunk: finalized,
        limit,
      });
      // A short chunk means nothing stale was left (rows locked by a writer were skipped: they
      // are being completed right now and need no timeout).
      if (finalized < limit) {
        status.drained = true;
        break;
      }
      if (performance.now() - started >= o.timeBudgetMs) break;
    }
  } catch (err) {
    status.error = describeSweepError(err);
  }
  status.durationMs = Math.round(performance.now() - started);
  return status;
}

/**
 * The worker's pool bounds every statement (SWEEP_LOCK_TIMEOUT, SWEEP_STATEMENT_TIMEOUT): a
 * chunk stuck behind DDL fails, lets its partition go and is retried. Its error says which
 * bound it hit and what usually causes it, not only PostgreSQL's words.
 */
function describeSweepError(err: unknown): string {
  const message = errorMessage(err);
  if (isLockTimeout(err))
    return `waited longer than SWEEP_LOCK_TIMEOUT for a lock on audit_log (DDL such as ALTER TABLE, or a LOCK TABLE, holds it); retried later: ${message}`;
  if (isCancelledStatement(err))
    return `a statement ran longer than SWEEP_STATEMENT_TIMEOUT (or an operator cancelled it); retried later: ${message}`;
  return message;
}
