/**
 * `npm run chaos`: every fault at once against the real processes, then the invariants.
 * See README "Chaos run". Usage: npm run chaos -- [--seed N] [--duration 100s|30m] [--workers N]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import pg from 'pg';
import { createRandom } from '../../src/simulate/operations.ts';
import { runCli } from '../support/cli.ts';
import { freePort, startPrivatePostgres, startPrivateRedis } from '../support/private-servers.ts';
import { rowsDigest, seed } from '../support/seed.ts';
import { finalizingTransactions, installAuditTrail } from './audit-trail.ts';
import { createInjector } from './faults.ts';
import { rssMb, startFleet, type WorkerProcess } from './fleet.ts';
import {
  type Check,
  checkCompletedUntouched,
  checkCutoff,
  checkFinalizedOnce,
  checkReader,
  checkTableRules,
  checkWriters,
} from './invariants.ts';
import { startProxy } from './proxy.ts';
import { buildSchedule, parseArgs } from './schedule.ts';
import { attribute, chunksOutsideLocks, loggedIntervals, overlaps } from './sweep-intervals.ts';
import { basic, startReader, startWriters } from './traffic.ts';

/** Short times, so a few minutes hold many sweeps, lock expiries and takeovers. */
const SETTINGS = {
  STALE_AFTER: '5s',
  SWEEP_EVERY: '2s',
  SWEEP_LOCK_TTL: '3s',
  SWEEP_CHUNK_SIZE: '500',
  SWEEP_TIME_BUDGET: '1s',
  SWEEP_ATTEMPTS: '3',
  SWEEP_CONCURRENCY: '2',
  LIST_SAFETY_MARGIN: '5s',
  LOG_LEVEL: 'info',
};
const STALE_AFTER_MS = 5_000;
const LOCK_TTL_MS = 3_000;
const MARGIN_MS = 5_000;
const PARTITIONS = 16;
const BACKLOG = 200_000;
const COMPLETED = 100_000;
/** After the last fault heals, every row must be final within this (README states it). */
const DRAIN_BOUND_MS = 90_000;
const RSS_BOUND_MB = 400;
const REDIS_KEYS_BOUND = 20_000;

const o = parseArgs(process.argv.slice(2));
const t0 = Date.now();
const say = (msg: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);
say(
  `chaos: seed ${o.seed}, fault phase ${o.durationMs / 1000}s, ${o.workers} workers (replay: npm run chaos -- --seed ${o.seed}${o.durationMs !== 100_000 ? ` --duration ${o.durationMs / 1000}s` : ''})`,
);

const redis = await startPrivateRedis();
const postgres = await startPrivatePostgres({ maxConnections: 150, durableCommits: true });
const cleanup = async () => {
  await Promise.allSettled([redis.destroy(), postgres.destroy()]);
};
let exitCode = 1;
try {
  exitCode = await main();
} catch (err) {
  console.error(err);
  console.log('violations: 1 (the run itself failed)');
} finally {
  await cleanup();
}
process.exit(exitCode);

async function main(): Promise<number> {
  const database = 'chaos';
  const migrated = await runCli(['migrate'], {
    DATABASE_URL: postgres.url(database),
    LOG_LEVEL: 'warn',
  });
  if (migrated.code !== 0) throw new Error(`migrate failed: ${migrated.output}`);
  const admin = new pg.Pool({ connectionString: postgres.url(database), max: 4 });
  admin.on('error', () => {});
  await installAuditTrail(admin);
  await seed(admin, { kind: 'completed', count: COMPLETED, tag: 'done' });
  await seed(admin, { kind: 'incomplete', count: BACKLOG, tag: 'stale' });
  await admin.query('ANALYZE audit_log');
  const before = await rowsDigest(admin, "request_id LIKE 'done-%'");
  say(`seeded ${BACKLOG} stale and ${COMPLETED} completed rows`);

  const password = 'chaos-password';
  const fleet = await startFleet({
    workers: o.workers,
    partitions: PARTITIONS,
    redisPort: redis.port,
    pgPort: postgres.port,
    database,
    password,
    dashboardPort: await freePort(),
    env: SETTINGS,
  });
  say(`fleet up: ${o.workers} workers, dashboard at ${fleet.dashboardUrl}`);
  const http = { url: fleet.dashboardUrl, auth: basic('admin', password) };

  const writersPg = await startProxy('writers-pg', postgres.port);
  const writerPool = new pg.Pool({
    connectionString: `postgres://postgres@127.0.0.1:${writersPg.port}/${database}`,
    max: 10,
    connectionTimeoutMillis: 5_000,
  });
  writerPool.on('error', () => {});
  const random = createRandom(o.seed ^ 0x5eed);
  const writers = startWriters(writerPool, {
    ratePerSecond: 40,
    staleAfterMs: STALE_AFTER_MS,
    random,
  });
  const reader = startReader(http);

  // Memory of every worker and Redis's key count, every 2 s.
  const keyCounter = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 500 });
  keyCounter.on('error', () => {});
  const samples = { maxKeys: 0, lastKeys: 0, maxDashboardRss: 0, totalRss: [] as number[] };
  const sampler = setInterval(async () => {
    let total = 0;
    for (const w of fleet.all) {
      const mb = fleet.alive(w) ? rssMb(w.cli.child.pid) : undefined;
      if (mb !== undefined) {
        w.maxRssMb = Math.max(w.maxRssMb, mb);
        total += mb;
      }
    }
    samples.totalRss.push(total);
    samples.maxDashboardRss = Math.max(
      samples.maxDashboardRss,
      rssMb(fleet.dashboard.child.pid) ?? 0,
    );
    const keys = await keyCounter.dbsize().catch(() => undefined);
    if (keys !== undefined) {
      samples.maxKeys = Math.max(samples.maxKeys, keys);
      samples.lastKeys = keys;
    }
  }, 2_000);

  const injector = createInjector({
    fleet,
    redis,
    postgres,
    admin,
    extraProxies: [writersPg],
    http,
    lockTtlMs: LOCK_TTL_MS,
  });
  const schedule = buildSchedule(o, LOCK_TTL_MS);
  say(`fault phase: ${schedule.length} scheduled events`);
  const phaseStart = Date.now();
  const timeline: { at: number; fault: unknown }[] = [];
  const running = schedule.map(async (e) => {
    await sleep(Math.max(0, phaseStart + e.at - Date.now()));
    timeline.push({ at: Date.now(), fault: e.fault });
    await injector
      .inject(e.fault)
      .catch((err) => console.error(`fault ${e.fault.kind} failed:`, err));
  });
  const progress = setInterval(() => {
    const k = injector.counts.get('SIGKILL of a worker') ?? 0;
    say(`… ${writers.ops.length} writes, reader at ${reader.seen.length}, ${k} kills`);
  }, 15_000);
  await Promise.all(running);
  clearInterval(progress);
  const lastFault = injector.lastHealedAt();
  say('fault phase over; stopping writers (late completions finish)');
  await writers.stop();
  const writersStopped = Date.now();

  // Drain: every row final, measured from the last fault's healing.
  let drainedAt: number | null = null;
  while (Date.now() - lastFault < DRAIN_BOUND_MS + 30_000) {
    const left = await admin
      .query('SELECT count(*)::int AS n FROM audit_log WHERE time_completed IS NULL')
      .then(
        (r) => r.rows[0].n as number,
        () => -1,
      );
    if (left === 0) {
      drainedAt = Date.now();
      break;
    }
    await sleep(500);
  }
  say(
    drainedAt
      ? `drained ${((drainedAt - lastFault) / 1000).toFixed(1)}s after the last fault`
      : 'NOT drained',
  );

  // The reader catches up once the last completion is older than the safety margin.
  const lastCompletion = await admin
    .query('SELECT extract(epoch FROM max(time_completed)) * 1000 AS t FROM audit_log')
    .then((r) => Number(r.rows[0].t));
  const readerDeadline = Date.now() + 60_000;
  while (Date.now() < readerDeadline && reader.caughtUpAt() < lastCompletion + MARGIN_MS + 1_000)
    await sleep(500);
  await reader.stop();
  clearInterval(sampler);
  keyCounter.disconnect();
  await fleet.stop();
  say('processes stopped; checking');

  // Sweep intervals per partition, from worker logs and the audit trail's transactions.
  const txs = await finalizingTransactions(admin);
  const logged = fleet.all.flatMap(loggedIntervals);
  const chunksByWorker = new Map<WorkerProcess, typeof txs>();
  let unattributed = 0;
  for (const tx of txs.filter((t) => t.kind === 'timeout')) {
    const w = attribute(tx, fleet.slots, fleet.all);
    if (!w) unattributed += 1;
    else chunksByWorker.set(w, [...(chunksByWorker.get(w) ?? []), tx]);
  }
  const outside = fleet.all.flatMap((w) =>
    chunksOutsideLocks(
      logged.filter((i) => i.worker === w),
      chunksByWorker.get(w) ?? [],
      LOCK_TTL_MS,
    ).map((tx) => ({ worker: w, tx })),
  );
  const found = overlaps(logged, injector.redisRestarts);
  const byExcuse = new Map<string, number>();
  for (const x of found) {
    const k = x.excuse ?? 'UNEXPLAINED';
    byExcuse.set(k, (byExcuse.get(k) ?? 0) + 1);
  }
  const unexplained = found.filter((x) => x.excuse === null);
  const overlapCheck: Check = {
    name: 'no two sweeps of one partition at once',
    checked: logged.length + txs.length,
    violations: unexplained.length + outside.length,
    notes: [
      `${logged.length} lock holdings from logs (${logged.filter((i) => i.cutByKill).length} cut by SIGKILL), ${txs.length} finalizing transactions (${unattributed} sweep chunks unattributed)`,
      `sweep chunks outside their worker's lock holdings: ${outside.length}`,
      ...outside
        .slice(0, 3)
        .map(
          ({ worker, tx }) =>
            `${worker.name}: tx ${tx.txid} [${tx.start}, ${tx.end}] ids ${tx.minId}..${tx.maxId}`,
        ),
      `overlaps: ${found.length ? [...byExcuse].map(([k, v]) => `${v} ${k}`).join('; ') : 'none'}`,
      ...unexplained
        .slice(0, 3)
        .map(
          (x) =>
            `${x.a.partition}-of-${x.a.partitions}: ${x.a.worker.name} [${x.a.start}, ${x.a.end}]${x.a.cutByKill ? ' (killed)' : ''} and ${x.b.worker.name} [${x.b.start}, ${x.b.end}] overlap ${x.ms} ms`,
        ),
    ],
  };

  const maxRss = Math.max(...fleet.all.map((w) => w.maxRssMb));
  const third = Math.max(1, Math.floor(samples.totalRss.length / 3));
  const checks: Check[] = [
    await checkFinalizedOnce(admin, STALE_AFTER_MS),
    await checkCompletedUntouched(admin, before),
    await checkTableRules(admin),
    await checkCutoff(admin, STALE_AFTER_MS),
    await checkWriters(admin, writers.ops),
    await checkReader(admin, reader.seen),
    overlapCheck,
    {
      name: `backlog drained within ${DRAIN_BOUND_MS / 1000}s of the last fault`,
      checked: 1,
      violations: drainedAt !== null && drainedAt - lastFault <= DRAIN_BOUND_MS ? 0 : 1,
      notes: [
        drainedAt
          ? `${((drainedAt - lastFault) / 1000).toFixed(1)}s (writers stopped ${((writersStopped - lastFault) / 1000).toFixed(1)}s after it)`
          : 'never drained',
      ],
    },
    {
      name: `memory and Redis keys bounded (${RSS_BOUND_MB} MB, ${REDIS_KEYS_BOUND} keys)`,
      checked: fleet.all.length,
      violations: (maxRss > RSS_BOUND_MB ? 1 : 0) + (samples.maxKeys > REDIS_KEYS_BOUND ? 1 : 0),
      notes: [
        `worker RSS max ${maxRss.toFixed(0)} MB (dashboard ${samples.maxDashboardRss.toFixed(0)} MB); all workers together: first third avg ${avg(samples.totalRss.slice(0, third)).toFixed(0)} MB, last third ${avg(samples.totalRss.slice(-third)).toFixed(0)} MB`,
        `Redis keys max ${samples.maxKeys}, at the end ${samples.lastKeys}`,
      ],
    },
  ];
  // What a failing run needs for its post-mortem: every process's log, the faults, the overlaps.
  const artifacts = join('test-artifacts', 'chaos', String(o.seed));
  mkdirSync(artifacts, { recursive: true });
  for (const w of fleet.all) writeFileSync(join(artifacts, `${w.name}.log`), w.cli.output());
  writeFileSync(join(artifacts, 'dashboard.log'), fleet.dashboard.output());
  const brief = (i: (typeof found)[number]['a']) => ({ ...i, worker: i.worker.name });
  writeFileSync(
    join(artifacts, 'run.json'),
    JSON.stringify(
      {
        seed: o.seed,
        timeline,
        redisRestarts: injector.redisRestarts,
        workers: fleet.all.map((w) => ({ ...w, cli: undefined, pid: w.cli.child.pid })),
        overlaps: found.map((x) => ({ ...x, a: brief(x.a), b: brief(x.b) })),
        chunksOutsideLocks: outside.map(({ worker, tx }) => ({ worker: worker.name, ...tx })),
        sweepChunks: [...chunksByWorker].map(([w, list]) => ({
          worker: w.name,
          chunks: list.map((t) => [t.start, t.end, t.rows, t.minId.slice(0, 8)]),
        })),
      },
      null,
      1,
    ),
  );
  await admin.end();
  await writerPool.end();
  await writersPg.close();

  console.log('\nfaults and actions injected');
  for (const [k, v] of [...injector.counts].sort()) console.log(`  ${String(v).padStart(7)}  ${k}`);
  console.log('action outcomes (HTTP status)');
  console.log(
    `  ${[...injector.actionOutcomes]
      .sort()
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ')}`,
  );
  console.log(`reader answers: ${[...reader.statuses].map(([k, v]) => `${k}: ${v}`).join(', ')}`);
  console.log('\ninvariants');
  for (const c of checks) {
    console.log(
      `  ${c.violations ? 'FAIL' : 'ok  '} ${c.name}: ${c.checked} checked, ${c.violations} violations`,
    );
    for (const n of c.notes) console.log(`         ${n}`);
  }
  const violations = checks.reduce((n, c) => n + c.violations, 0);
  say(`done (seed ${o.seed}); logs and timeline in ${artifacts}`);
  console.log(`violations: ${violations}`);
  return violations > 0 ? 1 : 0;
}

function avg(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}
