import type { Queryable } from './fragments.ts';

/** What the primary knows of its streaming replicas, for the replica-lag throttle. */
export type ReplicationRow = {
  /** The primary's WAL position now, as a byte count from 0/0 (text: it outgrows a double). */
  currentLsn: string;
  /** The replica's name (its application_name), for the log and `status`. */
  name: string;
  /** Bytes of WAL sent but not yet replayed; null when this user may not see positions. */
  replayBytes: string | null;
  /** Replayed up to here (bytes from 0/0); null when hidden from this user. */
  replayLsn: string | null;
  /** PostgreSQL's own measure (null when caught up, idle, or hidden). */
  replayLagMs: number | null;
};

/**
 * One row per streaming replica (none: no replica, or none visible). A user without
 * pg_read_all_stats (pg_monitor) sees the rows with their positions NULL; a user refused the
 * view altogether gets an error (42501).
 */
export async function readReplication(db: Queryable): Promise<ReplicationRow[]> {
  const { rows } = await db.query<ReplicationRow>(
    `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS "currentLsn",
            COALESCE(r.application_name, '') AS name,
            pg_wal_lsn_diff(r.sent_lsn, r.replay_lsn)::text AS "replayBytes",
            pg_wal_lsn_diff(r.replay_lsn, '0/0')::text AS "replayLsn",
            (extract(epoch FROM r.replay_lag) * 1000)::float8 AS "replayLagMs"
       FROM pg_stat_replication AS r`,
  );
  return rows;
}

/** A lone read of the primary's WAL position (when no replica row carries it). */
export async function currentWalLsn(db: Queryable): Promise<string> {
  const { rows } = await db.query<{ lsn: string }>(
    `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS lsn`,
  );
  return (rows[0] as { lsn: string }).lsn;
}

export type ActiveBackends = { active: number; hidden: number };

/**
 * The load measure: client backends running a statement right now on the whole server, other
 * than the sweeper's own (every audit-sweeper process names itself `audit-sweeper ...`) and
 * this query. It is PostgreSQL's counterpart of MySQL's Threads_running, which gh-ost and
 * pt-archiver throttle on: a queue of runnable statements longer than the cores means writers
 * wait. `hidden` counts sessions whose state this user may not see (no pg_read_all_stats).
 */
export async function activeBackends(db: Queryable): Promise<ActiveBackends> {
  const { rows } = await db.query<ActiveBackends>(
    `SELECT count(*) FILTER (WHERE state = 'active')::int AS active,
            count(*) FILTER (WHERE state IS NULL)::int AS hidden
       FROM pg_stat_activity
      WHERE backend_type = 'client backend'
        AND pid <> pg_backend_pid()
        AND application_name NOT LIKE 'audit-sweeper%'`,
  );
  return rows[0] as ActiveBackends;
}
