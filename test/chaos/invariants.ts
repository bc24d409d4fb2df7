import type pg from 'pg';
import { rowsDigest } from '../support/seed.ts';
import type { WriterOp } from './traffic.ts';

/**
 * The promises the product makes, checked against PostgreSQL directly once the run is over
 * (writers stopped, backlog drained). Each check says how many rows (or items) it looked at and
 * how many broke the promise, with a few examples.
 */
export type Check = { name: string; checked: number; violations: number; notes: string[] };

const SEEDED_DONE = "request_id LIKE 'done-%'";

async function one<T = number>(db: pg.Pool, query: string, params: unknown[] = []): Promise<T> {
  const { rows } = await db.query(query, params);
  return Object.values(rows[0] ?? {})[0] as T;
}

async function examples(db: pg.Pool, query: string, params: unknown[] = []): Promise<string[]> {
  const { rows } = await db.query(`${query} LIMIT 3`, params);
  return rows.map((r) => JSON.stringify(r));
}

/** Every stale row finalized, each finalized row by exactly one write, nothing rewritten. */
export async function checkFinalizedOnce(db: pg.Pool, staleAfterMs: number): Promise<Check> {
  const c: Check = { name: 'finalized exactly once', checked: 0, violations: 0, notes: [] };
  c.checked = await one(
    db,
    `SELECT count(*)::int FROM audit_log WHERE time_completed IS NOT NULL AND NOT ${SEEDED_DONE}`,
  );
  const problems: [string, string][] = [
    [
      'rows finalized more than once',
      `SELECT id, count(*)::int AS writes FROM chaos_write WHERE op = 'finalize' GROUP BY id HAVING count(*) > 1`,
    ],
    [
      'writes to a row already final, to an incomplete row without finalizing it, or deletes',
      `SELECT id, op, result_kind FROM chaos_write WHERE op <> 'finalize'`,
    ],
    [
      'stale rows left incomplete',
      `SELECT id, time_started FROM audit_log WHERE time_completed IS NULL
          AND time_started < now() - make_interval(secs => ${staleAfterMs / 1000})`,
    ],
    [
      'final rows with no finalizing write, or whose values differ from it',
      `SELECT a.id, a.result_kind FROM audit_log a
        WHERE a.time_completed IS NOT NULL AND NOT a.${SEEDED_DONE}
          AND NOT EXISTS (SELECT 1 FROM chaos_write w WHERE w.id = a.id AND w.op = 'finalize'
                          AND w.time_completed = a.time_completed AND w.result_kind = a.result_kind)`,
    ],
  ];
  for (const [what, query] of problems) {
    const n = await one(db, `SELECT count(*)::int FROM (${query}) AS x`);
    if (n > 0) {
      c.violations += n;
      c.notes.push(`${n} ${what}: ${(await examples(db, query)).join(' ')}`);
    }
  }
  const incomplete = await one(
    db,
    'SELECT count(*)::int FROM audit_log WHERE time_completed IS NULL',
  );
  c.notes.push(`${incomplete} rows incomplete at the end (none stale)`);
  return c;
}

export async function checkCompletedUntouched(
  db: pg.Pool,
  before: { rows: number; md5: string },
): Promise<Check> {
  const after = await rowsDigest(db, SEEDED_DONE);
  const same = after.rows === before.rows && after.md5 === before.md5;
  return {
    name: 'completed rows unchanged (checksum)',
    checked: before.rows,
    violations: same ? 0 : Math.max(1, Math.abs(after.rows - before.rows)),
    notes: same ? [] : [`before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`],
  };
}

/** The table's CHECK constraints, re-evaluated on every row, and completion after start. */
export async function checkTableRules(db: pg.Pool): Promise<Check> {
  const c: Check = { name: "table's consistency rules", checked: 0, violations: 0, notes: [] };
  c.checked = await one(db, 'SELECT count(*)::int FROM audit_log');
  const { rows } = await db.query(
    `SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
      WHERE conrelid = 'audit_log'::regclass AND contype = 'c'`,
  );
  const rules = rows.map((r) => [r.conname as string, (r.def as string).replace(/^CHECK /, '')]);
  rules.push([
    'completed after started',
    '(time_completed IS NULL OR time_completed >= time_started)',
  ]);
  for (const [name, expr] of rules) {
    const n = await one(db, `SELECT count(*)::int FROM audit_log WHERE NOT ${expr}`);
    if (n > 0) {
      c.violations += n;
      c.notes.push(`${n} rows break ${name}`);
    }
  }
  c.notes.push(`${rules.length} rules`);
  return c;
}

/** A timed-out row was stale when its chunk ran: started before that chunk's now() - STALE_AFTER. */
export async function checkCutoff(db: pg.Pool, staleAfterMs: number): Promise<Check> {
  const where = `result_kind = 'timeout'
      AND time_started >= time_completed - make_interval(secs => ${staleAfterMs / 1000})`;
  const n = await one(db, `SELECT count(*)::int FROM audit_log WHERE ${where}`);
  return {
    name: 'no row younger than the cutoff timed out',
    checked: await one(db, `SELECT count(*)::int FROM audit_log WHERE result_kind = 'timeout'`),
    violations: n,
    notes: n
      ? await examples(db, `SELECT id, time_started, time_completed FROM audit_log WHERE ${where}`)
      : [],
  };
}

/** What each writer was told against what the row holds. */
export async function checkWriters(db: pg.Pool, ops: WriterOp[]): Promise<Check> {
  const c: Check = {
    name: 'writers: one completion each, as told',
    checked: ops.length,
    violations: 0,
    notes: [],
  };
  const { rows } = await db.query(
    `SELECT request_id, id, result_kind::text AS kind, http_status_code AS code
       FROM audit_log WHERE request_id LIKE 'w-%'`,
  );
  const byRequest = new Map(rows.map((r) => [r.request_id as string, r]));
  const tally = new Map<string, number>();
  const bad = (what: string, op: WriterOp, row: unknown) => {
    c.violations += 1;
    if (c.notes.length < 5) c.notes.push(`${what}: ${JSON.stringify({ op, row })}`);
  };
  for (const op of ops) {
    const row = byRequest.get(op.requestId);
    const label = `${op.plan}/${op.outcome ?? 'none'}`;
    tally.set(label, (tally.get(label) ?? 0) + 1);
    if (!row) {
      if (op.outcome !== 'init-failed') bad('row missing', op, row);
      continue;
    }
    if (op.id && op.id !== row.id) bad('init returned another id', op, row);
    const own = row.kind === op.result?.kind && row.code === op.result?.httpStatusCode;
    if (row.kind === null) bad('row never finalized', op, row);
    else if (op.plan === 'never' && row.kind !== 'timeout')
      bad('never completed, not timed out', op, row);
    else if (op.outcome === 'applied' && !own)
      bad('applied, but the row holds another result', op, row);
    else if (op.outcome === 'not-applied' && !own && row.kind !== 'timeout')
      bad('refused, but the row holds another result', op, row);
    else if (op.outcome === 'not-applied' && own)
      bad('told its completion was ignored, but the row holds it', op, row);
    else if (!own && row.kind !== 'timeout') bad('row holds a result nobody wrote', op, row);
  }
  c.notes.push([...tally].map(([k, v]) => `${k} ${v}`).join(', '));
  return c;
}

/** The tailing reader's sequence against the log itself, in (time_completed, id) order. */
export async function checkReader(db: pg.Pool, seen: { id: string }[]): Promise<Check> {
  const { rows } = await db.query(
    'SELECT id FROM audit_log WHERE time_completed IS NOT NULL ORDER BY time_completed, id',
  );
  const expected = rows.map((r) => r.id as string);
  const c: Check = {
    name: 'reader saw every completed row once, in order',
    checked: expected.length,
    violations: 0,
    notes: [],
  };
  const counts = new Map<string, number>();
  for (const s of seen) counts.set(s.id, (counts.get(s.id) ?? 0) + 1);
  const dup = [...counts].filter(([, n]) => n > 1).length;
  const expectedSet = new Set(expected);
  const missing = expected.filter((id) => !counts.has(id)).length;
  const extra = [...counts.keys()].filter((id) => !expectedSet.has(id)).length;
  const firstDiff = expected.findIndex((id, i) => seen[i]?.id !== id);
  if (dup) c.notes.push(`${dup} ids served more than once`);
  if (missing) c.notes.push(`${missing} completed ids never served`);
  if (extra) c.notes.push(`${extra} served ids not in the log`);
  if (firstDiff >= 0 || seen.length !== expected.length) {
    c.notes.push(
      `sequences differ from position ${firstDiff} (served ${seen.length}, log ${expected.length})`,
    );
  }
  c.violations = dup + missing + extra + (c.notes.length && !dup && !missing && !extra ? 1 : 0);
  return c;
}
