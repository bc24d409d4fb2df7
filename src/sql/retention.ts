import { msAgo, type Queryable } from './fragments.ts';

/**
 * Deletes up to `limit` completed rows older than `retentionMs`, oldest first by
 * (time_completed, id), and returns how many. An incomplete row is never deleted: the sweeper
 * must finalize it first.
 */
export async function deleteExpiredChunk(
  db: Queryable,
  p: { retentionMs: number; limit: number },
): Promise<number> {
  const { rows } = await db.query<{ deleted: number }>(
    `WITH expired AS (
       SELECT id FROM audit_log
        WHERE time_completed IS NOT NULL
          AND time_completed < ${msAgo('$1')}
        ORDER BY time_completed, id
        LIMIT $2
     ), deleted AS (
       DELETE FROM audit_log AS a USING expired WHERE a.id = expired.id RETURNING a.id
     )
     SELECT count(*)::int AS deleted FROM deleted`,
    [p.retentionMs, p.limit],
  );
  return rows[0]?.deleted ?? 0;
}
