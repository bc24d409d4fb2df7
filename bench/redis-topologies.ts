/**
 * `npm run bench:redis`: the same drain through the queue on each Redis topology, side by side
 * in one run: the shared single Redis, a private 3-master/3-replica Redis Cluster and a private
 * primary/replica pair under three Sentinels (test/support). Each topology has its own 2 worker
 * processes (they idle, blocked on Redis, while another topology's turn runs); the order of the
 * sides rotates every round. A drain is timed from its run's start to its last partition's end
 * (the run summary), without process start-up. Reports medians and the ratios to single.
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
import { type CliProcess, startCli } from '../test/support/cli.ts';
import { adminQuery } from '../test/support/db.ts';
import { startPrivateRedisCluster } from '../test/support/redis-cluster.ts';
import { startPrivateSentinel } from '../test/support/redis-sentinel.ts';
import { seed } from '../test/support/seed.ts';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const STALE = Number(process.env.BENCH_STALE ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

const name = `bench_redis_${randomBytes(4).toString('hex')}`;
const url = new URL(process.env.TEST_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/postgres');
url.pathname = `/${name}`;

const median = (xs: number[]) =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

async function main() {
  const [cluster, sentinel] = await Promise.all([
    startPrivateRedisCluster(),
    startPrivateSentinel('audit'),
  ]);
  const topologies = [
    { name: 'single', redisUrl: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379' },
    { name: 'cluster', redisUrl: cluster.url },
    { name: 'sentinel', redisUrl: sentinel.url },
  ];
  await migrate(url.toString(), silentLogger);
  const pool = createPool(url.toString(), silentLogger, { max: 4 });
  const workers: CliProcess[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  try {
    console.log(`seeding ${ROWS} rows (${STALE} stale) in ${name} ...`);
    await seed(pool, { kind: 'completed', count: ROWS - STALE, tag: 'done' });
    await seed(pool, { kind: 'incomplete', count: STALE, tag: 'stale', ageMs: 5 * 3_600_000 });
    const resetStale = async () => {
      await pool.query(
        `UPDATE audit_log SET time_completed = NULL, result_kind = NULL WHERE request_id LIKE 'stale-%'`,
      );
      await pool.query('VACUUM ANALYZE audit_log');
    };

    const sides = await Promise.all(
      topologies.map(async (t) => {
        const env = {
          DATABASE_URL: url.toString(),
          REDIS_URL: t.redisUrl,
          QUEUE_PREFIX: `{bench-${randomBytes(4).toString('hex')}}`,
          STALE_AFTER: '1h',
          SWEEP_EVERY: '24h',
          WORKER_METRICS_PORT: '0',
          LOG_LEVEL: 'warn',
          RETENTION: 'off',
        };
        workers.push(startCli(['worker'], env), startCli(['worker'], env));
        const config = loadConfig(env);
        const redis = await connectProducer(config, silentLogger);
        const sq = createSweepQueue(redis, config.QUEUE_PREFIX);
        cleanups.push(async () => {
          await closeSweepQueue(sq);
          redis.disconnect();
        });
        const drain = async () => {
          const summary = await waitForSweep(sq, await requestSweep(sq), {
            redisUrl: config.REDIS_URL,
            timeoutMs: 3_600_000,
            logger: silentLogger,
          });
          return summary;
        };
        return { ...t, drain, times: [] as number[] };
      }),
    );
    // One untimed drain per side first: it warms up the workers' pools and BullMQ's scripts.
    for (const side of sides) {
      await resetStale();
      await side.drain();
    }
    for (let round = 0; round < ROUNDS; round++) {
      const order = sides.map((_, i) => sides[(i + round) % sides.length]);
      const line: string[] = [];
      for (const side of order) {
        if (!side) continue;
        await resetStale();
        const summary = await side.drain();
        if (summary.finalized !== STALE)
          throw new Error(`${side.name}: run finalized ${summary.finalized}, expected ${STALE}`);
        side.times.push(summary.durationMs);
        line.push(`${side.name} ${summary.durationMs} ms`);
      }
      console.log(`round ${round + 1}: ${line.join(', ')}`);
    }
    const single = median(sides[0]?.times ?? []);
    const result = {
      rows: ROWS,
      stale: STALE,
      rounds: ROUNDS,
      workersPerTopology: 2,
      ...Object.fromEntries(sides.map((s) => [`${s.name}MedianMs`, median(s.times)])),
      ...Object.fromEntries(
        sides
          .slice(1)
          .map((s) => [`${s.name}DrainTimeVsSingle`, +(median(s.times) / single).toFixed(2)]),
      ),
      times: Object.fromEntries(sides.map((s) => [s.name, s.times])),
    };
    console.log(JSON.stringify(result, null, 2));
    mkdirSync('test-artifacts', { recursive: true });
    writeFileSync('test-artifacts/bench-redis.json', `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    for (const w of workers) w.child.kill('SIGTERM');
    await Promise.all(workers.map((w) => w.exited));
    for (const c of cleanups) await c();
    await pool.end();
    await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await Promise.all([cluster.destroy(), sentinel.destroy()]);
  }
}

await main();
