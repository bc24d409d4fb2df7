import type { Pool } from '../db/pool.ts';
import { errorMessage } from '../errors.ts';
import { deleteExpiredChunk } from '../sql/retention.ts';
import type { RetentionStatus } from './status.ts';

export type RetentionOptions = {
  retentionMs: number;
  /** Rows deleted per transaction; the reference deletes at most 10,000 per run. */
  chunkSize?: number;
  timeBudgetMs: number;
  signal?: AbortSignal;
  /** Asked before every chunk after the first; true stops here (the sweeper was paused). */
  stopBefore?: () => Promise<boolean>;
  /**
   * The sweep's gate (pacing, the adaptive throttle, replica lag, load) before every chunk: the
   * most rows the chunk may delete, or null to stop (paused, shutting down).
   */
  beforeChunk?: (want: number) => Promise<number | null>;
  afterChunk?: (granted: number, deleted: number) => Promise<void>;
};

/**
 * One activation of the retention job: deletes completed rows older than the retention period,
 * oldest first, in chunks. Incomplete rows are never deleted. Never throws (see `error`).
 */
export async function deleteExpiredEntries(
  pool: Pool,
  o: RetentionOptions,
): Promise<RetentionStatus> {
  const started = performance.now();
  const chunkSize = o.chunkSize ?? 10_000;
  const status: RetentionStatus = {
    deleted: 0,
    chunks: 0,
    retentionMs: o.retentionMs,
    durationMs: 0,
  };
  try {
    while (!o.signal?.aborted) {
      if (status.chunks > 0 && (await o.stopBefore?.())) break;
      const limit = o.beforeChunk ? await o.beforeChunk(chunkSize) : chunkSize;
      if (limit === null) break;
      const deleted = await deleteExpiredChunk(pool, { retentionMs: o.retentionMs, limit });
      status.chunks += 1;
      status.deleted += deleted;
      await o.afterChunk?.(limit, deleted);
      if (deleted < limit || performance.now() - started >= o.timeBudgetMs) break;
    }
  } catch (err) {
    status.error = errorMessage(err);
  }
  status.durationMs = Math.round(performance.now() - started);
  return status;
}
