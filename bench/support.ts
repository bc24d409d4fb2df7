/**
 * What `npm run bench` is built from: seeded databases, sets of real worker processes on their
 * own queue prefix, a sweep timed end to end, a writer measuring its latency, statistics.
 */

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { QueueEvents } from 'bullmq';
import { loadConfig } from '../src/config.ts';
import type { Pool } from '../src/db/pool.ts';
import { silentLogger } from '../src/log.ts';
import { connectProducer, createRedis } from '../src/queue/connection.ts';
import { runJobId } from '../src/queue/job-ids.ts';
import { type RunSummary, type StartedTick, SWEEP_QUEUE } from '../src/queue/jobs.ts';
import { requestSweep } from '../src/queue/request-sweep.ts';
import { closeSweepQueue, createSweepQueue, type SweepQueue } from '../src/queue/sweep-queue.ts';
import type { RedisClient } from '../src/redis-client.ts';
import type { AuditLogStore } from '../src/store/store.ts';
import { type CliProcess, startCli } from '../test/support/cli.ts';
import { seed } from '../test/support/seed.ts';

export const median = (xs: number[]) =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
export const quantile = (xs: number[], q: number) =>
  [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))] ?? Number.NaN;
export const round2 = (x: number) => Math.round(x * 100) / 100;
/** "median 812 ms [790, 812, 1040]": the spread is part of the figure on a shared machine. */
export const spread = (xs: number[], unit = 'ms') =>
  `median ${Math.round(median(xs))} ${unit} [${xs.map(Math.round).join(', ')}]`;

/** Rows that become stale are tagged `stale-<n>`; the rest are completed long ago. */
export async function seedRows(pool: Pool, rows: number, stale: number): Promise<void> {
  const BATCH = 1_000_000; // one statement per million rows keeps each transaction bounded
  for (let done = 0; done < rows - stale; done += BATCH)
    await seed(pool, {
      kind: 'completed',
      count: Math.min(BATCH, rows - stale - done),
      tag: `done${done / BATCH}`,
    });
  if (stale > 0)
    await seed(pool, { kind: 'incomplete', count: stale, tag: 'stale', ageMs: 5 * 3_600_000 });
  await pool.query('VACUUM ANALYZE audit_log');
}

/** Makes the `stale-` rows (or, with `all`, every row) incomplete again, then vacuums. */
export async function resetStale(pool: Pool, all = false): Promise<void> {
  await pool.query(
    `UPDATE audit_log SET time_completed = NULL, result_kind = NULL, http_status_code = NULL,
            error_code = NULL, error_message = NULL
      WHERE time_completed IS NOT NULL ${all ? '' : `AND request_id LIKE 'stale-%'`}`,
  );
  await pool.query('VACUUM ANALYZE audit_log');
}

/** The baseline: every stale row in one statement, the fastest one statement does it. */
export async function singleUpdate(pool: Pool): Promise<number> {
  const t = performance.now();
  await pool.query(`UPDATE audit_log SET time_completed = now(), result_kind = 'timeout'
                     WHERE time_completed IS NULL AND time_started < now() - interval '1 hour'`);
  return performance.now() - t;
}

export type WorkerSet = {
  /** A sweep request, timed from before the request to the run's summary. */
  sweep: () => Promise<{ ms: number; summary: RunSummary }>;
  /** The largest peak RSS (VmHWM) among the workers, in MB. */
  peakRssMb: () => number;
  close: () => Promise<void>;
};

/** `count` worker processes (the real CLI) on a queue prefix of their own. */
/** A maintenance window: the adaptive throttle and the stream cap off (full speed). */
export const MAINTENANCE = { SWEEP_IMPACT_TARGET: 'off', SWEEP_MAX_STREAMS: 'off' };

export async function startWorkers(
  databaseUrl: string,
  count: number,
  settings: Record<string, string> = {},
): Promise<WorkerSet> {
  const env = {
    DATABASE_URL: databaseUrl,
    QUEUE_PREFIX: `{bench-${randomBytes(4).toString('hex')}}`,
    STALE_AFTER: '1h',
    SWEEP_EVERY: '24h',
    WORKER_METRICS_PORT: '0',
    // info: the bench waits for each worker's "sweep worker started" line.
    LOG_LEVEL: 'info',
    RETENTION: 'off',
    ...settings,
  };
  const workers: CliProcess[] = Array.from({ length: count }, () => startCli(['worker'], env));
  const config = loadConfig(env);
  let redis: RedisClient | undefined;
  let sq: SweepQueue | undefined;
  // QueueEvents blocks on Redis, so it needs a connection of the worker kind; BullMQ leaves a
  // connection it was given open, so close() ends it (or the bench would never exit).
  const eventsConnection = createRedis(config, 'worker', silentLogger);
  const events = new QueueEvents(SWEEP_QUEUE, {
    connection: eventsConnection,
    prefix: config.QUEUE_PREFIX,
  });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    for (const w of workers) w.child.kill('SIGTERM');
    await Promise.all(workers.map((w) => w.exited));
    await events.close();
    eventsConnection.disconnect();
    if (sq) await closeSweepQueue(sq);
    redis?.disconnect();
  };
  try {
    redis = await connectProducer(config, silentLogger);
    sq = createSweepQueue(redis, config.QUEUE_PREFIX);
    await events.waitUntilReady();
    // Every worker up (its log says so) before anything is timed.
    await Promise.all(workers.map((w) => w.waitForOutput(/sweep worker started/)));
  } catch (err) {
    await close();
    throw err;
  }
  const queue = sq;
  return {
    sweep: async () => {
      const t = performance.now();
      const tick = await queue.queue.getJob(await requestSweep(queue));
      if (!tick) throw new Error('the sweep request vanished');
      const { runId } = (await tick.waitUntilFinished(events, 3_600_000)) as StartedTick;
      const run = await queue.queue.getJob(runJobId(runId));
      if (!run) throw new Error(`run ${runId} vanished`);
      const summary = (await run.waitUntilFinished(events, 3_600_000)) as RunSummary;
      return { ms: performance.now() - t, summary };
    },
    peakRssMb: () =>
      Math.max(
        ...workers.map((w) => {
          const status = readFileSync(`/proc/${w.child.pid}/status`, 'utf8');
          return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) / 1024;
        }),
      ),
    close,
  };
}

/** One application operation (init, then complete): its latency in ms. */
export async function timedOperation(
  store: AuditLogStore,
  who: { requestId: string; sourceIp: string },
): Promise<number> {
  const t = performance.now();
  // The recommended call shape: complete by the key begin returns (one time partition).
  const key = await store.begin({
    ...who,
    requestUri: '/v1/instances',
    operationId: 'instance_create',
    actor: { kind: 'unauthenticated' },
  });
  await store.complete(key, { kind: 'success', httpStatusCode: 201 });
  return performance.now() - t;
}

/** An application's init+complete latency, in ms, one after the other until `stop()` is true. */
export async function writeUntil(store: AuditLogStore, stop: () => boolean): Promise<number[]> {
  const latencies: number[] = [];
  while (!stop())
    latencies.push(
      await timedOperation(store, { requestId: 'bench-writer', sourceIp: '10.0.0.3' }),
    );
  return latencies;
}

/** Runs `work` while a writer writes; the writer's latencies. */
export async function writeDuring(store: AuditLogStore, work: () => Promise<unknown>) {
  let done = false;
  const running = work().finally(() => {
    done = true;
  });
  const latencies = await writeUntil(store, () => done);
  await running;
  return latencies;
}

/**
 * Runs `work` while an open-loop application writes at a fixed `rate` (ops/s over `clients`
 * connections, each op an init then its complete): the ops' latencies, how long `work` took,
 * and the rate the application achieved (below `rate` when the database held it back).
 */
export async function underApplicationLoad(
  store: AuditLogStore,
  o: { rate: number; clients: number },
  work: () => Promise<unknown>,
): Promise<{ ms: number; latencies: number[]; appRate: number }> {
  const latencies: number[] = [];
  let done = false;
  const started = performance.now();
  const every = (1000 * o.clients) / o.rate;
  const client = async (c: number) => {
    let next = started + (c * every) / o.clients;
    while (!done) {
      const wait = next - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (done) break;
      latencies.push(await timedOperation(store, { requestId: 'bench-app', sourceIp: '10.0.0.4' }));
      next += every;
    }
  };
  const clients = Array.from({ length: o.clients }, (_, c) => client(c));
  const t = performance.now();
  await work();
  const ms = performance.now() - t;
  done = true;
  await Promise.all(clients);
  return { ms, latencies, appRate: latencies.length / ((performance.now() - started) / 1000) };
}
