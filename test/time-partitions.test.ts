import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../src/db/migrate.ts';
import { silentLogger } from '../src/log.ts';
import { describeTimePartitions, readTimePartitions } from '../src/read/time-partitions.ts';
import { finalizeStaleChunk, staleCutoff } from '../src/sql/sweep.ts';
import {
  auditLogLayout,
  defaultPartitionRows,
  timePartitions,
} from '../src/sql/time-partitions.ts';
import { AuditLogStore } from '../src/store/store.ts';
import type { NewEntry } from '../src/store/types.ts';
import { deleteExpiredEntries } from '../src/sweep/retention.ts';
import { sweepPartition } from '../src/sweep/sweep-partition.ts';
import { createFuturePartitions } from '../src/time-partitions/premake.ts';
import { createTestDatabase, partitionedLayout, type TestDatabase } from './support/db.ts';
import { explain, planNodes } from './support/explain.ts';
import { rowsDigest, seed } from './support/seed.ts';

const DAY = 86_400_000;
const entry: NewEntry = {
  requestId: 'tp-1',
  requestUri: '/v1/projects',
  operationId: 'project_list',
  sourceIp: '10.0.0.1',
  actor: { kind: 'unauthenticated' },
};

/** Rows at a given age, completed (or not) at a given age: what the retention tests place. */
async function insertAt(
  db: TestDatabase,
  o: { tag: string; startedDaysAgo: number; completedDaysAgo: number | null; count?: number },
) {
  await db.pool.query(
    `INSERT INTO audit_log (id, time_started, time_completed, result_kind, http_status_code,
       request_id, request_uri, operation_id, source_ip, actor_kind)
     SELECT gen_random_uuid(), now() - make_interval(days => $2), now() - make_interval(days => $3),
            CASE WHEN $3 IS NULL THEN NULL ELSE 'success' END::audit_log_result_kind,
            CASE WHEN $3 IS NULL THEN NULL ELSE 200 END,
            $1 || '-' || g, '/x', 'op', '10.0.0.1', 'unauthenticated'
       FROM generate_series(1, $4::int) AS g`,
    [o.tag, o.startedDaysAgo, o.completedDaysAgo, o.count ?? 1],
  );
}

const countTagged = async (db: TestDatabase, tag: string) =>
  (
    await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_log WHERE request_id LIKE $1 || '-%'`,
      [tag],
    )
  ).rows[0]?.n;

describe('a new database with AUDIT_LOG_LAYOUT=partitioned', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('tp_new', { layout: 'partitioned' });
  });
  afterAll(() => db?.drop());

  it('is partitioned by time_started, with partitions 3 days ahead and a default partition', async () => {
    expect(await auditLogLayout(db.pool)).toBe('partitioned');
    const parts = await timePartitions(db.pool);
    expect(parts.at(-1)?.isDefault).toBe(true);
    const ranges = parts.filter((p) => !p.isDefault);
    expect(ranges.map((p) => p.name)).not.toContain('audit_log_legacy');
    expect(Date.parse(ranges.at(-1)?.to ?? '')).toBeGreaterThanOrEqual(Date.now() + 3 * DAY);
    expect(Date.parse(ranges[0]?.from ?? '')).toBeLessThanOrEqual(Date.now());
    expect(ranges[0]?.name).toMatch(/^audit_log_p\d{8}$/);
  });

  it('completes a row by its key, or by its id alone (the old call shape), and lists it', async () => {
    const store = new AuditLogStore(db.pool);
    const key = await store.begin(entry);
    expect(key.timeStarted).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/);
    expect(await store.complete(key, { kind: 'success', httpStatusCode: 200 })).toEqual({
      applied: true,
    });
    const id = await store.init(entry);
    expect(await store.complete(id, { kind: 'success', httpStatusCode: 201 })).toEqual({
      applied: true,
    });
    // Completed rows are final: the key finds the row, and keeps the first result.
    expect(await store.complete(key, { kind: 'success', httpStatusCode: 204 })).toEqual({
      applied: false,
      existingResult: 'success',
    });
    const page = await store.list({ startTime: new Date(Date.now() - DAY) });
    expect(page.items.map((i) => i.id).sort()).toEqual([key.id, id].sort());
  });

  it('finds the row in one partition when the key is given: the plan prunes every other', async () => {
    const partitions = (await timePartitions(db.pool)).length;
    const withKey = await explain(db.pool, 'ANALYZE, COSTS OFF', (q) =>
      new AuditLogStore(q as never).complete(
        { id: '00000000-0000-4000-8000-000000000001', timeStarted: new Date().toISOString() },
        { kind: 'success', httpStatusCode: 200 },
      ),
    );
    const byId = await explain(db.pool, 'ANALYZE, COSTS OFF', (q) =>
      new AuditLogStore(q as never).complete('00000000-0000-4000-8000-000000000001', {
        kind: 'success',
        httpStatusCode: 200,
      }),
    );
    const scanned = (plan: Record<string, unknown>) =>
      planNodes(plan).filter((n) => /Scan/.test(String(n['Node Type']))).length;
    expect(scanned(withKey)).toBe(1);
    expect(scanned(byId)).toBe(partitions);
  });

  it('keeps a row no partition covers in the default partition, and moves it when its partition is made', async () => {
    // A premade partition lost (dropped by hand): its rows land in the default partition.
    const ranges = (await timePartitions(db.pool)).filter((p) => !p.isDefault);
    const last = ranges.at(-1);
    if (!last?.from) throw new Error('no range partition');
    await db.pool.query(`DROP TABLE ${last.name}`);
    await db.pool.query(
      `INSERT INTO audit_log (id, time_started, request_id, request_uri, operation_id, source_ip, actor_kind)
       VALUES (gen_random_uuid(), $1::timestamptz + interval '1 hour', 'default-1', '/x', 'op', '10.0.0.1', 'unauthenticated')`,
      [last.from],
    );
    expect(await defaultPartitionRows(db.pool)).toBe(1);
    const seen = await readTimePartitions(db.pool, null, Date.now() + 120_000);
    expect(seen.layout === 'partitioned' && seen.defaultRows).toBe(1);

    const made = await createFuturePartitions(db.pool, silentLogger);
    expect(made).toEqual({ created: [last.name], moved: 1 });
    expect(await defaultPartitionRows(db.pool)).toBe(0);
    expect(await countTagged(db, 'default')).toBe(1);
    const { rows } = await db.pool.query(
      `SELECT tableoid::regclass::text AS t FROM audit_log WHERE request_id = 'default-1'`,
    );
    expect(rows[0].t).toBe(last.name);
  });

  it('stays partitioned when migrate is later run with the plain layout', async () => {
    const again = await migrate(db.url, silentLogger, { layout: 'plain' });
    expect(again.layout).toBe('partitioned');
    expect(await auditLogLayout(db.pool)).toBe('partitioned');
  });
});

describe('converting a plain table that holds rows', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('tp_convert', { layout: 'plain' });
    await seed(db.pool, { kind: 'completed', count: 20_000, tag: 'old' });
    await seed(db.pool, { kind: 'incomplete', count: 2_000, tag: 'stale', ageMs: 3 * 3_600_000 });
  });
  afterAll(() => db?.drop());

  it('keeps every row as it was, while an application writes throughout, and copies nothing', async () => {
    const before = await rowsDigest(db.pool, 'true');
    const store = new AuditLogStore(db.pool);
    let writing = true;
    const written: string[] = [];
    const failures: unknown[] = [];
    const writer = (async () => {
      while (writing) {
        await store.init({ ...entry, requestId: `during-${written.length}` }).then(
          (id) => written.push(id),
          (err) => failures.push(err),
        );
      }
    })();
    const result = await migrate(db.url, silentLogger, { layout: 'partitioned' });
    writing = false;
    await writer;

    expect(result.layout).toBe('partitioned');
    expect(failures).toEqual([]);
    expect(written.length).toBeGreaterThan(0);
    expect(await rowsDigest(db.pool, `request_id NOT LIKE 'during-%'`)).toEqual(before);
    expect(await countTagged(db, 'during')).toBe(written.length);
    // The old table is the legacy partition, holding every row it held: nothing was copied.
    const { rows } = await db.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM ONLY audit_log_legacy',
    );
    expect(rows[0]?.n).toBe(before.rows + written.length);
    const parts = await timePartitions(db.pool);
    expect(parts[0]).toMatchObject({ name: 'audit_log_legacy', from: null });
    // Its indexes are the four the parent has, adopted, not built a second time.
    const { rows: indexes } = await db.pool.query(
      `SELECT count(*)::int AS n FROM pg_index WHERE indrelid = 'audit_log_legacy'::regclass`,
    );
    expect(indexes[0].n).toBe(4);
  });

  it('sweeps the converted rows: every stale row timed out, nothing else touched', async () => {
    const completedBefore = await rowsDigest(db.pool, 'time_completed IS NOT NULL');
    for (let partition = 0; partition < 4; partition++) {
      const status = await sweepPartition(db.pool, {
        partition,
        partitions: 4,
        staleAfterMs: 3_600_000,
        chunkSize: 300,
        timeBudgetMs: 60_000,
      });
      expect(status.error).toBeUndefined();
      expect(status.drained).toBe(true);
    }
    const { rows } = await db.pool.query(
      `SELECT count(*) FILTER (WHERE result_kind = 'timeout')::int AS timed_out,
              count(*) FILTER (WHERE time_completed IS NULL)::int AS incomplete
         FROM audit_log WHERE request_id LIKE 'stale-%'`,
    );
    expect(rows[0]).toEqual({ timed_out: 2_000, incomplete: 0 });
    expect(
      await rowsDigest(db.pool, `time_completed IS NOT NULL AND request_id NOT LIKE 'stale-%'`),
    ).toEqual(completedBefore);
    // The application's young rows (written during the conversion) are not stale.
    expect(
      (
        await db.pool.query(
          `SELECT count(*)::int AS n FROM audit_log WHERE request_id LIKE 'during-%' AND time_completed IS NULL`,
        )
      ).rows[0].n,
    ).toBe(await countTagged(db, 'during'));
  });

  it("retention deletes the legacy partition's expired rows in chunks, and keeps the rest", async () => {
    const status = await deleteExpiredEntries(db.pool, {
      retentionMs: 10 * DAY,
      timeBudgetMs: 60_000,
      chunkSize: 2_000,
    });
    expect(status.error).toBeUndefined();
    expect(status.droppedPartitions).toEqual([]);
    const { rows } = await db.pool.query(
      `SELECT count(*) FILTER (WHERE time_completed < now() - interval '10 days')::int AS expired,
              count(*)::int AS kept FROM audit_log WHERE request_id LIKE 'old-%'`,
    );
    expect(rows[0].expired).toBe(0);
    expect(status.deleted).toBe(20_000 - rows[0].kept);
    expect(rows[0].kept).toBeGreaterThan(0);
  });
});

describe('retention on time partitions', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('tp_retention', partitionedLayout());
    // Partitions from 40 days back. Expired with RETENTION=30d: those that ended 30+ days ago.
    await insertAt(db, { tag: 'expired', startedDaysAgo: 38, completedDaysAgo: 38, count: 500 });
    await insertAt(db, { tag: 'expired', startedDaysAgo: 35, completedDaysAgo: 35, count: 500 });
    await insertAt(db, { tag: 'incomplete', startedDaysAgo: 36, completedDaysAgo: null });
    await insertAt(db, { tag: 'late', startedDaysAgo: 34, completedDaysAgo: 2 });
    await insertAt(db, { tag: 'kept', startedDaysAgo: 20, completedDaysAgo: 20, count: 100 });
  });
  afterAll(() => db?.drop());

  it('drops whole expired partitions, and holds back one with an incomplete row or a recent completion', async () => {
    const before = (await timePartitions(db.pool)).length;
    const status = await deleteExpiredEntries(db.pool, {
      retentionMs: 30 * DAY,
      timeBudgetMs: 60_000,
    });
    expect(status.error).toBeUndefined();
    expect(status.deleted).toBe(0);
    expect(status.droppedPartitions?.length).toBeGreaterThanOrEqual(8);
    expect(await countTagged(db, 'expired')).toBe(0);
    expect(await countTagged(db, 'incomplete')).toBe(1);
    expect(await countTagged(db, 'late')).toBe(1);
    expect(await countTagged(db, 'kept')).toBe(100);
    expect(status.heldBackPartitions?.map((h) => h.reason).sort()).toEqual([
      'incomplete_rows',
      'recent_completions',
    ]);
    expect((await timePartitions(db.pool)).length).toBe(
      before - (status.droppedPartitions?.length ?? 0),
    );

    // The overview says what holds them back.
    const seen = await readTimePartitions(db.pool, 30 * DAY);
    const text = describeTimePartitions(seen).heldBack.join('\n');
    expect(text).toMatch(/1 incomplete rows, which the sweeper must finalize first/);
    expect(text).toMatch(/within RETENTION/);
  });

  it("finishes a drop an earlier run left half done, and never drops an operator's own detached table", async () => {
    await db.pool.query('CREATE TABLE audit_log_expired_p19990101 (x int)');
    await db.pool.query('CREATE TABLE archive_2026_11_01 (LIKE audit_log)');
    await deleteExpiredEntries(db.pool, { retentionMs: 30 * DAY, timeBudgetMs: 60_000 });
    const { rows } = await db.pool.query(
      `SELECT to_regclass('audit_log_expired_p19990101') AS leftover, to_regclass('archive_2026_11_01') AS archive`,
    );
    expect(rows[0]).toEqual({ leftover: null, archive: 'archive_2026_11_01' });
  });

  it('drops the held-back partition once the sweeper has finalized its row (and it has expired)', async () => {
    // Finalized long ago, as if the sweeper had run on time; then it expires like the others.
    await db.pool.query(
      `UPDATE audit_log SET time_completed = now() - interval '31 days', result_kind = 'timeout'
        WHERE request_id LIKE 'incomplete-%'`,
    );
    const status = await deleteExpiredEntries(db.pool, {
      retentionMs: 30 * DAY,
      timeBudgetMs: 60_000,
    });
    expect(status.droppedPartitions).toHaveLength(1);
    expect(status.heldBackPartitions?.map((h) => h.reason)).toEqual(['recent_completions']);
    expect(await countTagged(db, 'incomplete')).toBe(0);
  });
});

describe('the sweep chunk on time partitions', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('tp_chunk', partitionedLayout());
    await seed(db.pool, { kind: 'completed', count: 30_000, tag: 'done' });
    // Stale rows over the last 10 days, one partition after another.
    await db.pool.query(
      `INSERT INTO audit_log (id, time_started, request_id, request_uri, operation_id, source_ip, actor_kind)
       SELECT gen_random_uuid(), now() - make_interval(hours => 2 + g % 240), 'stale-' || g, '/x', 'op', '10.0.0.1', 'unauthenticated'
         FROM generate_series(1, 5000) AS g`,
    );
    await db.pool.query('ANALYZE audit_log');
  });
  afterAll(() => db?.drop());

  it('joins the picked rows by key in a nested loop that visits one partition per row, with no hash join or sort', async () => {
    const cutoff = await staleCutoff(db.pool, { staleAfterMs: 3_600_000 });
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      const plan = await explain(client, 'ANALYZE, COSTS OFF', (q) =>
        finalizeStaleChunk(q, {
          cutoff,
          low: '00000000-0000-0000-0000-000000000000',
          high: 'ffffffff-ffff-ffff-ffff-ffffffffffff',
          limit: 1_000,
          layout: 'partitioned',
        }),
      );
      await client.query('ROLLBACK');
      const nodes = planNodes(plan);
      const types = nodes.map((n) => String(n['Node Type']));
      expect(types).not.toContain('Hash Join');
      expect(types).not.toContain('Merge Join');
      expect(types).not.toContain('Sort');
      expect(types).toContain('Nested Loop');
      // Run-time pruning: each partition's key lookup runs only for the rows it holds.
      const update = nodes.find((n) => n['Node Type'] === 'ModifyTable');
      expect(update?.['Actual Rows']).toBe(1_000);
      const lookups = nodes.filter(
        (n) =>
          n['Parent Relationship'] === 'Member' &&
          /Index Scan/.test(String(n['Node Type'])) &&
          String(n['Index Cond'] ?? '').includes('picked.id'),
      );
      const visits = lookups.reduce((sum, n) => sum + Number(n['Actual Loops']), 0);
      expect(visits).toBe(1_000);
    } finally {
      client.release();
    }
  });

  it('times out every stale row across the partitions and leaves the completed ones', async () => {
    const done = await rowsDigest(db.pool, `request_id LIKE 'done-%'`);
    const status = await sweepPartition(db.pool, {
      partition: 0,
      partitions: 1,
      staleAfterMs: 3_600_000,
      chunkSize: 700,
      timeBudgetMs: 60_000,
    });
    expect(status).toMatchObject({ finalized: 5_000, drained: true });
    expect(await rowsDigest(db.pool, `request_id LIKE 'done-%'`)).toEqual(done);
    expect(
      (await db.pool.query(`SELECT count(*)::int AS n FROM audit_log WHERE time_completed IS NULL`))
        .rows[0].n,
    ).toBe(0);
  });
});
