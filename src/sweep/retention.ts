import type { Pool } from '../db/pool.ts';
import * as sql from '../db/sql.ts';
import type { RetentionStatus } from '../queue/names.ts';

export type RetentionOptions = {
  retentionMs: number;
  /** Rows deleted per transaction; the reference deletes at most 10,000 per run. */
  chunkSize?: number;
  timeBudgetMs: number;
  signal?: AbortSignal;
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
      const { rows } = await pool.query(sql.deleteExpiredChunk, [o.retentionMs, chunkSize]);
      status.chunks += 1;
      status.deleted += rows[0].deleted as number;
      if (rows[0].deleted < chunkSize || performance.now() - started >= o.timeBudgetMs) break;
    }
  } catch (err) {
    status.error = err instanceof Error ? err.message : String(err);
  }
  status.durationMs = Math.round(performance.now() - started);
  return status;
}
