import type { Pool } from '../db/pool.ts';
import { errorMessage } from '../errors.ts';
import { type Logger, silentLogger } from '../log.ts';
import { deleteExpiredChunk, type RowRetentionTable } from '../sql/retention.ts';
import { auditLogLayout, timePartitions } from '../sql/time-partitions.ts';
import { dropExpiredPartitions } from '../time-partitions/retire.ts';
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
  logger?: Logger;
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
  const status: RetentionStatus = {
    deleted: 0,
    chunks: 0,
    retentionMs: o.retentionMs,
    durationMs: 0,
  };
  try {
    let table = await rowRetentionTable(pool);
    if (table !== 'audit_log') {
      const retired = await dropExpiredPartitions(pool, o.logger ?? silentLogger, o);
      status.droppedPartitions = retired.dropped;
      status.heldBackPartitions = retired.heldBack;
      if (retired.dropped.includes('audit_log_legacy')) table = null;
    }
    if (table !== null) await deleteInChunks(pool, o, table, status, started);
  } catch (err) {
    status.error = errorMessage(err);
  }
  status.durationMs = Math.round(performance.now() - started);
  return status;
}

/**
 * The table whose rows are deleted one by one: the plain log, or on the partitioned layout its
 * legacy partition while it exists (null when it does not: every partition is dropped whole).
 */
async function rowRetentionTable(pool: Pool): Promise<RowRetentionTable | null> {
  if ((await auditLogLayout(pool)) !== 'partitioned') return 'audit_log';
  const legacy = (await timePartitions(pool)).some((p) => p.name === 'audit_log_legacy');
  return legacy ? 'audit_log_legacy' : null;
}

async function deleteInChunks(
  pool: Pool,
  o: RetentionOptions,
  table: RowRetentionTable,
  status: RetentionStatus,
  started: number,
): Promise<void> {
  const chunkSize = o.chunkSize ?? 10_000;
  while (!o.signal?.aborted) {
    if (status.chunks > 0 && (await o.stopBefore?.())) break;
    const limit = o.beforeChunk ? await o.beforeChunk(chunkSize) : chunkSize;
    if (limit === null) break;
    const deleted = await deleteExpiredChunk(pool, { retentionMs: o.retentionMs, limit, table });
    status.chunks += 1;
    status.deleted += deleted;
    await o.afterChunk?.(limit, deleted);
    if (deleted < limit || performance.now() - started >= o.timeBudgetMs) break;
  }
}
