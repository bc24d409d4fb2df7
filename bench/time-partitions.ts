import { migrate } from '../src/db/migrate.ts';
import { createPool, type Pool } from '../src/db/pool.ts';
import { silentLogger } from '../src/log.ts';
import { AuditLogStore } from '../src/store/store.ts';
import { deleteExpiredEntries } from '../src/sweep/retention.ts';
import { sweepPartition } from '../src/sweep/sweep-partition.ts';
import { createTestDatabase, partitionedLayout, type TestDatabase } from '../test/support/db.ts';
import { median, quantile, round2, underApplicationLoad } from './support.ts';

/**
 * Issue 22's measure: the plain table against time partitions, side by side at the same size
 * (`rows` completed rows over 30 days of time_started, daily partitions), each on a database of
 * its own: the size of table and indexes, a sweep of `stale` stale rows, the API's first and
 * deep pages, the application's complete by id against by key, and retention removing the
 * oldest 10 days (chunked DELETE against dropping partitions) while an application writes at a
 * fixed rate, with its p99 against the same application idle.
 */

const DAY = 86_400_000;
const PAGE_CALLS = 30;
const COMPLETES = 500;

type LayoutFigures = {
  seed_s: number;
  size_before_mb: number;
  size_after_mb: number;
  sweep_ms: number;
  first_page_ms: number;
  deep_page_ms: number;
  complete_by_id_ms: number;
  complete_by_key_ms: number;
  retention_ms: number;
  retention_rows: number;
  retention_partitions: number;
  app_idle_p99_ms: number;
  app_p99_ms: number;
  app_p99_ratio: number;
  app_rate: number;
};

export async function measureTimePartitions(o: {
  rows: number;
  stale: number;
  rate: number;
  log: (line: string) => void;
  databases: TestDatabase[];
}) {
  const plain = await measureLayout('plain', o);
  const conversion = await measureConversion(plain.db, o);
  const partitioned = await measureLayout('partitioned', o);
  const ratio = (a: number, b: number) => round2(a / Math.max(b, 0.01));
  return {
    // > 1: dropping partitions is that many times faster than the chunked DELETE.
    tp_retention_speedup: ratio(plain.figures.retention_ms, partitioned.figures.retention_ms),
    // The application's p99 during retention (partitioned over plain, each against its idle).
    tp_retention_app_p99_ratio_plain: plain.figures.app_p99_ratio,
    tp_retention_app_p99_ratio_partitioned: partitioned.figures.app_p99_ratio,
    // < 1.2 is the target: partitioned over plain.
    tp_sweep_ratio: ratio(partitioned.figures.sweep_ms, plain.figures.sweep_ms),
    tp_first_page_ratio: ratio(partitioned.figures.first_page_ms, plain.figures.first_page_ms),
    tp_deep_page_ratio: ratio(partitioned.figures.deep_page_ms, plain.figures.deep_page_ms),
    // The old call shape (id alone) over the new (id and time_started), on time partitions.
    tp_complete_by_id_vs_key: ratio(
      partitioned.figures.complete_by_id_ms,
      partitioned.figures.complete_by_key_ms,
    ),
    // Converting the plain table (after its retention) while the application writes.
    tp_conversion_s: conversion.conversion_s,
    tp_conversion_app_max_ms: conversion.app_max_ms,
    time_partitions: {
      rows: o.rows,
      stale: o.stale,
      app_rate_target: o.rate,
      plain: plain.figures,
      partitioned: partitioned.figures,
      conversion,
    },
  };
}

async function measureLayout(
  layout: 'plain' | 'partitioned',
  o: {
    rows: number;
    stale: number;
    rate: number;
    log: (line: string) => void;
    databases: TestDatabase[];
  },
): Promise<{ figures: LayoutFigures; db: TestDatabase }> {
  const log = (line: string) => o.log(`time partitions (${layout}): ${line}`);
  const db = await createTestDatabase(
    `bench_tp_${layout}`,
    layout === 'partitioned' ? partitionedLayout() : { layout: 'plain' },
  );
  o.databases.push(db);
  log(`seeding ${o.rows} completed rows over 30 days and ${o.stale} stale ...`);
  let t = performance.now();
  await seedOverDays(db.pool, o.rows, o.stale);
  const seed_s = round2((performance.now() - t) / 1000);
  const size_before_mb = await sizeMb(db.pool);
  log(`seeded in ${seed_s} s, ${size_before_mb} MB with indexes`);

  t = performance.now();
  for (let partition = 0; partition < 16; partition++) {
    const s = await sweepPartition(db.pool, {
      partition,
      partitions: 16,
      staleAfterMs: 3_600_000,
      chunkSize: 5_000,
      timeBudgetMs: 3_600_000,
    });
    if (s.error) throw new Error(`sweep failed: ${s.error}`);
  }
  const sweep_ms = Math.round(performance.now() - t);
  log(`sweep of ${o.stale} stale rows: ${sweep_ms} ms`);

  const store = new AuditLogStore(db.pool);
  // Pages as the API serves them: from a pool like the API's (generic plans, see listCompleted).
  const apiPool = createPool(db.url, silentLogger, { max: 1, genericPlans: true });
  const api = new AuditLogStore(apiPool);
  const first_page_ms = await timedMedian(() =>
    api.list({ startTime: new Date(Date.now() - 40 * DAY), order: 'descending', limit: 100 }),
  );
  // Deep: a page in the middle of the month, found by its time range as a client pages there.
  const deepStart = new Date(Date.now() - 16 * DAY);
  const deep_page_ms = await timedMedian(() =>
    api.list({ startTime: deepStart, endTime: new Date(deepStart.getTime() + DAY), limit: 100 }),
  );
  await apiPool.end();
  log(`first page ${first_page_ms} ms, deep page ${deep_page_ms} ms (median of ${PAGE_CALLS})`);

  const keys = await Promise.all(
    Array.from({ length: 2 * COMPLETES }, (_, i) =>
      store.begin({
        requestId: `c-${i}`,
        requestUri: '/x',
        operationId: 'op',
        sourceIp: '10.0.0.9',
        actor: { kind: 'unauthenticated' },
      }),
    ),
  );
  const completeEach = async (
    call: (k: (typeof keys)[number]) => Promise<unknown>,
    ks: typeof keys,
  ) => {
    const ms: number[] = [];
    for (const k of ks) {
      const s = performance.now();
      await call(k);
      ms.push(performance.now() - s);
    }
    return round2(median(ms));
  };
  const complete_by_id_ms = await completeEach(
    (k) => store.complete(k.id, { kind: 'success', httpStatusCode: 200 }),
    keys.slice(0, COMPLETES),
  );
  const complete_by_key_ms = await completeEach(
    (k) => store.complete(k, { kind: 'success', httpStatusCode: 200 }),
    keys.slice(COMPLETES),
  );
  log(
    `complete by id ${complete_by_id_ms} ms, by key ${complete_by_key_ms} ms (median of ${COMPLETES})`,
  );

  await db.pool.query('VACUUM ANALYZE audit_log');
  const app = { rate: o.rate, clients: 4 };
  const idle = await underApplicationLoad(
    store,
    app,
    () => new Promise((r) => setTimeout(r, 5_000)),
  );
  const app_idle_p99_ms = round2(quantile(idle.latencies, 0.99));
  // RETENTION=20d removes the oldest 10 of the 30 days.
  let status: Awaited<ReturnType<typeof deleteExpiredEntries>> | undefined;
  const during = await underApplicationLoad(store, app, async () => {
    status = await deleteExpiredEntries(db.pool, {
      retentionMs: 20 * DAY,
      timeBudgetMs: 24 * 3_600_000,
      logger: silentLogger,
    });
  });
  if (!status || status.error) throw new Error(`retention failed: ${status?.error}`);
  const app_p99_ms = round2(quantile(during.latencies, 0.99));
  const size_after_mb = await sizeMb(db.pool);
  const figures: LayoutFigures = {
    seed_s,
    size_before_mb,
    size_after_mb,
    sweep_ms,
    first_page_ms,
    deep_page_ms,
    complete_by_id_ms,
    complete_by_key_ms,
    retention_ms: Math.round(during.ms),
    retention_rows: status.deleted,
    retention_partitions: status.droppedPartitions?.length ?? 0,
    app_idle_p99_ms,
    app_p99_ms,
    app_p99_ratio: round2(app_p99_ms / app_idle_p99_ms),
    app_rate: round2(during.appRate),
  };
  log(
    `retention of 10 days: ${figures.retention_ms} ms (${figures.retention_rows} rows deleted, ${figures.retention_partitions} partitions dropped); app p99 ${app_p99_ms} ms against ${app_idle_p99_ms} idle, ${figures.app_rate} ops/s of ${o.rate}; ${size_after_mb} MB after`,
  );
  return { figures, db };
}

/**
 * The documented path for an existing log: `migrate` with AUDIT_LOG_LAYOUT=partitioned on the
 * plain table as it is, while the application writes; its duration and the slowest write.
 */
async function measureConversion(
  db: TestDatabase,
  o: { rate: number; log: (line: string) => void },
) {
  const store = new AuditLogStore(db.pool);
  const during = await underApplicationLoad(store, { rate: o.rate, clients: 4 }, () =>
    migrate(db.url, silentLogger, { layout: 'partitioned' }),
  );
  const figures = {
    conversion_s: round2(during.ms / 1000),
    app_p99_ms: round2(quantile(during.latencies, 0.99)),
    app_max_ms: round2(Math.max(...during.latencies)),
    app_rate: round2(during.appRate),
  };
  o.log(
    `time partitions: converting the plain table took ${figures.conversion_s} s; the application's p99 ${figures.app_p99_ms} ms, slowest ${figures.app_max_ms} ms, ${figures.app_rate} ops/s of ${o.rate}`,
  );
  return figures;
}

/**
 * `rows` completed rows spread evenly over the last 30 days of time_started (each completed
 * within two seconds), a million per statement; then `stale` incomplete rows started 2 to 48
 * hours ago; then VACUUM ANALYZE.
 */
async function seedOverDays(pool: Pool, rows: number, stale: number) {
  const BATCH = 1_000_000;
  for (let done = 0; done < rows; done += BATCH) {
    await pool.query(
      `INSERT INTO audit_log (id, time_started, time_completed, result_kind, http_status_code,
         request_id, request_uri, operation_id, source_ip, user_agent, actor_kind)
       SELECT gen_random_uuid(), ts, ts + make_interval(secs => (g % 2000)::float8 / 1000),
              'success', 200, 'done-' || g, '/v1/projects/p' || (g % 97), 'project_view',
              ('10.' || (g % 250) || '.0.1')::inet, 'oxide-cli/1.0', 'unauthenticated'
         FROM generate_series($1::bigint, $2::bigint) AS g,
              LATERAL (SELECT now() - interval '2 days' - make_interval(secs => (g::float8 / $3) * 28 * 86400)) AS t(ts)`,
      [done + 1, Math.min(rows, done + BATCH), rows],
    );
  }
  await pool.query(
    `INSERT INTO audit_log (id, time_started, request_id, request_uri, operation_id, source_ip, actor_kind)
     SELECT gen_random_uuid(), now() - make_interval(secs => 7200 + (g % 165600)), 'stale-' || g, '/x', 'op', '10.0.0.2', 'unauthenticated'
       FROM generate_series(1, $1::int) AS g`,
    [stale],
  );
  await pool.query('VACUUM ANALYZE audit_log');
}

/** Table and index size of the whole log (every partition), in MB. */
async function sizeMb(pool: Pool): Promise<number> {
  const { rows } = await pool.query<{ mb: number }>(
    `SELECT (COALESCE((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('audit_log')),
                      pg_total_relation_size('audit_log')) / 1048576.0)::float8 AS mb`,
  );
  return Math.round(rows[0]?.mb ?? 0);
}

async function timedMedian(call: () => Promise<unknown>): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < PAGE_CALLS; i++) {
    const t = performance.now();
    await call();
    ms.push(performance.now() - t);
  }
  return round2(median(ms));
}
