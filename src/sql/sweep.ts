import { msAgo, type Queryable, rfc3339 } from './fragments.ts';

/** The cutoff for one partition sweep, from the database clock: rows started before it are stale. */
export async function staleCutoff(db: Queryable, p: { staleAfterMs: number }): Promise<string> {
  const { rows } = await db.query<{ cutoff: string }>(`SELECT ${rfc3339(msAgo('$1'))} AS cutoff`, [
    p.staleAfterMs,
  ]);
  return (rows[0] as { cutoff: string }).cutoff;
}

/**
 * One chunk: times out up to `limit` stale rows whose id lies in [low, high], in one short
 * transaction, and returns how many. SKIP LOCKED lets the chunk pass over rows a writer is
 * completing right now (they will not need us); the UPDATE repeats `time_completed IS NULL`, so
 * a row completed between the pick and the write is left alone whatever any lock said.
 * Ordering by id inside the range walks the partial index (id, time_started) of incomplete rows
 * and never touches another partition's entries.
 * The UPDATE finds the picked rows by ctid, not by id: after an ANALYZE that saw no incomplete
 * row (a healthy table), the planner thinks the partial indexes empty and, joining by id, scanned
 * every incomplete row once per picked row, minutes per chunk on a fresh backlog. A ctid is one
 * page read whatever the statistics say, and stays valid: the row is locked FOR UPDATE.
 *
 * The chunk commits without waiting for its WAL flush (synchronous_commit off, for this
 * transaction only: set_config's third argument; the statement is its own transaction, so this
 * stays one round trip). If the database crashes before the flush, the rows are simply still
 * incomplete and the next run finalizes them; the same holds for a synchronous standby, which
 * these commits do not wait for either. The flush comes within 3 x wal_writer_delay, and the API
 * stays LIST_SAFETY_MARGIN (at least 2 s) behind now, so it never lists a finalization a crash
 * could still undo.
 */
export async function finalizeStaleChunk(
  db: Queryable,
  p: { cutoff: string; low: string; high: string; limit: number },
): Promise<number> {
  const { rows } = await db.query<{ finalized: number }>(
    `WITH picked AS (
       SELECT ctid FROM audit_log
        WHERE time_completed IS NULL
          AND id BETWEEN $2::uuid AND $3::uuid
          AND time_started < $1::timestamptz
        ORDER BY id
        LIMIT $4
          FOR UPDATE SKIP LOCKED
     ), finalized AS (
       UPDATE audit_log AS a
          SET time_completed = now(), result_kind = 'timeout'
         FROM picked
        WHERE a.ctid = picked.ctid AND a.time_completed IS NULL
       RETURNING a.id
     )
     SELECT (SELECT count(*) FROM finalized)::int AS finalized,
            set_config('synchronous_commit', 'off', true) AS synchronous_commit`,
    [p.cutoff, p.low, p.high, p.limit],
  );
  return rows[0]?.finalized ?? 0;
}
