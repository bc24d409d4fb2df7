/**
 * `npm run bench`: the sweeper's speed, measured side by side in one run on this machine, as
 * ratios (the machines are shared and noisy: alternate the sides, compare medians).
 *
 * 1. Drain: BENCH_STALE stale rows among BENCH_ROWS. Baseline: one UPDATE of every stale row (the
 *    fastest a single statement does it). Product: a sweep request through the queue, 2 worker
 *    processes, SWEEP_PARTITIONS partitions, timed from the run's start to its last partition's
 *    end (the run summary), without process start-up.
 * 2. Writers during a drain: init+complete latency of an application writing through the store
 *    while the sweeper drains, against the same writer on an idle table.
 * 3. The reference job (1000 rows per 10-minute run) on the same backlog, computed from its
 *    settings, not measured.
 */

import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadConfig } from '../src/config.ts';
import { migrate } from '../src/db/migrate.ts';
import { createPool } from '../src/db/pool.ts';
import { silentLogger } from '../src/log.ts';
import { connectProducer } from '../src/queue/connection.ts';
import { requestSweep, waitForSweep } from '../src/queue/request-sweep.ts';
import { closeSweepQueue, createSweepQueue } from '../src/queue/sweep-queue.ts';
import { AuditLogStore } from '../src/store/store.ts';
import { startCli } from '../test/support/cli.ts';
import { adminQuery } from '../test/support/db.ts';
import { seed } from '../test/support/seed.ts';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const STALE = Number(process.env.BENCH_STALE ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PARTITIONS = process.env.SWEEP_PARTITIONS ?? '16';

const name = `bench_${randomBytes(4).toString('hex')}`;
const url = new URL(process.env.TEST_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/postgres');
url.pathname = `/${name}`;
const prefix = `{bench-${randomBytes(4).toString('hex')}}`;
const env = {
  DATABASE_URL: url.toString(),
  QUEUE_PREFIX: prefix,
  STALE_AFTER: '1h',
  SWEEP_EVERY: '24h',
  SWEEP_PARTITIONS: PARTITIONS,
  WORKER_METRICS_PORT: '0',
  LOG_LEVEL: 'warn',
  RETENTION: 'off',
};

const median = (xs: number[]) =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const quantile = (xs: number[], q: number) =>
  [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))] ?? Number.NaN;

async function main() {
  await migrate(env.DATABASE_URL, silentLogger);
  const pool = createPool(env.DATABASE_URL, silentLogger, { max: 8 });
  console.log(`seeding ${ROWS} rows (${STALE} stale) in ${name} ...`);
  await seed(pool, { kind: 'completed', count: ROWS - STALE, tag: 'done' });
  await seed(pool, { kind: 'incomplete', count: STALE, tag: 'stale', ageMs: 5 * 3_600_000 });
  const resetStale = async () => {
    await pool.query(
      `UPDATE audit_log SET time_completed = NULL, result_kind = NULL WHERE request_id LIKE 'stale-%'`,
    );
    await pool.query('VACUUM ANALYZE audit_log');
  };

  const workers = [startCli(['worker'], env), startCli(['worker'], env)];
  const config = loadConfig(env);
  const redis = await connectProducer(config, silentLogger);
  const sq = createSweepQueue(redis, config.QUEUE_PREFIX);
  const sweepThroughQueue = async () => {
    const summary = await waitForSweep(sq, await requestSweep(sq), {
      redisUrl: config.REDIS_URL,
      timeoutMs: 3_600_000,
      logger: silentLogger,
    });
    if (summary.finalized !== STALE)
      throw new Error(`run finalized ${summary.finalized}, expected ${STALE}`);
    return summary.durationMs;
  };
  try {
    await sweepThroughQueue().catch(() => {}); // the first run starts the workers' pools; not timed
    const single: number[] = [];
    const product: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const sides = [
        async () => {
          await resetStale();
          const t = performance.now();
          await pool.query(`UPDATE audit_log SET time_completed = now(), result_kind = 'timeout'
                             WHERE time_completed IS NULL AND time_started < now() - interval '1 hour'`);
          single.push(performance.now() - t);
        },
        async () => {
          await resetStale();
          product.push(await sweepThroughQueue());
        },
      ];
      if (round % 2) sides.reverse();
      for (const side of sides) await side();
      console.log(
        `round ${round + 1}: single statement ${Math.round(single.at(-1) ?? 0)} ms, product ${Math.round(product.at(-1) ?? 0)} ms`,
      );
    }

    // Writers: idle table vs during a drain, alternating too.
    const store = new AuditLogStore(pool);
    const write = async (until: () => boolean) => {
      const latencies: number[] = [];
      while (!until()) {
        const t = performance.now();
        const id = await store.init({
          requestId: 'w',
          requestUri: '/v1/instances',
          operationId: 'instance_create',
          sourceIp: '10.0.0.3',
          actor: { kind: 'unauthenticated' },
        });
        await store.complete(id, { kind: 'success', httpStatusCode: 201 });
        latencies.push(performance.now() - t);
      }
      return latencies;
    };
    const idle: number[] = [];
    const busy: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      await resetStale();
      let done = false;
      const drain = sweepThroughQueue().finally(() => {
        done = true;
      });
      busy.push(...(await write(() => done)));
      await drain;
      const until = performance.now() + Math.max(1000, median(product));
      idle.push(...(await write(() => performance.now() > until)));
    }

    const referenceMs = Math.ceil(STALE / 1000) * 600_000;
    const result = {
      rows: ROWS,
      stale: STALE,
      partitions: Number(PARTITIONS),
      workers: 2,
      rounds: ROUNDS,
      singleStatementMedianMs: Math.round(median(single)),
      productMedianMs: Math.round(median(product)),
      productSpeedVsSingleStatement: +(median(single) / median(product)).toFixed(2),
      referenceJobDrainMs: referenceMs,
      productSpeedVsReferenceJob: Math.round(referenceMs / median(product)),
      writerP50IdleMs: +quantile(idle, 0.5).toFixed(2),
      writerP50DuringDrainMs: +quantile(busy, 0.5).toFixed(2),
      writerP99IdleMs: +quantile(idle, 0.99).toFixed(2),
      writerP99DuringDrainMs: +quantile(busy, 0.99).toFixed(2),
      writerP99SlowdownDuringDrain: +(quantile(busy, 0.99) / quantile(idle, 0.99)).toFixed(2),
      writesMeasured: { idle: idle.length, duringDrain: busy.length },
    };
    console.table(result);
    mkdirSync('test-artifacts', { recursive: true });
    writeFileSync('test-artifacts/bench.json', `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    for (const w of workers) w.child.kill('SIGTERM');
    await Promise.all(workers.map((w) => w.exited));
    await closeSweepQueue(sq);
    redis.disconnect();
    await pool.end();
    await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  }
}

await main();
