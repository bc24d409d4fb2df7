import { msAgo, type Queryable, rfc3339 } from './fragments.ts';

/** The columns of a new entry, as the table names them; ids of absent actors/credentials null. */
export type EntryInsert = {
  requestId: string;
  requestUri: string;
  operationId: string;
  sourceIp: string;
  userAgent: string | null;
  actorId: string | null;
  actorSiloId: string | null;
  actorKind: string;
  authMethod: string | null;
  credentialId: string | null;
};

/** A row's key: its id and, since the time-partitioned layout keys by both, its start. */
export type EntryKeyRow = { id: string; timeStarted: string };

/** Inserts an incomplete row started now (database clock); returns its key. */
export async function insertEntry(db: Queryable, e: EntryInsert): Promise<EntryKeyRow> {
  const { rows } = await db.query<EntryKeyRow>(
    `INSERT INTO audit_log (id, time_started, request_id, request_uri, operation_id, source_ip,
       user_agent, actor_id, actor_silo_id, actor_kind, auth_method, credential_id)
     VALUES (gen_random_uuid(), now(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     RETURNING id, ${rfc3339('time_started')} AS "timeStarted"`,
    [
      e.requestId,
      e.requestUri,
      e.operationId,
      e.sourceIp,
      e.userAgent,
      e.actorId,
      e.actorSiloId,
      e.actorKind,
      e.authMethod,
      e.credentialId,
    ],
  );
  return rows[0] as EntryKeyRow;
}

export type CompletionUpdate = {
  id: string;
  /** When known, the row is found in its time partition only (see keyMatch). */
  timeStarted?: string | undefined;
  resultKind: 'success' | 'error';
  httpStatusCode: number;
  errorCode: string | null;
  errorMessage: string | null;
};

/**
 * How a statement finds one row: by id, and by time_started too when the caller knows it. On
 * the time-partitioned layout the id alone must be looked up in every partition's primary key
 * (one index descent each); with time_started the partition is chosen before any is read. On
 * the plain layout both are one lookup of the primary key. `$1` is the id, `$n` the start.
 */
const keyMatch = (timeStarted: string | undefined, n: number) =>
  timeStarted === undefined ? 'id = $1' : `id = $1 AND time_started = $${n}::timestamptz`;
const keyValues = (timeStarted: string | undefined) =>
  timeStarted === undefined ? [] : [timeStarted];

/**
 * Completes a row now (database clock), unless it is already final: a completed row is
 * immutable. True when this call completed it. Never before its start: `greatest` keeps
 * time_completed >= time_started even if the database clock stepped back in between, which
 * listCompleted relies on to skip time partitions.
 */
export async function completeEntry(db: Queryable, c: CompletionUpdate): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE audit_log
        SET time_completed = greatest(now(), time_started), result_kind = $2, http_status_code = $3,
            error_code = $4, error_message = $5
      WHERE ${keyMatch(c.timeStarted, 6)} AND time_completed IS NULL`,
    [
      c.id,
      c.resultKind,
      c.httpStatusCode,
      c.errorCode,
      c.errorMessage,
      ...keyValues(c.timeStarted),
    ],
  );
  return rowCount === 1;
}

export type EntryResult = {
  resultKind: string | null;
  httpStatusCode: number | null;
  errorCode: string | null;
  errorMessage: string | null;
};

/** A row's result fields; undefined when there is no such row. */
export async function entryResult(
  db: Queryable,
  id: string,
  timeStarted?: string,
): Promise<EntryResult | undefined> {
  const { rows } = await db.query<EntryResult>(
    `SELECT result_kind AS "resultKind", http_status_code AS "httpStatusCode",
            error_code AS "errorCode", error_message AS "errorMessage"
       FROM audit_log WHERE ${keyMatch(timeStarted, 2)}`,
    [id, ...keyValues(timeStarted)],
  );
  return rows[0];
}

/** The key that signs page tokens (made by a migration); undefined before `migrate`. */
export async function pageTokenKey(db: Queryable): Promise<string | undefined> {
  const { rows } = await db.query<{ value: string }>(
    `SELECT value FROM audit_sweeper_secret WHERE name = 'page_token_key'`,
  );
  return rows[0]?.value;
}

/** A row of the log as it leaves the database: timestamps as RFC 3339 text, ip as text. */
export type EntryRow = Record<string, string | number | null>;

const entryColumns = `id, ${rfc3339('time_started')} AS time_started,
  ${rfc3339('time_completed')} AS time_completed, request_id, request_uri, operation_id,
  host(source_ip) AS source_ip, user_agent, actor_id, actor_silo_id, actor_kind, auth_method,
  credential_id, http_status_code, error_code, error_message, result_kind`;

export type ListCompletedParams = {
  direction: 'ASC' | 'DESC';
  /** Inclusive. */
  start: string;
  /** Exclusive; null for open-ended. */
  end: string | null;
  limit: number;
  /** The last (time_completed, id) already read; rows strictly after it in `direction`. */
  after: { time: string; id: string } | null;
  /**
   * Rows completed in the last `marginMs` may still be joined by rows that commit later with an
   * older timestamp, so they are not shown yet.
   */
  marginMs: number;
};

/**
 * The instant up to which this server has every commit: now() on a primary; on a streaming
 * replica, the commit time of the last transaction it replayed (never later than its now()), or
 * -infinity until it has replayed one. A replica that lags by L has not yet seen what committed
 * in the last L: measuring the safety margin from its now() would list rows past which a commit
 * made on the primary before the page was read can still appear. Measured from the replay
 * point, the margin means the same on a replica as on the primary.
 * A scalar subquery, evaluated once per statement (an InitPlan), in the same statement as the
 * page so that both read one server. It is a filter, not a bound of the index scan: the planner
 * cannot guess an InitPlan's value, and given one as a bound of time_completed it prices the
 * range as tiny and sorts a bitmap scan instead (`+ interval '0'` keeps it out of the range
 * estimate). The bound from now() - margin, which it can estimate, stays the scan's. Rows past
 * the horizon are the replica's lag window: it holds few of them, it has not replayed them yet.
 */
const LIST_HORIZON = `CASE WHEN pg_is_in_recovery()
    THEN LEAST(now(), COALESCE(pg_last_xact_replay_timestamp(), '-infinity'))
    ELSE now() END`;

/**
 * Completed rows in [start, end) by (time_completed, id), one page.
 *
 * Every column is qualified with `a.`: an unqualified ORDER BY time_completed binds to the
 * to_char output column of the same name and sorts the formatted text of the whole range
 * instead of walking the (time_completed, id) index (test/list-plan.test.ts reads the plan).
 *
 * Every write sets time_completed to greatest(now(), time_started), so a row completed before
 * the range's end started before it too, whatever the clock did: the same bound on time_started
 * lets the time-partitioned layout leave out, when the statement starts, every partition that
 * begins after the range (or after now - margin). The page is a Merge Append of the remaining
 * partitions' (time_completed, id) indexes. On the plain layout the bound is a filter that
 * rejects no row the product wrote.
 *
 * It is a named statement: on a pool made with `genericPlans` (the API's), each connection plans
 * it once, generically, and prunes partitions when it runs. Planned per call with its values,
 * a page of a log of 40 daily partitions took 10-15 ms to plan and 1 ms to run; generic, under
 * 1 ms in all. The plan is the same index walk on either layout (test/list-plan.test.ts reads
 * both kinds of plan).
 */
export async function listCompleted(db: Queryable, p: ListCompletedParams): Promise<EntryRow[]> {
  const cmp = p.direction === 'ASC' ? '>' : '<';
  const { rows } = await db.query<EntryRow>({
    name: `audit_log_page_${p.direction.toLowerCase()}`,
    text: `SELECT ${entryColumns}
       FROM audit_log_complete AS a
      WHERE a.time_completed >= $1::timestamptz
        AND a.time_completed < LEAST(COALESCE($2::timestamptz, 'infinity'), ${msAgo('$6')})
        AND a.time_started < LEAST(COALESCE($2::timestamptz, 'infinity'), ${msAgo('$6')})
        AND a.time_completed + interval '0' < (SELECT ${LIST_HORIZON}) - make_interval(secs => $6::float8 / 1000)
        AND ($4::timestamptz IS NULL OR (a.time_completed, a.id) ${cmp} ($4::timestamptz, $5::uuid))
      ORDER BY a.time_completed ${p.direction}, a.id ${p.direction}
      LIMIT $3`,
    values: [p.start, p.end, p.limit, p.after?.time ?? null, p.after?.id ?? null, p.marginMs],
  });
  return rows;
}
