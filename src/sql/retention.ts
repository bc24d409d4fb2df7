import { msAgo, type Queryable } from './fragments.ts';

/**
 * Where retention deletes row by row: the plain table, or, on the time-partitioned layout, the
 * plain table converted into its first partition (the range partitions are dropped whole).
 */
export type RowRetentionTable = 'audit_log' | 'audit_log_legacy';

/**
 * Deletes up to `limit` completed rows older than `retentionMs`, oldest first by
 * (time_completed, id), and returns how many. An incomplete row is never deleted: the sweeper
 * must finalize it first.
 */
export async function deleteExpiredChunk(
  db: Queryable,
  p: { retentionMs: number; limit: number; table?: RowRetentionTable },
): Promise<number> {
  const table = p.table ?? 'audit_log';
  const { rows } = await db.query<{ deleted: number }>(
    `WITH expired AS (
       SELECT id FROM ${table}
        WHERE time_completed IS NOT NULL
          AND time_completed < ${msAgo('$1')}
        ORDER BY time_completed, id
        LIMIT $2
     ), deleted AS (
       DELETE FROM ${table} AS a USING expired WHERE a.id = expired.id RETURNING a.id
     )
     SELECT count(*)::int AS deleted FROM deleted`,
    [p.retentionMs, p.limit],
  );
  return rows[0]?.deleted ?? 0;
}
