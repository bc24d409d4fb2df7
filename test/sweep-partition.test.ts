import { randomInt, randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createPool, type Pool } from '../src/db/pool.ts';
import { silentLogger } from '../src/log.ts';
import { rfc3339 } from '../src/sql/fragments.ts';
import { finalizeStaleChunk, staleCutoff } from '../src/sql/sweep.ts';
import { AuditLogStore } from '../src/store/store.ts';
import type { CompleteOutcome, Completion } from '../src/store/types.ts';
import { partitionOf, partitionRange } from '../src/sweep/partitions.ts';
import type { SweepStatus } from '../src/sweep/status.ts';
import { type SweepPartitionOptions, sweepPartition } from '../src/sweep/sweep-partition.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { explain, planNodes as nodes, type PlanNode } from './support/explain.ts';

/**
 * One activation of the sweeper for one partition (sweepPartition), against a real PostgreSQL:
 * the reference job's scenario, the status it returns, errors, the plan of its chunk query, and
 * real completions racing it on the same rows.
 */

const HOUR = 3_600_000;
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('sweep_partition');
});

afterAll(async () => {
  await db?.drop();
});

/** Every test starts from an empty table with no triggers of a previous test left. */
afterEach(async () => {
  await db.pool.query('DROP TRIGGER IF EXISTS test_raise ON audit_log');
  await db.pool.query('DROP TRIGGER IF EXISTS test_log_updates ON audit_log');
  await db.pool.query('TRUNCATE audit_log');
});

/** Inserts one row started `ageMs` ago (database clock); completed ones get a success result. */
async function insertRow(
  pool: Pool,
  o: { ageMs: number; completed?: boolean; id?: string },
): Promise<string> {
  const { rows } = await pool.query(
    `INSERT INTO audit_log (id, time_started, request_id, request_uri, operation_id, source_ip,
       actor_kind, time_completed, result_kind, http_status_code)
     SELECT COALESCE($1::uuid, gen_random_uuid()), now() - make_interval(secs => $2::float8 / 1000),
            'req-' || md5(random()::text), '/v1/projects', 'project_list', '192.0.2.7',
            'unauthenticated',
            CASE WHEN $3 THEN now() - make_interval(secs => $2::float8 / 2000) END,
            CASE WHEN $3 THEN 'success'::audit_log_result_kind END,
            CASE WHEN $3 THEN 200 END
     RETURNING id`,
    [o.id ?? null, o.ageMs, o.completed ?? false],
  );
  return rows[0].id;
}

/** Inserts `count` rows at once: incomplete ones started `ageMs` ago or older, or completed ones. */
async function insertMany(
  pool: Pool,
  o: { count: number; ageMs: number; completed?: boolean },
): Promise<void> {
  await pool.query(
    `INSERT INTO audit_log (id, time_started, request_id, request_uri, operation_id, source_ip,
       actor_kind, time_completed, result_kind, http_status_code)
     SELECT gen_random_uuid(), now() - make_interval(secs => ($2::float8 + g) / 1000),
            'bulk-' || g, '/v1/instances', 'instance_list', '198.51.100.1', 'unauthenticated',
            CASE WHEN $3 THEN now() - make_interval(secs => ($2::float8 + g) / 2000) END,
            CASE WHEN $3 THEN 'success'::audit_log_result_kind END,
            CASE WHEN $3 THEN 200 END
       FROM generate_series(1, $1::int) AS g`,
    [o.count, o.ageMs, o.completed ?? false],
  );
}

/** The whole row as PostgreSQL prints it: equal text means unchanged. */
async function rowText(id: string): Promise<string> {
  const { rows } = await db.pool.query('SELECT a::text AS t FROM audit_log a WHERE id = $1', [id]);
  return rows[0].t;
}

async function resultKinds(ids: string[]): Promise<Map<string, string | null>> {
  const { rows } = await db.pool.query(
    'SELECT id, result_kind FROM audit_log WHERE id = ANY($1::uuid[])',
    [ids],
  );
  return new Map(rows.map((r) => [r.id as string, r.result_kind as string | null]));
}

/** The reference job's settings in its test: cutoff 1 h, at most 3 rows per run, one statement. */
const referenceRun: Omit<SweepPartitionOptions, 'signal'> = {
  partition: 0,
  partitions: 1,
  staleAfterMs: HOUR,
  chunkSize: 3,
  timeBudgetMs: 60_000,
  maxChunks: 1,
};

/** Five sorted random ids: the test decides which row gets which place in id order. */
const sortedIds = (n: number) => Array.from({ length: n }, () => randomUUID()).sort();

describe('the reference scenario', () => {
  it('5 stale rows, 1 recent, 1 completed; cutoff 1h, limit 3: runs time out 3, then 2, then none', async () => {
    // Ids ascend with age (oldest first), so that our order (by id within a partition) and the
    // reference's (by start time) pick the same rows; the next test shows the difference.
    const ids = sortedIds(5);
    const ages = [6, 5, 4, 3, 2];
    const stale: string[] = [];
    for (const [i, hours] of ages.entries()) {
      stale.push(await insertRow(db.pool, { ageMs: hours * HOUR, id: ids[i] }));
    }
    const recent = await insertRow(db.pool, { ageMs: 60_000 });
    const completed = await insertRow(db.pool, { ageMs: 8 * HOUR, completed: true });
    const completedBefore = await rowText(completed);

    const first = await sweepPartition(db.pool, referenceRun);
    expect(first).toMatchObject({ finalized: 3, chunks: 1, drained: false });
    expect(first.error).toBeUndefined();
    let kinds = await resultKinds(stale);
    expect(stale.map((id) => kinds.get(id))).toEqual(['timeout', 'timeout', 'timeout', null, null]);

    const second = await sweepPartition(db.pool, referenceRun);
    expect(second).toMatchObject({ finalized: 2, chunks: 1, drained: true });
    kinds = await resultKinds(stale);
    expect(stale.map((id) => kinds.get(id))).toEqual(Array(5).fill('timeout'));

    const third = await sweepPartition(db.pool, referenceRun);
    expect(third).toMatchObject({ finalized: 0, chunks: 1, drained: true });
    expect(third.error).toBeUndefined();

    // Timed-out rows: kind timeout, completion time set, and every status/error field NULL.
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS n FROM audit_log
        WHERE id = ANY($1::uuid[]) AND result_kind = 'timeout' AND time_completed IS NOT NULL
          AND time_completed > time_started AND http_status_code IS NULL
          AND error_code IS NULL AND error_message IS NULL`,
      [stale],
    );
    expect(rows[0].n).toBe(5);
    expect((await resultKinds([recent])).get(recent)).toBeNull();
    expect(await rowText(completed)).toBe(completedBefore);
  });

  it('within a partition rows are taken in id order, not start order: still 3, then 2, then none', async () => {
    // Here the newest stale rows have the lowest ids. The reference would take the 3 oldest
    // first; we take the 3 lowest ids. Every run of ours drains its partition (maxChunks exists
    // only to emulate the reference), so the order never decides what is left behind.
    const ids = sortedIds(5);
    const ages = [2, 3, 4, 5, 6];
    for (const [i, hours] of ages.entries()) {
      await insertRow(db.pool, { ageMs: hours * HOUR, id: ids[i] });
    }
    expect(await sweepPartition(db.pool, referenceRun)).toMatchObject({ finalized: 3 });
    let kinds = await resultKinds(ids);
    expect(ids.map((id) => kinds.get(id))).toEqual(['timeout', 'timeout', 'timeout', null, null]);
    expect(await sweepPartition(db.pool, referenceRun)).toMatchObject({ finalized: 2 });
    kinds = await resultKinds(ids);
    expect(ids.map((id) => kinds.get(id))).toEqual(Array(5).fill('timeout'));
    expect(await sweepPartition(db.pool, referenceRun)).toMatchObject({ finalized: 0 });
  });

  it('the status: partition, counts, a cutoff from the database clock, chunks, drained', async () => {
    for (const hours of [6, 5, 4, 3, 2]) await insertRow(db.pool, { ageMs: hours * HOUR });
    const recent = await insertRow(db.pool, { ageMs: 30 * 60_000 });

    const before = (await db.pool.query(`SELECT ${rfc3339('now()')} AS t`)).rows[0].t;
    const status = await sweepPartition(db.pool, referenceRun);
    const after = (await db.pool.query(`SELECT ${rfc3339('now()')} AS t`)).rows[0].t;

    expect(Object.keys(status).sort()).toEqual(
      ['chunks', 'cutoff', 'drained', 'durationMs', 'finalized', 'partition', 'partitions'].sort(),
    );
    expect(status).toMatchObject({ partition: 0, partitions: 1, finalized: 3, chunks: 1 });
    expect(status.durationMs).toBeGreaterThanOrEqual(0);
    expect(status.cutoff).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    // The cutoff is the database's now() minus STALE_AFTER, taken between the two readings.
    const { rows } = await db.pool.query(
      `SELECT $1::timestamptz BETWEEN $2::timestamptz - interval '1 hour'
                                  AND $3::timestamptz - interval '1 hour' AS within`,
      [status.cutoff, before, after],
    );
    expect(rows[0].within).toBe(true);

    // Every row timed out started before the cutoff; the recent one (30 min) did not.
    const check = await db.pool.query(
      `SELECT count(*) FILTER (WHERE result_kind = 'timeout' AND time_started < $1)::int AS ok,
              count(*) FILTER (WHERE result_kind = 'timeout' AND time_started >= $1)::int AS bad
         FROM audit_log`,
      [status.cutoff],
    );
    expect(check.rows[0]).toEqual({ ok: 3, bad: 0 });
    expect((await resultKinds([recent])).get(recent)).toBeNull();
  });

  it('an unbounded activation (no maxChunks) drains the partition in one go', async () => {
    for (const hours of [6, 5, 4, 3, 2]) await insertRow(db.pool, { ageMs: hours * HOUR });
    const recent = await insertRow(db.pool, { ageMs: 60_000 });
    await insertMany(db.pool, { count: 1_000, ageMs: 2 * HOUR });

    const status = await sweepPartition(db.pool, { ...referenceRun, maxChunks: undefined });
    // 1005 rows in chunks of 3: 335 full chunks, then an empty one that proves it drained.
    expect(status).toMatchObject({ finalized: 1_005, chunks: 336, drained: true });
    expect(status.error).toBeUndefined();
    const { rows } = await db.pool.query(
      'SELECT count(*)::int AS n FROM audit_log WHERE time_completed IS NULL',
    );
    expect(rows[0].n).toBe(1);
    expect((await resultKinds([recent])).get(recent)).toBeNull();
  });

  it('the time budget stops an activation between chunks, not drained; the next one goes on', async () => {
    await insertMany(db.pool, { count: 3_000, ageMs: 2 * HOUR });
    const first = await sweepPartition(db.pool, {
      ...referenceRun,
      chunkSize: 10,
      maxChunks: undefined,
      timeBudgetMs: 1,
    });
    // A budget of 1 ms is spent by the first chunk; that chunk still commits.
    expect(first).toMatchObject({ finalized: 10, chunks: 1, drained: false });
    const rest = await sweepPartition(db.pool, { ...referenceRun, maxChunks: undefined });
    expect(rest).toMatchObject({ finalized: 2_990, drained: true });
  });

  it('an aborted signal stops the activation before its next chunk', async () => {
    await insertMany(db.pool, { count: 100, ageMs: 2 * HOUR });
    const controller = new AbortController();
    const status = await sweepPartition(db.pool, {
      ...referenceRun,
      chunkSize: 10,
      maxChunks: undefined,
      signal: controller.signal,
      onChunk: ({ chunks }) => {
        if (chunks === 2) controller.abort();
      },
    });
    expect(status).toMatchObject({ finalized: 20, chunks: 2, drained: false });
    expect(status.error).toBeUndefined();
  });

  it('a database error is reported in status.error with the work done before it, never thrown', async () => {
    const ids = sortedIds(6);
    for (const id of ids) await insertRow(db.pool, { ageMs: 2 * HOUR, id });
    // The 4th row in id order cannot be updated: the first chunk of 3 commits, the second fails.
    await db.pool.query(`
      CREATE OR REPLACE FUNCTION test_raise() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.id = '${ids[3]}' THEN RAISE EXCEPTION 'poisoned row %', NEW.id; END IF;
        RETURN NEW;
      END $$`);
    await db.pool.query(
      'CREATE TRIGGER test_raise BEFORE UPDATE ON audit_log FOR EACH ROW EXECUTE FUNCTION test_raise()',
    );

    let status: SweepStatus | undefined;
    await expect(
      (async () => {
        status = await sweepPartition(db.pool, { ...referenceRun, maxChunks: undefined });
      })(),
    ).resolves.toBeUndefined();
    expect(status).toMatchObject({ finalized: 3, chunks: 1, drained: false });
    expect(status?.error).toContain(`poisoned row ${ids[3]}`);
    expect(status?.cutoff).not.toBeNull();
    // The failed chunk rolled back as a whole: rows 4..6 are still incomplete.
    const kinds = await resultKinds(ids);
    expect(ids.map((id) => kinds.get(id))).toEqual([
      'timeout',
      'timeout',
      'timeout',
      null,
      null,
      null,
    ]);

    // An error before the first chunk (the database refuses the connection) is reported too.
    const unreachable = createPool('postgres://root@127.0.0.1:1/none', silentLogger, { max: 1 });
    try {
      const failed = await sweepPartition(unreachable, referenceRun);
      expect(failed).toMatchObject({ finalized: 0, chunks: 0, cutoff: null, drained: false });
      expect(failed.error).toMatch(/ECONNREFUSED|connect/);
    } finally {
      await unreachable.end();
    }
  });
});

/** Reads a plan's nodes, depth first. */

describe('the chunk query plan', () => {
  /** EXPLAIN ANALYZE of one real chunk of partition 3 of 16, in a transaction rolled back. */
  async function explainChunk(): Promise<{ plan: PlanNode; buffers: number }> {
    const client = await db.pool.connect();
    try {
      const cutoff = await staleCutoff(client, { staleAfterMs: HOUR });
      const { low, high } = partitionRange(3, 16);
      await client.query('BEGIN');
      const plan = await explain(client, 'ANALYZE, BUFFERS', (db) =>
        finalizeStaleChunk(db, { cutoff, low, high, limit: 1_000 }),
      );
      // The most any node (they count their children's work too) hit or read.
      const buffers = Math.max(
        ...nodes(plan).map((n) => Number(n['Shared Hit Blocks']) + Number(n['Shared Read Blocks'])),
      );
      return { plan, buffers };
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  }

  it('uses the partial index, no sequential scan, and touches as few buffers with 200k completed rows as with 20k', async () => {
    // Nothing stale: completed rows only, plus a few in-flight ones (incomplete, recent).
    await insertMany(db.pool, { count: 20_000, ageMs: 2 * HOUR, completed: true });
    for (let i = 0; i < 20; i++) await insertRow(db.pool, { ageMs: 1_000 });
    await db.pool.query('VACUUM ANALYZE audit_log');
    const small = await explainChunk();

    await insertMany(db.pool, { count: 180_000, ageMs: 3 * HOUR, completed: true });
    await db.pool.query('VACUUM ANALYZE audit_log');
    const { rows } = await db.pool.query(
      'SELECT count(*)::int AS n FROM audit_log WHERE time_completed IS NOT NULL',
    );
    expect(rows[0].n).toBe(200_000);
    const large = await explainChunk();

    for (const { plan } of [small, large]) {
      const all = nodes(plan);
      const scans = all.filter((n) => n['Relation Name'] === 'audit_log');
      expect(scans.some((n) => n['Index Name'] === 'audit_log_incomplete_by_id')).toBe(true);
      expect(all.some((n) => n['Node Type'] === 'Seq Scan')).toBe(false);
      // Nothing stale: no row picked, none updated.
      const picked = all.find((n) => n['Index Name'] === 'audit_log_incomplete_by_id');
      expect(picked?.['Actual Rows']).toBe(0);
    }
    // The cost of a chunk that finds nothing does not grow with the completed rows.
    expect(large.buffers).toBeLessThanOrEqual(small.buffers + 2);
    expect(large.buffers).toBeLessThan(50);
  });

  it('the settings of a chunk end with it: the connection goes back to the pool as it came', async () => {
    await insertMany(db.pool, { count: 50, ageMs: 2 * HOUR });
    const client = await db.pool.connect();
    try {
      const cutoff = await staleCutoff(client, { staleAfterMs: HOUR });
      const { low, high } = partitionRange(0, 1);
      expect(await finalizeStaleChunk(client, { cutoff, low, high, limit: 1_000 })).toBe(50);
      const { rows } = await client.query(
        "SELECT current_setting('enable_sort') AS sort, current_setting('synchronous_commit') AS sync",
      );
      expect(rows[0]).toEqual({ sort: 'on', sync: 'on' });
    } finally {
      client.release();
    }
  });

  it('a backlog that arrived after the last ANALYZE saw no incomplete row: each chunk still writes only the rows it picked', async () => {
    // The usual state of a healthy table: statistics say no row is incomplete, so the planner
    // thinks the partial indexes empty. Then completions fail for a while and a backlog builds
    // up before autovacuum looks again. Joining the picked rows back by id let the planner scan
    // every incomplete row once per picked row: minutes per chunk on 200k rows (found running
    // the compose stack, test/docker).
    await db.pool.query('ALTER TABLE audit_log SET (autovacuum_enabled = false)');
    try {
      await insertMany(db.pool, { count: 20_000, ageMs: 2 * HOUR, completed: true });
      await db.pool.query('VACUUM ANALYZE audit_log');
      await insertMany(db.pool, { count: 20_000, ageMs: 2 * HOUR });
      const { plan } = await explainChunk();
      const all = nodes(plan);
      const update = all.find((n) => n['Node Type'] === 'ModifyTable');
      expect(update?.['Actual Rows']).toBe(1_000);
      // The pick walks the id index and stops at its limit. Left to those statistics, the
      // planner read every stale row of the range through the time_started index and sorted
      // them by id, chunk after chunk: 0.4-0.8 s a chunk at a 500k backlog, against 9 ms.
      expect(all.map((n) => n['Node Type'])).not.toContain('Sort');
      const pick = all.find((n) => n['Relation Name'] === 'audit_log' && n['Index Name']);
      expect(pick?.['Index Name']).toBe('audit_log_incomplete_by_id');
      for (const n of all) {
        expect(Number(n['Rows Removed by Join Filter'] ?? 0), String(n['Node Type'])).toBe(0);
        expect(Number(n['Rows Removed by Filter'] ?? 0), String(n['Node Type'])).toBeLessThan(
          1_000,
        );
      }
    } finally {
      await db.pool.query('ALTER TABLE audit_log RESET (autovacuum_enabled)');
    }
  });
});

describe('real completions racing the sweeper', () => {
  it('every row ends with exactly one consistent outcome: its completion or a timeout, never both', async () => {
    const PARTITIONS = 4;
    await insertMany(db.pool, { count: 20_000, ageMs: 2 * HOUR });
    // Every UPDATE of a row is logged, so a row written twice cannot hide.
    await db.pool.query(`
      CREATE TABLE IF NOT EXISTS test_updates (id uuid NOT NULL, result_kind text, txid bigint);
      TRUNCATE test_updates;
      CREATE OR REPLACE FUNCTION test_log_updates() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO test_updates VALUES (NEW.id, NEW.result_kind::text, txid_current());
        RETURN NEW;
      END $$;
      CREATE TRIGGER test_log_updates AFTER UPDATE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION test_log_updates();`);
    const all: string[] = (await db.pool.query('SELECT id FROM audit_log')).rows.map((r) => r.id);
    // A random half, in random order, each with its own result.
    const shuffled = [...all];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = randomInt(i + 1);
      [shuffled[i], shuffled[j]] = [shuffled[j] as string, shuffled[i] as string];
    }
    const toComplete = shuffled.slice(0, all.length / 2);
    const sent = new Map<string, Completion>(
      toComplete.map((id, i) => [
        id,
        i % 3 === 0
          ? { kind: 'error', httpStatusCode: 500, errorMessage: `failed ${i}` }
          : { kind: 'success', httpStatusCode: 200 + (i % 5) },
      ]),
    );

    // The application's pool and the sweeper's are separate, as in production.
    const appPool = createPool(db.url, silentLogger, { max: 16 });
    const store = new AuditLogStore(appPool);
    const outcomes = new Map<string, CompleteOutcome>();
    try {
      const queue = [...toComplete];
      const completer = async () => {
        for (let id = queue.pop(); id; id = queue.pop()) {
          outcomes.set(id, await store.complete(id, sent.get(id) as Completion));
        }
      };
      const sweeps = Array.from({ length: PARTITIONS }, (_, partition) =>
        sweepPartition(db.pool, {
          partition,
          partitions: PARTITIONS,
          staleAfterMs: HOUR,
          chunkSize: 50,
          timeBudgetMs: 600_000,
        }),
      );
      const [statuses] = await Promise.all([
        Promise.all(sweeps),
        Promise.all(Array.from({ length: 16 }, completer)),
      ]);
      for (const s of statuses) {
        expect(s.error).toBeUndefined();
        expect(s.drained).toBe(true);
      }

      const { rows } = await db.pool.query(
        `SELECT a.id, a.result_kind, a.http_status_code, a.error_message,
                COALESCE(u.updates, 0) AS updates
           FROM audit_log a
           LEFT JOIN (SELECT id, count(*)::int AS updates FROM test_updates GROUP BY id) u
             ON u.id = a.id`,
      );
      expect(rows).toHaveLength(all.length);
      let applied = 0;
      let late = 0;
      for (const row of rows) {
        // Exactly one write per row: its completion or the sweeper's timeout.
        expect(row.updates, row.id).toBe(1);
        const outcome = outcomes.get(row.id);
        if (!outcome) {
          expect(row.result_kind, row.id).toBe('timeout');
        } else if (outcome.applied) {
          applied += 1;
          const r = sent.get(row.id) as Completion;
          expect([row.result_kind, row.http_status_code], row.id).toEqual([
            r.kind,
            r.httpStatusCode,
          ]);
          if (r.kind === 'error') expect(row.error_message).toBe(r.errorMessage);
        } else {
          late += 1;
          expect(outcome.existingResult, row.id).toBe('unknown');
          expect(row.result_kind, row.id).toBe('timeout');
        }
      }
      expect(outcomes.size).toBe(toComplete.length);
      // The race really happened: both sides won some rows.
      expect(applied).toBeGreaterThan(0);
      expect(late).toBeGreaterThan(0);
      // The sweeper's count is exactly the rows it timed out.
      const finalized = statuses.reduce((n, s) => n + s.finalized, 0);
      expect(finalized).toBe(all.length - applied);
      // ...and each partition only touched its own rows.
      const timedOut = rows.filter((r) => r.result_kind === 'timeout');
      for (const s of statuses) {
        expect(timedOut.filter((r) => partitionOf(r.id, PARTITIONS) === s.partition)).toHaveLength(
          s.finalized,
        );
      }
    } finally {
      await appPool.end();
    }
  });
});
