/**
 * Every SQL statement the product runs, by name. Orchestration code calls these and never writes
 * SQL of its own, so what the product does to the database reads in one file.
 *
 * Timestamps leave the database as RFC 3339 text with microseconds (a JS Date keeps only
 * milliseconds, and page cursors must be exact); the cutoff and every time_completed come from
 * the database clock, never from the caller's.
 */

const RFC3339 = `'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'`;
export const rfc3339 = (expression: string) =>
  `to_char((${expression}) AT TIME ZONE 'UTC', ${RFC3339})`;

// ---- migrations ----------------------------------------------------------------------------

/** Serializes `migrate` across pods; the number is arbitrary but fixed. */
export const MIGRATION_LOCK_KEY = 7_140_512_093;

export const lockMigrations = 'SELECT pg_advisory_lock($1)';
export const unlockMigrations = 'SELECT pg_advisory_unlock($1)';
export const createMigrationsTable = `
  CREATE TABLE IF NOT EXISTS audit_sweeper_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`;
export const appliedMigrations = 'SELECT version FROM audit_sweeper_migrations ORDER BY version';
export const recordMigration =
  'INSERT INTO audit_sweeper_migrations (version, name) VALUES ($1, $2)';
export const createDatabase = (name: string) => `CREATE DATABASE "${name.replaceAll('"', '""')}"`;

// ---- the store: init, complete, list --------------------------------------------------------

export const insertEntry = `
  INSERT INTO audit_log (id, time_started, request_id, request_uri, operation_id, source_ip,
    user_agent, actor_id, actor_silo_id, actor_kind, auth_method, credential_id)
  VALUES (gen_random_uuid(), now(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
  RETURNING id`;

/** Completion is conditional: a completed row is immutable. */
export const completeEntry = `
  UPDATE audit_log
     SET time_completed = now(), result_kind = $2, http_status_code = $3,
         error_code = $4, error_message = $5
   WHERE id = $1 AND time_completed IS NULL`;

export const entryResultKind = 'SELECT result_kind FROM audit_log WHERE id = $1';

export const pageTokenKey = `SELECT value FROM audit_sweeper_secret WHERE name = 'page_token_key'`;

const entryColumns = `id, ${rfc3339('time_started')} AS time_started,
  ${rfc3339('time_completed')} AS time_completed, request_id, request_uri, operation_id,
  host(source_ip) AS source_ip, user_agent, actor_id, actor_silo_id, actor_kind, auth_method,
  credential_id, http_status_code, error_code, error_message, result_kind`;

/**
 * Completed rows in [start, end) by (time_completed, id), after the cursor ($4, $5) when given.
 * $6 is the safety margin: rows completed in the last moments may still be joined by rows that
 * commit later with an older timestamp, so they are not shown yet.
 * Parameters: start, end|null, limit, cursorTime|null, cursorId|null, marginMs.
 */
const listCompleted = (direction: 'ASC' | 'DESC') => `
  SELECT ${entryColumns}
    FROM audit_log_complete
   WHERE time_completed >= $1::timestamptz
     AND time_completed < LEAST(COALESCE($2::timestamptz, 'infinity'),
                                now() - make_interval(secs => $6::float8 / 1000))
     AND ($4::timestamptz IS NULL OR (time_completed, id) ${direction === 'ASC' ? '>' : '<'} ($4::timestamptz, $5::uuid))
   ORDER BY time_completed ${direction}, id ${direction}
   LIMIT $3`;
export const listCompletedAscending = listCompleted('ASC');
export const listCompletedDescending = listCompleted('DESC');

// ---- the sweeper ----------------------------------------------------------------------------

/** The cutoff for one partition sweep, from the database clock. $1: STALE_AFTER in ms. */
export const staleCutoff = `
  SELECT ${rfc3339('now() - make_interval(secs => $1::float8 / 1000)')} AS cutoff`;

/**
 * One chunk: time out up to $4 stale rows whose id lies in [$2, $3], in one short transaction.
 * SKIP LOCKED lets the chunk pass over rows a writer is completing right now (they will not
 * need us); the UPDATE repeats `time_completed IS NULL`, so a row completed between the pick
 * and the write is left alone whatever any lock said.
 * Parameters: cutoff, lowId, highId, limit. Returns the number of rows finalized.
 */
export const finalizeStaleChunk = `
  WITH picked AS (
    SELECT id FROM audit_log
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
     WHERE a.id = picked.id AND a.time_completed IS NULL
    RETURNING a.id
  )
  SELECT count(*)::int AS finalized FROM finalized`;

/** Stale and in-flight rows per id range, for the overview and the backlog gauge. */
export const backlog = `
  SELECT count(*) FILTER (WHERE time_started < now() - make_interval(secs => $1::float8 / 1000))::int AS stale,
         count(*)::int AS incomplete,
         ${rfc3339('min(time_started)')} AS oldest_started,
         COALESCE(extract(epoch FROM now() - min(time_started)) * 1000, 0)::float8 AS oldest_age_ms
    FROM audit_log
   WHERE time_completed IS NULL`;

// ---- retention ------------------------------------------------------------------------------

/**
 * Deletes up to $2 completed rows older than $1 ms, oldest first by (time_completed, id).
 * An incomplete row is never deleted: the sweeper must finalize it first.
 */
export const deleteExpiredChunk = `
  WITH expired AS (
    SELECT id FROM audit_log
     WHERE time_completed IS NOT NULL
       AND time_completed < now() - make_interval(secs => $1::float8 / 1000)
     ORDER BY time_completed, id
     LIMIT $2
  ), deleted AS (
    DELETE FROM audit_log AS a USING expired WHERE a.id = expired.id RETURNING a.id
  )
  SELECT count(*)::int AS deleted FROM deleted`;

// ---- dashboard ------------------------------------------------------------------------------

/**
 * Stale and in-flight rows of every sweep partition, in one statement. $1 and $2 are the
 * partitions' low and high ids (partitionRange, in partition order), $3 is STALE_AFTER in ms.
 * The lateral join counts each range with its own scan of the partial index on
 * (id, time_started) WHERE time_completed IS NULL, so the cost follows the backlog, not the size
 * of the table, and no incomplete row is compared with every range.
 */
export const backlogByPartition = `
  SELECT (p.ordinality - 1)::int AS partition, c.stale, c.incomplete
    FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS p(low, high, ordinality)
   CROSS JOIN LATERAL (
     SELECT count(*) FILTER (WHERE a.time_started < now() - make_interval(secs => $3::float8 / 1000))::int AS stale,
            count(*)::int AS incomplete
       FROM audit_log AS a
      WHERE a.time_completed IS NULL AND a.id BETWEEN p.low AND p.high
   ) AS c
   ORDER BY p.ordinality`;
