/**
 * `npm run bench` (`-- --quick` for a small version in under 2 minutes): the sweeper measured
 * side by side with its baselines in one run on this machine, alternating the sides, medians of
 * several rounds. Human-readable lines first; the very last line is one JSON object (also written
 * to test-artifacts/bench.json). A missed target is reported, not an error: the exit code is
 * non-zero only when the benchmark itself fails.
 *
 * 1. drain_ratio: one UPDATE of every stale row / a sweep through the queue (2 worker processes,
 *    default settings), timed end to end from the sweep request to the run's summary. >= 1.2
 * 2. writer_p99_ratio: an application's init+complete p99 during the product's drain / on an
 *    idle table; writer_p99_ratio_single_update the same during the single UPDATE.
 * 3. idle_ratio: a full run with nothing stale at the big size / at the small size, in time
 *    (idle_ratio) and in buffers its chunks touch (idle_buffers_ratio, EXPLAIN). <= 1.2
 * 4. worker_rss_mb: peak RSS of a worker draining every row of the drain database, and rss_ratio
 *    against draining its stale rows only (1M vs 100k rows). < 200 MB, <= 1.2
 * 5. detection_latency_s: with SWEEP_EVERY=1s, from a row crossing the cutoff to its finalization,
 *    median over several rows. <= SWEEP_EVERY + 1 s
 * 6. The audit-log API under load (bench/api-load.ts): api_p50_ms, api_p99_ms, api_errors and
 *    readyz_failures for 2000 requests at 50 concurrent on 1M completed rows. 0, 0, < 100 ms
 * 8. Impact (bench/impact.ts, issue 18): an application at a fixed 300 ops/s (4 connections,
 *    init then complete) while 1, 2, 4 worker processes drain with defaults, once one UPDATE,
 *    once 4 workers with the throttle and cap off. impact_p99_ratio_w1/_w4 <= 5 (writers' p99
 *    over idle), impact_drain_vs_update_w4 <= 3, impact_off_update_vs_drain_w4 >= 1.2.
 *    BENCH_ONLY=impact runs this part alone.
 * 7. Gentleness (bench/gentle.ts): writer p99 during a full-speed drain and during drains paced
 *    at a half and a quarter of the full-speed rate, over idle (paced_writer_p99_ratio <= 2),
 *    and each drain's rate.
 * 9. Time partitions (bench/time-partitions.ts, issue 22): the plain table and daily time
 *    partitions side by side, 10M rows over 30 days each (300k quick): retention of the oldest
 *    10 days, chunked DELETE against dropped partitions, under an application at 200 ops/s
 *    (tp_retention_speedup >= 100, the partitioned side's app p99 over idle <= 1.5); a sweep of
 *    100k stale rows, the API's first and deep pages (partitioned over plain, each <= 1.2); and
 *    complete by id against by key. BENCH_ONLY=time-partitions runs this part alone.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { AuditLogStore } from '../src/store/store.ts';
import { createTestDatabase, type TestDatabase } from '../test/support/db.ts';
import { runApiLoadBench } from './api-load.ts';
import { measureGentle } from './gentle.ts';
import { measureIdle } from './idle.ts';
import { measureImpact } from './impact.ts';
import {
  MAINTENANCE,
  median,
  quantile,
  resetStale,
  round2,
  seedRows,
  singleUpdate,
  spread,
  startWorkers,
  writeDuring,
  writeUntil,
} from './support.ts';
import { measureTimePartitions } from './time-partitions.ts';

const QUICK = process.argv.includes('--quick');
const env = (name: string, full: number, quick: number) =>
  Number(process.env[name] ?? (QUICK ? quick : full));
const ROWS = env('BENCH_ROWS', 1_000_000, 100_000);
const STALE = env('BENCH_STALE', 100_000, 10_000);
const ROUNDS = env('BENCH_ROUNDS', 5, 3);
const IDLE_BIG = env('BENCH_IDLE_BIG', 10_000_000, 500_000);
const IDLE_SMALL = env('BENCH_IDLE_SMALL', 100_000, 10_000);
const DETECTION_ROWS = env('BENCH_DETECTION_ROWS', 8, 4);
const WORKERS = 2;

const log = (line: string) => console.log(line);
const databases: TestDatabase[] = [];
const cleanups: (() => Promise<void>)[] = [];

async function drainAndWriters() {
  const db = await createTestDatabase('bench_drain');
  databases.push(db);
  log(`drain: seeding ${ROWS} rows, ${STALE} stale ...`);
  await seedRows(db.pool, ROWS, STALE);
  // The maintenance-window drain (throttle and cap off) against the single UPDATE; what the
  // defaults cost the application is measured by bench/impact.ts.
  const workers = await startWorkers(db.url, WORKERS, MAINTENANCE);
  cleanups.push(workers.close);
  const product = async () => {
    const { ms, summary } = await workers.sweep();
    if (summary.finalized !== STALE)
      throw new Error(`the run finalized ${summary.finalized} rows, expected ${STALE}`);
    return ms;
  };
  // Not timed or checked: opens the workers' pools, and lets the run of the first scheduled tick
  // (a worker fires one at start) finish; every round resets the backlog before its side.
  await workers.sweep();
  const single: number[] = [];
  const sweeps: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const sides = [
      async () => single.push(await singleUpdate(db.pool)),
      async () => sweeps.push(await product()),
    ];
    if (round % 2) sides.reverse();
    for (const side of sides) {
      await resetStale(db.pool);
      await side();
    }
    log(
      `drain round ${round + 1}: single UPDATE ${Math.round(single.at(-1) ?? 0)} ms, sweep ${Math.round(sweeps.at(-1) ?? 0)} ms`,
    );
  }
  log(`drain: single UPDATE ${spread(single)}; sweep ${spread(sweeps)} (request to summary)`);

  // Writers: idle, during the sweep, during the single UPDATE, in rotating order.
  const store = new AuditLogStore(db.pool);
  const idleFor = Math.max(1_000, median(sweeps));
  const lat = { idle: [] as number[], sweep: [] as number[], single: [] as number[] };
  const writerRounds = Math.max(2, Math.ceil(ROUNDS / 2));
  for (let round = 0; round < writerRounds; round++) {
    const sides = [
      async () => {
        const until = performance.now() + idleFor;
        lat.idle.push(...(await writeUntil(store, () => performance.now() > until)));
      },
      async () => lat.sweep.push(...(await writeDuring(store, product))),
      async () => lat.single.push(...(await writeDuring(store, () => singleUpdate(db.pool)))),
    ];
    for (let i = 0; i < sides.length; i++) {
      await resetStale(db.pool);
      await sides[(i + round) % sides.length]?.();
    }
  }
  const p99 = (xs: number[]) => quantile(xs, 0.99);
  for (const [side, xs] of Object.entries(lat))
    log(
      `writers, ${side}: p50 ${quantile(xs, 0.5).toFixed(1)} ms, p99 ${p99(xs).toFixed(1)} ms (${xs.length} writes)`,
    );
  await workers.close();
  return {
    db,
    result: {
      drain_ratio: round2(median(single) / median(sweeps)),
      single_update_ms: Math.round(median(single)),
      sweep_ms: Math.round(median(sweeps)),
      writer_p99_ratio: round2(p99(lat.sweep) / p99(lat.idle)),
      writer_p99_ratio_single_update: round2(p99(lat.single) / p99(lat.idle)),
      writer_p99_ms: {
        idle: round2(p99(lat.idle)),
        sweep: round2(p99(lat.sweep)),
        single_update: round2(p99(lat.single)),
      },
    },
  };
}

/** Peak worker RSS draining STALE rows, then every row (fresh workers each time). */
async function rss(db: TestDatabase) {
  const peak = async (all: boolean) => {
    const workers = await startWorkers(db.url, WORKERS);
    try {
      // A worker's scheduler fires a first tick at start; let that run finish before the backlog
      // is made, so the measured run is the one that drains it.
      await workers.sweep();
      await resetStale(db.pool, all);
      const { summary } = await workers.sweep();
      const expected = all ? ROWS : STALE;
      if (summary.finalized !== expected)
        throw new Error(`the run finalized ${summary.finalized} rows, expected ${expected}`);
      return workers.peakRssMb();
    } finally {
      await workers.close();
    }
  };
  const small = await peak(false);
  const big = await peak(true);
  log(
    `worker peak RSS: ${Math.round(small)} MB draining ${STALE} rows, ${Math.round(big)} MB draining ${ROWS}`,
  );
  return { worker_rss_mb: Math.round(big), rss_ratio: round2(big / small) };
}

/** With SWEEP_EVERY=1s: from a row crossing its cutoff to its finalization, by the database clock. */
async function detection(db: TestDatabase) {
  const staleAfterS = 2;
  const workers = await startWorkers(db.url, WORKERS, {
    SWEEP_EVERY: '1s',
    STALE_AFTER: `${staleAfterS}s`,
  });
  try {
    const store = new AuditLogStore(db.pool);
    const ids: string[] = [];
    for (let i = 0; i < DETECTION_ROWS; i++) {
      ids.push(
        await store.init({
          requestId: `lost-${i}`,
          requestUri: '/v1/disks',
          operationId: 'disk_create',
          sourceIp: '10.0.0.9',
          actor: { kind: 'unauthenticated' },
        }),
      );
      await new Promise((r) => setTimeout(r, 1_000 / 3)); // spread over the schedule's phase
    }
    const deadline = performance.now() + 60_000;
    for (;;) {
      const { rows } = await db.pool.query(
        `SELECT extract(epoch FROM time_completed - time_started)::float8 - $2 AS latency
           FROM audit_log WHERE id = ANY($1::uuid[]) AND time_completed IS NOT NULL`,
        [ids, staleAfterS],
      );
      if (rows.length === ids.length) {
        const latencies = rows.map((r) => r.latency as number);
        log(`detection latency (SWEEP_EVERY=1s): ${spread(latencies.map((s) => s * 1000))}`);
        return { detection_latency_s: round2(median(latencies)) };
      }
      if (performance.now() > deadline)
        throw new Error(`only ${rows.length} of ${ids.length} lost rows finalized within 60 s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await workers.close();
  }
}

/** Issue 18: the application's writers while 1, 2, 4 workers drain with defaults (impact.ts). */
const impact = () =>
  measureImpact({
    rows: env('BENCH_IMPACT_ROWS', 3_000_000, 200_000),
    stale: env('BENCH_IMPACT_STALE', 1_000_000, 100_000),
    rate: env('BENCH_IMPACT_RATE', 300, 300),
    clients: 4,
    log,
    cleanups,
    databases,
  });

const timePartitions = () =>
  measureTimePartitions({
    rows: env('BENCH_TP_ROWS', 10_000_000, 300_000),
    stale: env('BENCH_TP_STALE', 100_000, 20_000),
    rate: env('BENCH_TP_RATE', 200, 200),
    log,
    databases,
  });

async function main() {
  const started = performance.now();
  const only = { impact, 'time-partitions': timePartitions }[process.env.BENCH_ONLY ?? ''];
  if (only) {
    const result = { quick: QUICK, ...(await only()) };
    console.log(JSON.stringify(result));
    return;
  }
  log(
    `audit-sweeper bench${QUICK ? ' --quick' : ''}: ${WORKERS} worker processes, default settings`,
  );
  const drain = await drainAndWriters();
  const idle = await measureIdle({
    small: IDLE_SMALL,
    big: IDLE_BIG,
    rounds: Math.max(ROUNDS, 7), // an idle run takes a fraction of a second: more rounds, less noise
    workers: WORKERS,
    log,
    databases,
  });
  // Gentleness (bench/gentle.ts): writers during full-speed and paced drains, on the drain db.
  await resetStale(drain.db.pool);
  const gentle = await measureGentle({
    pool: drain.db.pool,
    databaseUrl: drain.db.url,
    stale: STALE,
    rounds: QUICK ? 2 : 3,
    reset: () => resetStale(drain.db.pool),
    log,
  });
  const memory = await rss(drain.db);
  const latency = await detection(drain.db);
  const api = await runApiLoadBench({
    rows: env('BENCH_API_ROWS', 1_000_000, 100_000),
    requests: env('BENCH_API_REQUESTS', 2_000, 500),
    rounds: QUICK ? 1 : ROUNDS,
    log,
  });
  const impacted = await impact();
  const partitioned = await timePartitions();
  const result = {
    quick: QUICK,
    rows: ROWS,
    stale: STALE,
    rounds: ROUNDS,
    ...drain.result,
    ...gentle,
    ...idle,
    ...memory,
    ...latency,
    ...api,
    ...impacted,
    ...partitioned,
    missed: [] as string[],
    seconds: Math.round((performance.now() - started) / 1000),
  };
  const targets: [string, boolean][] = [
    ['drain_ratio >= 1.2', result.drain_ratio >= 1.2],
    [
      'writer_p99_ratio <= writer_p99_ratio_single_update',
      result.writer_p99_ratio <= result.writer_p99_ratio_single_update,
    ],
    ['paced_writer_p99_ratio <= 2', result.paced_writer_p99_ratio <= 2],
    ['idle_ratio <= 1.2', result.idle_ratio <= 1.2],
    ['idle_buffers_ratio <= 1.2', result.idle_buffers_ratio <= 1.2],
    ['worker_rss_mb < 200', result.worker_rss_mb < 200],
    ['rss_ratio <= 1.2', result.rss_ratio <= 1.2],
    ['detection_latency_s <= 2', result.detection_latency_s <= 2],
    ['api_errors == 0', result.api_errors === 0],
    ['readyz_failures == 0', result.readyz_failures === 0],
    ['api_p99_ms < 100', result.api_p99_ms < 100],
    ['impact_p99_ratio_w1 <= 5', result.impact_p99_ratio_w1 <= 5],
    ['impact_p99_ratio_w4 <= 5', result.impact_p99_ratio_w4 <= 5],
    ['impact_drain_vs_update_w4 <= 3', result.impact_drain_vs_update_w4 <= 3],
    ['impact_off_update_vs_drain_w4 >= 1.2', result.impact_off_update_vs_drain_w4 >= 1.2],
    ['tp_retention_speedup >= 100', result.tp_retention_speedup >= 100],
    [
      'tp_retention_app_p99_ratio_partitioned <= 1.5',
      result.tp_retention_app_p99_ratio_partitioned <= 1.5,
    ],
    ['tp_sweep_ratio <= 1.2', result.tp_sweep_ratio <= 1.2],
    ['tp_first_page_ratio <= 1.2', result.tp_first_page_ratio <= 1.2],
    ['tp_deep_page_ratio <= 1.2', result.tp_deep_page_ratio <= 1.2],
  ];
  result.missed = targets.filter(([, met]) => !met).map(([target]) => target);
  log(result.missed.length ? `missed targets: ${result.missed.join('; ')}` : 'every target met');
  mkdirSync('test-artifacts', { recursive: true });
  writeFileSync('test-artifacts/bench.json', `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result));
}

try {
  await main();
} finally {
  for (const cleanup of cleanups) await cleanup().catch(() => {});
  for (const db of databases) await db.drop().catch(() => {});
}
