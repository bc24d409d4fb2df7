import type pg from 'pg';

/**
 * Fast bulk seeding for sweeper tests: one INSERT ... SELECT FROM generate_series per call, so
 * hundreds of thousands of rows take seconds. Every row is tagged in request_id
 * (`<tag>-<n>`), so a test can tell its sets apart without keeping ids in memory.
 *
 * Rows vary the way real traffic does: all four actor kinds (with the ids each requires), every
 * auth method (with or without a credential), with and without a user agent, and several
 * source addresses. All times come from the database clock.
 */

type Queryable = Pick<pg.Pool, 'query'>;

export type SeedKind =
  /** Incomplete, started `ageMs` ago (default 2 h): stale for any STALE_AFTER below that. */
  | 'incomplete'
  /** Completed long ago, about 2 in 3 `success` and 1 in 3 `error` (some with an error code). */
  | 'completed';

export type SeedOptions = {
  kind: SeedKind;
  count: number;
  /** request_id is `${tag}-${n}`; keep it short (request_id holds at most 63 characters). */
  tag: string;
  /** For 'incomplete': how long before now the rows started; each row a little earlier. */
  ageMs?: number;
};

const COMMON = `
  gen_random_uuid(),
  $2::text || '-' || g,
  '/v1/projects/p' || (g % 97) || '/instances/i' || g || '?page=' || (g % 5),
  (ARRAY['project_view', 'instance_create', 'instance_delete', 'disk_list', 'login_local'])[1 + g % 5],
  ('10.' || (g % 250) || '.' || (g / 250 % 250) || '.' || (1 + g % 200))::inet,
  CASE WHEN g % 7 = 0 THEN NULL ELSE 'oxide-cli/' || (g % 13) || '.0' END,
  CASE WHEN g % 4 IN (0, 1) THEN gen_random_uuid() END,
  CASE WHEN g % 4 IN (1, 2) THEN gen_random_uuid() END,
  (ARRAY['user_builtin', 'silo_user', 'scim', 'unauthenticated'])[1 + g % 4]::audit_log_actor_kind,
  (ARRAY['session_cookie', 'access_token', 'scim_token', 'spoof', NULL])[1 + g % 5]::audit_log_auth_method,
  CASE WHEN g % 5 IN (0, 1, 2) THEN gen_random_uuid() END`;

const COLUMNS = `id, request_id, request_uri, operation_id, source_ip, user_agent, actor_id,
  actor_silo_id, actor_kind, auth_method, credential_id, time_started, time_completed,
  http_status_code, error_code, error_message, result_kind`;

const INSERT_INCOMPLETE = `
  INSERT INTO audit_log (${COLUMNS})
  SELECT ${COMMON},
         now() - make_interval(secs => ($3::float8 + g) / 1000),
         NULL, NULL, NULL, NULL, NULL
    FROM generate_series(1, $1::int) AS g`;

const INSERT_COMPLETED = `
  INSERT INTO audit_log (${COLUMNS})
  SELECT ${COMMON},
         now() - make_interval(days => 1 + g % 30, secs => g % 86400),
         now() - make_interval(days => 1 + g % 30, secs => g % 86400)
               + make_interval(secs => (g % 2000)::float8 / 1000),
         CASE WHEN g % 3 = 0 THEN (ARRAY[400, 403, 404, 409, 500, 503])[1 + g % 6] ELSE 200 + g % 5 END,
         CASE WHEN g % 3 = 0 AND g % 2 = 0 THEN (ARRAY['InvalidRequest', 'Forbidden', 'ObjectNotFound'])[1 + g % 3] END,
         CASE WHEN g % 3 = 0 THEN 'operation ' || g || ' failed' END,
         CASE WHEN g % 3 = 0 THEN 'error' ELSE 'success' END::audit_log_result_kind
    FROM generate_series(1, $1::int) AS g`;

export async function seed(db: Queryable, o: SeedOptions): Promise<void> {
  if (o.kind === 'incomplete') {
    await db.query(INSERT_INCOMPLETE, [o.count, o.tag, o.ageMs ?? 2 * 3_600_000]);
  } else {
    await db.query(INSERT_COMPLETED, [o.count, o.tag]);
  }
}

/** The rows of one tag, as `request_id LIKE` pattern matching `${tag}-<n>`. */
export const tagged = (tag: string) => `${tag}-%`;

/**
 * A digest of every column of every row matching `where`, ordered by id: equal before and after
 * means byte-for-byte unchanged (as PostgreSQL prints them). Per-row md5s keep the aggregate
 * small however many rows there are.
 */
export async function rowsDigest(
  db: Queryable,
  where: string,
  params: unknown[] = [],
): Promise<{ rows: number; md5: string }> {
  const { rows } = await db.query(
    `SELECT count(*)::int AS rows,
            md5(COALESCE(string_agg(md5(a::text), '' ORDER BY a.id), '')) AS md5
       FROM audit_log AS a WHERE ${where}`,
    params,
  );
  return rows[0];
}
