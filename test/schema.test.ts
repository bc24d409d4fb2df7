import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { useTestWorld } from './support/world.ts';

/**
 * The audit_log table as migrations build it: columns, enums, every check constraint (each
 * inconsistent combination is rejected by the constraint that forbids it), length limits, the
 * partial indexes and the view. Rows are written with raw SQL, bypassing the store's checks.
 */

const world = useTestWorld('schema');

type Row = Record<string, unknown>;

/** A consistent incomplete row; each case overrides the columns it is about. */
function baseRow(): Row {
  return {
    id: randomUUID(),
    time_started: new Date().toISOString(),
    request_id: 'req-1',
    request_uri: '/v1/projects',
    operation_id: 'project_create',
    source_ip: '10.0.0.1',
    user_agent: 'test',
    actor_id: null,
    actor_silo_id: null,
    actor_kind: 'unauthenticated',
    auth_method: null,
    credential_id: null,
    time_completed: null,
    http_status_code: null,
    error_code: null,
    error_message: null,
    result_kind: null,
  };
}

async function insert(overrides: Row): Promise<void> {
  const row = { ...baseRow(), ...overrides };
  const columns = Object.keys(row);
  await world.db.pool.query(
    `INSERT INTO audit_log (${columns.join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})`,
    Object.values(row),
  );
}

/** The error a statement failed with (fails the test if it succeeded). */
async function rejection(promise: Promise<unknown>): Promise<{
  code?: string;
  constraint?: string;
  column?: string;
}> {
  try {
    await promise;
  } catch (err) {
    return err as { code?: string; constraint?: string };
  }
  throw new Error('statement was accepted but should have been rejected');
}

const done = { time_completed: new Date().toISOString() };
const uuid = () => randomUUID();

describe('columns and types', () => {
  it('has every column of the reference schema with its type and nullability', async () => {
    const { rows } = await world.db.pool.query(
      `SELECT column_name, data_type, udt_name, is_nullable
         FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = 'audit_log'
        ORDER BY ordinal_position`,
    );
    const shape = Object.fromEntries(
      rows.map((r) => [r.column_name, `${r.udt_name}${r.is_nullable === 'YES' ? '?' : ''}`]),
    );
    expect(shape).toEqual({
      id: 'uuid',
      time_started: 'timestamptz',
      request_id: 'text',
      request_uri: 'text',
      operation_id: 'text',
      source_ip: 'inet',
      user_agent: 'text?',
      actor_id: 'uuid?',
      actor_silo_id: 'uuid?',
      actor_kind: 'audit_log_actor_kind',
      auth_method: 'audit_log_auth_method?',
      credential_id: 'uuid?',
      time_completed: 'timestamptz?',
      http_status_code: 'int4?',
      error_code: 'text?',
      error_message: 'text?',
      result_kind: 'audit_log_result_kind?',
    });
  });

  it('has id as primary key', async () => {
    const { rows } = await world.db.pool.query(
      `SELECT a.attname FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = 'audit_log'::regclass AND i.indisprimary`,
    );
    expect(rows.map((r) => r.attname)).toEqual(['id']);
    const id = uuid();
    await insert({ id });
    expect((await rejection(insert({ id }))).code).toBe('23505');
  });

  it('has the three enums with exactly the reference values, in order', async () => {
    const { rows } = await world.db.pool.query(
      `SELECT t.typname, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) AS labels
         FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
        GROUP BY t.typname ORDER BY t.typname`,
    );
    expect(Object.fromEntries(rows.map((r) => [r.typname, r.labels]))).toEqual({
      audit_log_actor_kind: ['user_builtin', 'silo_user', 'unauthenticated', 'scim'],
      audit_log_auth_method: ['session_cookie', 'access_token', 'scim_token', 'spoof'],
      audit_log_result_kind: ['success', 'error', 'timeout'],
    });
    // '22P02': invalid input value for enum.
    expect((await rejection(insert({ actor_kind: 'robot' }))).code).toBe('22P02');
    expect((await rejection(insert({ auth_method: 'password' }))).code).toBe('22P02');
    expect((await rejection(insert({ ...done, result_kind: 'unknown' }))).code).toBe('22P02');
  });

  it.each([
    'id',
    'time_started',
    'request_id',
    'request_uri',
    'operation_id',
    'source_ip',
    'actor_kind',
  ])('rejects NULL in the required column %s', async (column) => {
    const err = await rejection(insert({ [column]: null }));
    expect(err.code).toBe('23502');
    expect(err.column).toBe(column);
  });

  it('rejects a source_ip that is not an address', async () => {
    expect((await rejection(insert({ source_ip: 'localhost' }))).code).toBe('22P02');
  });
});

describe('check constraints', () => {
  it('has exactly the named check constraints', async () => {
    const { rows } = await world.db.pool.query(
      `SELECT conname FROM pg_constraint
        WHERE conrelid = 'audit_log'::regclass AND contype = 'c' ORDER BY conname`,
    );
    expect(rows.map((r) => r.conname)).toEqual([
      'actor_kind_matches_ids',
      'auth_method_matches_credential',
      'completion_fields_together',
      'operation_id_length',
      'request_id_length',
      'request_uri_length',
      'result_fields_match_kind',
      'user_agent_length',
    ]);
  });

  // Each inconsistent combination violates exactly one constraint, the one named.
  const rejected: [string, string, Row][] = [
    // time_completed and result_kind: both NULL or both set.
    ['completion_fields_together', 'time_completed without result_kind', { ...done }],
    [
      'completion_fields_together',
      'success without time_completed',
      { result_kind: 'success', http_status_code: 200 },
    ],
    [
      'completion_fields_together',
      'error without time_completed',
      { result_kind: 'error', http_status_code: 500, error_message: 'boom' },
    ],
    ['completion_fields_together', 'timeout without time_completed', { result_kind: 'timeout' }],
    // Incomplete: no status or error fields.
    ['result_fields_match_kind', 'incomplete with a status code', { http_status_code: 200 }],
    ['result_fields_match_kind', 'incomplete with an error code', { error_code: 'E' }],
    ['result_fields_match_kind', 'incomplete with an error message', { error_message: 'm' }],
    [
      'result_fields_match_kind',
      'incomplete with a status code and an error message',
      { http_status_code: 500, error_message: 'm' },
    ],
    [
      'result_fields_match_kind',
      'incomplete with every error field',
      { http_status_code: 500, error_code: 'E', error_message: 'm' },
    ],
    // success: status set, no error fields.
    ['result_fields_match_kind', 'success without status', { ...done, result_kind: 'success' }],
    [
      'result_fields_match_kind',
      'success with an error code',
      { ...done, result_kind: 'success', http_status_code: 200, error_code: 'E' },
    ],
    [
      'result_fields_match_kind',
      'success with an error message',
      { ...done, result_kind: 'success', http_status_code: 200, error_message: 'm' },
    ],
    // error: status and message set.
    [
      'result_fields_match_kind',
      'error without status',
      { ...done, result_kind: 'error', error_message: 'm' },
    ],
    [
      'result_fields_match_kind',
      'error without message',
      { ...done, result_kind: 'error', http_status_code: 500, error_code: 'E' },
    ],
    // timeout: all NULL.
    [
      'result_fields_match_kind',
      'timeout with a status code',
      { ...done, result_kind: 'timeout', http_status_code: 504 },
    ],
    [
      'result_fields_match_kind',
      'timeout with an error code',
      { ...done, result_kind: 'timeout', error_code: 'E' },
    ],
    [
      'result_fields_match_kind',
      'timeout with an error message',
      { ...done, result_kind: 'timeout', error_message: 'm' },
    ],
    // Actor kind and ids agree.
    ['actor_kind_matches_ids', 'user_builtin without actor id', { actor_kind: 'user_builtin' }],
    [
      'actor_kind_matches_ids',
      'user_builtin with a silo id',
      { actor_kind: 'user_builtin', actor_id: uuid(), actor_silo_id: uuid() },
    ],
    [
      'actor_kind_matches_ids',
      'silo_user without actor id',
      { actor_kind: 'silo_user', actor_silo_id: uuid() },
    ],
    [
      'actor_kind_matches_ids',
      'silo_user without silo id',
      { actor_kind: 'silo_user', actor_id: uuid() },
    ],
    [
      'actor_kind_matches_ids',
      'scim with an actor id',
      { actor_kind: 'scim', actor_id: uuid(), actor_silo_id: uuid() },
    ],
    ['actor_kind_matches_ids', 'scim without silo id', { actor_kind: 'scim' }],
    ['actor_kind_matches_ids', 'unauthenticated with an actor id', { actor_id: uuid() }],
    ['actor_kind_matches_ids', 'unauthenticated with a silo id', { actor_silo_id: uuid() }],
    // Auth method and credential id agree.
    ['auth_method_matches_credential', 'no method but a credential', { credential_id: uuid() }],
    [
      'auth_method_matches_credential',
      'spoof with a credential',
      { auth_method: 'spoof', credential_id: uuid() },
    ],
    [
      'auth_method_matches_credential',
      'session_cookie without credential',
      { auth_method: 'session_cookie' },
    ],
    [
      'auth_method_matches_credential',
      'access_token without credential',
      { auth_method: 'access_token' },
    ],
    [
      'auth_method_matches_credential',
      'scim_token without credential',
      { auth_method: 'scim_token' },
    ],
    // Length limits.
    ['request_id_length', 'request_id of 64 characters', { request_id: 'r'.repeat(64) }],
    ['request_uri_length', 'request_uri of 513 characters', { request_uri: 'u'.repeat(513) }],
    ['operation_id_length', 'operation_id of 513 characters', { operation_id: 'o'.repeat(513) }],
    ['user_agent_length', 'user_agent of 257 characters', { user_agent: 'a'.repeat(257) }],
  ];

  it.each(rejected)('%s rejects %s', async (constraint, _case, overrides) => {
    const err = await rejection(insert(overrides));
    expect(err.code).toBe('23514');
    expect(err.constraint).toBe(constraint);
  });

  it.each(rejected)(
    '%s also rejects %s as an UPDATE of a valid row',
    async (constraint, _case, overrides) => {
      const id = uuid();
      await insert({ id });
      const columns = Object.keys(overrides);
      const err = await rejection(
        world.db.pool.query(
          `UPDATE audit_log SET ${columns.map((c, i) => `${c} = $${i + 2}`).join(', ')} WHERE id = $1`,
          [id, ...Object.values(overrides)],
        ),
      );
      expect(err.code).toBe('23514');
      expect(err.constraint).toBe(constraint);
    },
  );

  const accepted: [string, Row][] = [
    ['an incomplete row', {}],
    ['a success', { ...done, result_kind: 'success', http_status_code: 201 }],
    [
      'an error with a code',
      { ...done, result_kind: 'error', http_status_code: 400, error_code: 'E', error_message: 'm' },
    ],
    [
      'an error without a code',
      { ...done, result_kind: 'error', http_status_code: 503, error_message: 'm' },
    ],
    ['a timeout', { ...done, result_kind: 'timeout' }],
    ['a built-in user', { actor_kind: 'user_builtin', actor_id: uuid() }],
    ['a silo user', { actor_kind: 'silo_user', actor_id: uuid(), actor_silo_id: uuid() }],
    ['a SCIM actor', { actor_kind: 'scim', actor_silo_id: uuid() }],
    ['an unauthenticated actor', { actor_kind: 'unauthenticated' }],
    ['spoofed auth', { auth_method: 'spoof' }],
    ['a session cookie', { auth_method: 'session_cookie', credential_id: uuid() }],
    ['an access token', { auth_method: 'access_token', credential_id: uuid() }],
    ['a SCIM token', { auth_method: 'scim_token', credential_id: uuid() }],
    ['no user agent', { user_agent: null }],
    ['an IPv6 source', { source_ip: '2001:db8::1' }],
    [
      'strings at their limits',
      {
        request_id: 'r'.repeat(63),
        request_uri: 'u'.repeat(512),
        operation_id: 'o'.repeat(512),
        user_agent: 'a'.repeat(256),
      },
    ],
    // Limits count characters, not bytes.
    [
      'multi-byte strings at their limits',
      { request_id: 'é'.repeat(63), user_agent: '字'.repeat(256) },
    ],
  ];

  it.each(accepted)('accepts %s', async (_case, overrides) => {
    const id = uuid();
    await insert({ ...overrides, id });
    const { rowCount } = await world.db.pool.query('SELECT 1 FROM audit_log WHERE id = $1', [id]);
    expect(rowCount).toBe(1);
  });
});

describe('indexes and view', () => {
  it('has the two partial indexes of the reference', async () => {
    const { rows } = await world.db.pool.query(
      `SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_log'`,
    );
    const defs = Object.fromEntries(rows.map((r) => [r.indexname, r.indexdef]));
    expect(defs.audit_log_by_time_completed).toBe(
      'CREATE UNIQUE INDEX audit_log_by_time_completed ON public.audit_log USING btree (time_completed, id) WHERE (time_completed IS NOT NULL)',
    );
    expect(defs.audit_log_incomplete_by_time_started).toBe(
      'CREATE INDEX audit_log_incomplete_by_time_started ON public.audit_log USING btree (time_started, id) WHERE (time_completed IS NULL)',
    );
  });

  it('the view audit_log_complete shows only completed rows, with every column', async () => {
    const incomplete = uuid();
    const success = uuid();
    const timeout = uuid();
    await insert({ id: incomplete });
    await insert({ id: success, ...done, result_kind: 'success', http_status_code: 200 });
    await insert({ id: timeout, ...done, result_kind: 'timeout' });
    const { rows } = await world.db.pool.query(
      'SELECT id, result_kind FROM audit_log_complete WHERE id = ANY($1::uuid[]) ORDER BY result_kind',
      [[incomplete, success, timeout]],
    );
    expect(rows).toEqual([
      { id: success, result_kind: 'success' },
      { id: timeout, result_kind: 'timeout' },
    ]);
    const { rows: counts } = await world.db.pool.query(
      `SELECT (SELECT count(*) FROM audit_log_complete)::int AS view,
              (SELECT count(*) FROM audit_log WHERE time_completed IS NOT NULL)::int AS completed,
              (SELECT count(*) FROM audit_log_complete WHERE time_completed IS NULL)::int AS leaked`,
    );
    expect(counts[0].view).toBe(counts[0].completed);
    expect(counts[0].leaked).toBe(0);

    const columns = async (table: string) =>
      (
        await world.db.pool.query(
          `SELECT column_name, udt_name FROM information_schema.columns
            WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position`,
          [table],
        )
      ).rows;
    expect(await columns('audit_log_complete')).toEqual(await columns('audit_log'));
  });

  it('completing a row makes it appear in the view', async () => {
    const id = uuid();
    await insert({ id });
    const inView = async () =>
      (await world.db.pool.query('SELECT 1 FROM audit_log_complete WHERE id = $1', [id])).rowCount;
    expect(await inView()).toBe(0);
    await world.db.pool.query(
      `UPDATE audit_log SET time_completed = now(), result_kind = 'success', http_status_code = 204
        WHERE id = $1`,
      [id],
    );
    expect(await inView()).toBe(1);
  });
});
