import { escapeIdentifier, escapeLiteral } from 'pg';
import { msAgo, type Queryable, rfc3339 } from './fragments.ts';

/**
 * The time-partitioned layout of audit_log (AUDIT_LOG_LAYOUT=partitioned): a parent partitioned
 * by RANGE (time_started), one table per span (`audit_log_p20261205`), a default partition that
 * catches a row no range holds, and, on a database converted from the plain layout, the old
 * table attached as `audit_log_legacy` (MINVALUE up to the first range). "Time partition" is
 * this; the sweep's "partitions" are id ranges (src/sweep/partitions.ts), a different thing.
 */

export type AuditLogLayout = 'plain' | 'partitioned';

/** How audit_log is laid out now, read from the catalog; undefined before `migrate`. */
export async function auditLogLayout(db: Queryable): Promise<AuditLogLayout | undefined> {
  const { rows } = await db.query<{ kind: string }>(
    `SELECT relkind AS kind FROM pg_class WHERE oid = to_regclass('audit_log')`,
  );
  const kind = rows[0]?.kind;
  return kind === undefined ? undefined : kind === 'p' ? 'partitioned' : 'plain';
}

/** The span and the conversion's state, kept beside the log so workers need no setting. */
export async function createPartitioningTable(db: Queryable): Promise<void> {
  await db.query(`
    CREATE TABLE IF NOT EXISTS audit_sweeper_time_partitioning (
      id           int PRIMARY KEY CHECK (id = 1),
      span         interval NOT NULL,
      -- where the plain table attached as audit_log_legacy ends (null: it was empty, not kept)
      legacy_bound timestamptz,
      converted_at timestamptz
    )`);
}

export type Partitioning = { spanMs: number; legacyBound: string | null; converted: boolean };

export async function readPartitioning(db: Queryable): Promise<Partitioning | undefined> {
  const { rows } = await db.query<Partitioning>(
    `SELECT (extract(epoch FROM span) * 1000)::float8 AS "spanMs",
            ${rfc3339('legacy_bound')} AS "legacyBound", converted_at IS NOT NULL AS converted
       FROM audit_sweeper_time_partitioning WHERE to_regclass('audit_sweeper_time_partitioning') IS NOT NULL`,
  );
  return rows[0];
}

/**
 * Records a conversion about to start. The legacy bound is the first span boundary at least a
 * week ahead (`greatest`: or a span, if longer): the old table must keep taking the
 * application's rows until the cutover, and its CHECK rejects any row past the bound, so the
 * bound must lie well beyond the longest index build the conversion waits for.
 */
export async function startConversion(
  db: Queryable,
  p: { spanMs: number; empty: boolean },
): Promise<string> {
  const span = `make_interval(secs => ${Number(p.spanMs) / 1000})`;
  const bound = p.empty
    ? `date_bin(${span}, now(), 'epoch')`
    : `date_bin(${span}, now() + greatest(${span}, interval '7 days'), 'epoch') + ${span}`;
  const { rows } = await db.query<{ bound: string }>(
    `INSERT INTO audit_sweeper_time_partitioning (id, span, legacy_bound)
     VALUES (1, ${span}, ${bound})
     ON CONFLICT (id) DO UPDATE SET span = EXCLUDED.span, legacy_bound = EXCLUDED.legacy_bound
     RETURNING ${rfc3339('legacy_bound')} AS bound`,
  );
  return (rows[0] as { bound: string }).bound;
}

/** True when audit_log holds no row at all (one page read). */
export async function auditLogIsEmpty(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ empty: boolean }>(
    'SELECT NOT EXISTS (SELECT 1 FROM audit_log) AS empty',
  );
  return rows[0]?.empty === true;
}

const LEGACY_BOUND_CHECK = 'audit_log_legacy_bound';

/**
 * The CHECK that lets ATTACH PARTITION skip its scan of the old table: added NOT VALID (a brief
 * lock, no scan), then validated while the application writes (SHARE UPDATE EXCLUSIVE).
 */
export async function addLegacyBoundCheck(db: Queryable, bound: string): Promise<void> {
  await db.query(`ALTER TABLE audit_log DROP CONSTRAINT IF EXISTS ${LEGACY_BOUND_CHECK}`);
  await db.query(
    `ALTER TABLE audit_log ADD CONSTRAINT ${LEGACY_BOUND_CHECK}
       CHECK (time_started < ${escapeLiteral(bound)}::timestamptz) NOT VALID`,
  );
}

export async function validateLegacyBoundCheck(db: Queryable): Promise<void> {
  await db.query(`ALTER TABLE audit_log VALIDATE CONSTRAINT ${LEGACY_BOUND_CHECK}`);
}

/**
 * The old table's copies of the parent's unique key and completed-rows index, built without
 * blocking writes, so that ATTACH adopts them instead of building them under its lock.
 * (Each is one statement: CREATE INDEX CONCURRENTLY runs outside any transaction.)
 */
export const LEGACY_INDEXES = {
  audit_log_legacy_key:
    'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS audit_log_legacy_key ON audit_log (id, time_started)',
  audit_log_legacy_by_time_completed:
    'CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_log_legacy_by_time_completed ON audit_log (time_completed, id) WHERE time_completed IS NOT NULL',
} as const;

export async function buildLegacyIndex(
  db: Queryable,
  name: keyof typeof LEGACY_INDEXES,
): Promise<void> {
  await db.query(LEGACY_INDEXES[name]);
}

/**
 * The parent: the same columns, defaults and CHECKs as the plain table (LIKE), a primary key
 * that includes the partition key (PostgreSQL requires it of every unique index), and the
 * plain table's indexes, now per partition. The completed-rows index is no longer unique:
 * (time_completed, id) cannot be, without time_started.
 */
const CREATE_PARENT = (from: string) => `
  CREATE TABLE audit_log (LIKE ${from} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (time_started);
  ALTER TABLE audit_log DROP CONSTRAINT IF EXISTS ${LEGACY_BOUND_CHECK};
  ALTER TABLE audit_log ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id, time_started);
  CREATE INDEX audit_log_by_time_completed
    ON audit_log (time_completed, id) WHERE time_completed IS NOT NULL;
  CREATE INDEX audit_log_incomplete_by_time_started
    ON audit_log (time_started, id) WHERE time_completed IS NULL;
  CREATE INDEX audit_log_incomplete_by_id
    ON audit_log (id, time_started) WHERE time_completed IS NULL;
  CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT;
  CREATE OR REPLACE VIEW audit_log_complete AS
    SELECT * FROM audit_log WHERE time_completed IS NOT NULL;
  UPDATE audit_sweeper_time_partitioning SET converted_at = now();`;

/**
 * The cutover of a table that holds rows, one short transaction (run inside BEGIN with a
 * lock_timeout): the old table becomes audit_log_legacy with its prepared key as primary key,
 * and is attached below the parent over (MINVALUE, bound). Nothing is copied or scanned: the
 * validated CHECK proves the bound and the prepared indexes are adopted.
 */
export async function cutOverWithLegacy(db: Queryable, bound: string): Promise<void> {
  await db.query(`
    LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE;
    ALTER TABLE audit_log DROP CONSTRAINT audit_log_pkey;
    ALTER TABLE audit_log ADD CONSTRAINT audit_log_legacy_pkey PRIMARY KEY USING INDEX audit_log_legacy_key;
    DROP INDEX audit_log_by_time_completed;
    ALTER TABLE audit_log RENAME TO audit_log_legacy;
    ALTER INDEX audit_log_incomplete_by_time_started RENAME TO audit_log_legacy_incomplete_by_time_started;
    ALTER INDEX audit_log_incomplete_by_id RENAME TO audit_log_legacy_incomplete_by_id;
    ${CREATE_PARENT('audit_log_legacy')}
    ALTER TABLE audit_log ATTACH PARTITION audit_log_legacy
      FOR VALUES FROM (MINVALUE) TO (${escapeLiteral(bound)});`);
}

/**
 * The cutover of an empty table (a new database): the plain table is replaced outright, so
 * the log starts with range partitions only and no legacy partition. Fails (and rolls back) if
 * a row arrived since it was found empty.
 */
export async function replaceEmpty(db: Queryable): Promise<void> {
  await db.query(`
    LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE;
    DO $$ BEGIN
      IF EXISTS (SELECT 1 FROM audit_log) THEN
        RAISE EXCEPTION 'audit_log received rows during its conversion' USING ERRCODE = '55000';
      END IF;
    END $$;
    ALTER TABLE audit_log RENAME TO audit_log_plain;
    ALTER TABLE audit_log_plain DROP CONSTRAINT audit_log_pkey;
    DROP INDEX audit_log_by_time_completed, audit_log_incomplete_by_time_started,
      audit_log_incomplete_by_id;
    ${CREATE_PARENT('audit_log_plain')}
    DROP TABLE audit_log_plain;
    UPDATE audit_sweeper_time_partitioning SET legacy_bound = NULL;`);
}

export type TimePartitionRow = {
  name: string;
  /** Null for MINVALUE (the legacy partition) and for the default partition. */
  from: string | null;
  to: string | null;
  isDefault: boolean;
};

/** The partitions of audit_log, oldest first, the default last. */
export async function timePartitions(db: Queryable): Promise<TimePartitionRow[]> {
  const { rows } = await db.query<TimePartitionRow>(
    `WITH p AS (
       SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'audit_log'::regclass
     ), b AS (
       SELECT name, bound = 'DEFAULT' AS "isDefault",
              (regexp_match(bound, 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS lo,
              (regexp_match(bound, 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS hi
         FROM p
     )
     SELECT name, "isDefault", ${rfc3339('lo')} AS "from", ${rfc3339('hi')} AS "to"
       FROM b ORDER BY "isDefault", hi NULLS LAST`,
  );
  return rows;
}

/** The spans still to create: from `after` up to now + `aheadMs`, as [from, to) pairs. */
export async function missingSpans(
  db: Queryable,
  p: { after: string | null; spanMs: number; aheadMs: number },
): Promise<{ from: string; to: string; name: string }[]> {
  const { rows } = await db.query<{ from: string; to: string; name: string }>(
    `WITH s AS (SELECT make_interval(secs => $2::float8 / 1000) AS span),
     starts AS (
       SELECT generate_series(
                COALESCE($1::timestamptz, date_bin(s.span, now(), 'epoch')),
                now() + make_interval(secs => $3::float8 / 1000),
                s.span) AS lo, s.span
         FROM s)
     SELECT ${rfc3339('lo')} AS "from", ${rfc3339('lo + span')} AS "to",
            'audit_log_p' || to_char(lo AT TIME ZONE 'UTC',
              CASE WHEN span < interval '1 day' THEN 'YYYYMMDD"_"HH24MI' ELSE 'YYYYMMDD' END) AS name
       FROM starts ORDER BY lo`,
    [p.after, p.spanMs, p.aheadMs],
  );
  return rows;
}

/**
 * Adds the partition [from, to) as one transaction (run inside BEGIN with a lock_timeout): a
 * new table takes any row the default partition holds for that span, then is attached. ATTACH
 * locks the parent in SHARE UPDATE EXCLUSIVE mode, which the application's writes do not wait
 * for (CREATE TABLE ... PARTITION OF would hold them all, ACCESS EXCLUSIVE); the default
 * partition is locked while it is checked, quick while it is empty, as it should be.
 */
export async function addTimePartition(
  db: Queryable,
  p: { name: string; from: string; to: string },
): Promise<number> {
  const table = escapeIdentifier(p.name);
  const from = `${escapeLiteral(p.from)}::timestamptz`;
  const to = `${escapeLiteral(p.to)}::timestamptz`;
  await db.query(`CREATE TABLE ${table} (LIKE audit_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`);
  const moved = await db.query(
    `WITH moved AS (
       DELETE FROM audit_log_default WHERE time_started >= ${from} AND time_started < ${to}
       RETURNING *)
     INSERT INTO ${table} SELECT * FROM moved`,
  );
  await db.query(
    `ALTER TABLE audit_log ATTACH PARTITION ${table} FOR VALUES FROM (${from}) TO (${to})`,
  );
  return moved.rowCount ?? 0;
}

export type PartitionContents = {
  incomplete: number;
  /** The newest completion in the partition; null when it holds no completed row. */
  newestCompleted: string | null;
};

/**
 * What a partition holds that keeps it from being dropped: its incomplete rows (counted along
 * the partial index) and its newest completion (one step down the completed-rows index), and
 * whether that completion is within the retention period, by the database's clock.
 */
export async function partitionContents(
  db: Queryable,
  name: string,
  retentionMs: number,
): Promise<{ contents: PartitionContents; recent: boolean }> {
  const table = escapeIdentifier(name);
  const { rows } = await db.query<PartitionContents & { recent: boolean }>(
    `SELECT incomplete, ${rfc3339('newest')} AS "newestCompleted",
            COALESCE(newest >= ${msAgo('$1')}, false) AS recent
       FROM (SELECT (SELECT count(*)::int FROM ${table} WHERE time_completed IS NULL) AS incomplete,
                    (SELECT max(time_completed) FROM ${table}) AS newest) AS c`,
    [retentionMs],
  );
  const { recent, ...contents } = rows[0] as PartitionContents & { recent: boolean };
  return { contents, recent };
}

/** Rows in the default partition: rows no range partition holds (alerted on). */
export async function defaultPartitionRows(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT CASE WHEN to_regclass('audit_log_default') IS NULL THEN 0
            ELSE (SELECT count(*)::int FROM audit_log_default) END AS n`,
  );
  return rows[0]?.n ?? 0;
}

/** Detaches a partition (inside BEGIN with a lock_timeout); the caller checks it, then drops it. */
export async function detachTimePartition(db: Queryable, name: string): Promise<void> {
  await db.query(`ALTER TABLE audit_log DETACH PARTITION ${escapeIdentifier(name)}`);
}

export async function renameTable(db: Queryable, from: string, to: string): Promise<void> {
  await db.query(`ALTER TABLE ${escapeIdentifier(from)} RENAME TO ${escapeIdentifier(to)}`);
}

/** Plain tables (not partitions) in the search path whose name matches a LIKE pattern. */
export async function tablesNamedLike(db: Queryable, pattern: string): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>(
    `SELECT relname AS name FROM pg_class
      WHERE relkind = 'r' AND NOT relispartition AND relname LIKE $1 AND pg_table_is_visible(oid)
      ORDER BY relname`,
    [pattern],
  );
  return rows.map((r) => r.name);
}

export async function dropTable(db: Queryable, name: string): Promise<void> {
  await db.query(`DROP TABLE ${escapeIdentifier(name)}`);
}

/** Sets a lock_timeout for the rest of the transaction (DDL must never queue the application). */
export async function setLocalLockTimeout(db: Queryable, ms: number): Promise<void> {
  await db.query(`SELECT set_config('lock_timeout', $1, true)`, [`${Math.round(ms)}ms`]);
}
