import { escapeLiteral, type QueryResult } from 'pg';
import { msAgo, type Queryable, rfc3339 } from './fragments.ts';
import type { AuditLogLayout } from './time-partitions.ts';

/** The cutoff for one partition sweep, from the database clock: rows started before it are stale. */
export async function staleCutoff(db: Queryable, p: { staleAfterMs: number }): Promise<string> {
  const { rows } = await db.query<{ cutoff: string }>(`SELECT ${rfc3339(msAgo('$1'))} AS cutoff`, [
    p.staleAfterMs,
  ]);
  return (rows[0] as { cutoff: string }).cutoff;
}

/**
 * The start of the oldest incomplete row, or null: a lower bound of time_started for every row a
 * sweep activation can find stale (rows are started at now() and never become incomplete again).
 */
export async function oldestIncompleteStart(db: Queryable): Promise<string | null> {
  // A named statement without parameters: each connection plans it once (over every time
  // partition, 20-30 ms at 40 of them) and runs that plan each time (one index descent per
  // partition), instead of planning it at every activation.
  const { rows } = await db.query<{ oldest: string | null }>({
    name: 'audit_log_oldest_incomplete',
    text: `SELECT ${rfc3339('min(time_started)')} AS oldest FROM audit_log WHERE time_completed IS NULL`,
  });
  return rows[0]?.oldest ?? null;
}

/**
 * One chunk: times out up to `limit` stale rows whose id lies in [low, high], in one short
 * transaction, and returns how many. SKIP LOCKED lets the chunk pass over rows a writer is
 * completing right now (they will not need us); the UPDATE repeats `time_completed IS NULL`, so
 * a row completed between the pick and the write is left alone whatever any lock said.
 *
 * The pick must walk the partial index (id, time_started) of incomplete rows in id order and
 * stop at `limit`, never touching another partition's entries. After an ANALYZE that saw no
 * incomplete row (a healthy table, the usual state when an outage leaves a backlog, and a big
 * table's autovacuum may not look again for millions of changes), the planner thinks the
 * partial indexes empty: it read every stale row of the range through the (time_started, id)
 * index and sorted them, each chunk (0.4-0.8 s a chunk at a 500k backlog, against 9 ms), and,
 * joining back by id, scanned every incomplete row once per picked row. So the transaction
 * forbids sorts (set_config local to it, sent in the same message, before the statement is
 * planned: one round trip), which leaves the id index as the only ordered way; and the UPDATE
 * finds the picked rows by ctid, one page read whatever the statistics say, valid because the
 * row is locked FOR UPDATE. One message of two statements is one implicit transaction, and a
 * message of several statements cannot carry parameters: the values are inlined, each one a
 * checked number or an escaped literal.
 *
 * The chunk commits without waiting for its WAL flush (synchronous_commit off, for this
 * transaction only). If the database crashes before the flush, the rows are simply still
 * incomplete and the next run finalizes them; the same holds for a synchronous standby, which
 * these commits do not wait for either. The flush comes within 3 x wal_writer_delay, and the API
 * stays LIST_SAFETY_MARGIN (at least 2 s) behind now, so it never lists a finalization a crash
 * could still undo.
 *
 * On the time-partitioned layout a ctid names a row only within its partition, and a join on
 * (tableoid, ctid) is planned as a TID scan of every partition per row. So the pick carries the
 * key (id, time_started) instead, and the transaction also forbids hash and merge joins (which
 * would read every incomplete row of every partition to join 1000): what is left is a nested
 * loop whose inner Append prunes, at run time, to the one partition holding each picked row,
 * found by its primary key. Both forms also check `tableoid`, so a plain-layout statement that
 * meets a table converted meanwhile can never finalize a row of another partition.
 * Both bounds of time_started are literals, so the planner leaves out, before planning them,
 * the partitions after the cutoff and those before the oldest incomplete row: a chunk is
 * planned over the few partitions that can hold stale rows, not over the whole month.
 */
export async function finalizeStaleChunk(
  db: Queryable,
  p: {
    cutoff: string;
    low: string;
    high: string;
    limit: number;
    layout?: AuditLogLayout;
    /** A lower bound of time_started (oldestIncompleteStart), inlined: see below. */
    from?: string | null;
  },
): Promise<number> {
  if (!Number.isSafeInteger(p.limit) || p.limit < 0) throw new RangeError(`bad limit ${p.limit}`);
  const partitioned = p.layout === 'partitioned';
  const key = partitioned ? 'id, time_started, tableoid' : 'ctid, tableoid';
  // The picked rows lie within the bounds: repeated on the UPDATE, they prune its partitions too.
  const bounds = `a.time_started < ${escapeLiteral(p.cutoff)}::timestamptz${p.from ? ` AND a.time_started >= ${escapeLiteral(p.from)}::timestamptz` : ''}`;
  const match = partitioned
    ? `a.id = picked.id AND a.time_started = picked.time_started AND ${bounds}`
    : 'a.ctid = picked.ctid';
  const joins = partitioned
    ? `, set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)`
    : '';
  const results = (await db.query(
    `SELECT set_config('enable_sort', 'off', true), set_config('synchronous_commit', 'off', true)${joins};
     WITH picked AS (
       SELECT ${key} FROM audit_log
        WHERE time_completed IS NULL
          AND id BETWEEN ${escapeLiteral(p.low)}::uuid AND ${escapeLiteral(p.high)}::uuid
          AND time_started < ${escapeLiteral(p.cutoff)}::timestamptz${
            p.from
              ? `
          AND time_started >= ${escapeLiteral(p.from)}::timestamptz`
              : ''
          }
        ORDER BY id
        LIMIT ${p.limit}
          FOR UPDATE SKIP LOCKED
     ), finalized AS (
       UPDATE audit_log AS a
          SET time_completed = greatest(now(), a.time_started), result_kind = 'timeout'
         FROM picked
        WHERE ${match} AND a.tableoid = picked.tableoid AND a.time_completed IS NULL
       RETURNING a.id
     )
     SELECT count(*)::int AS finalized FROM finalized`,
  )) as unknown as QueryResult<{ finalized: number }>[] | QueryResult<{ finalized: number }>;
  const last = Array.isArray(results) ? results.at(-1) : results;
  return last?.rows[0]?.finalized ?? 0;
}
