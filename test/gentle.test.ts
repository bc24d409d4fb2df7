import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { type CliProcess, runCli, startCli } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { createTestPrefix, TEST_REDIS_URL } from './support/redis.ts';
import { seed } from './support/seed.ts';

/**
 * Gentle on production, with real `audit-sweeper worker` processes on the shared PostgreSQL and
 * Redis: fleet-wide pacing (the total over every process), pause and resume (CLI, state in
 * Redis that outlives every worker, ticks while paused start nothing), and a pause that ends
 * by itself.
 */

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns something truthy; fails naming `what` after the timeout. */
async function waitFor<T>(
  what: string,
  probe: () => Promise<T>,
  o: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (o.timeoutMs ?? 90_000);
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(o.intervalMs ?? 500);
  }
}
const children = new Set<CliProcess>();
let db: TestDatabase | undefined;
let cleanupPrefix: (() => Promise<void>) | undefined;

afterEach(async (context) => {
  if (context.task.result?.state === 'fail')
    for (const p of children) console.error(`--- pid ${p.child.pid}:\n${p.output().slice(-4000)}`);
  for (const p of children)
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all([...children].map((p) => p.exited));
  children.clear();
  await db?.drop();
  db = undefined;
  await cleanupPrefix?.();
  cleanupPrefix = undefined;
});

async function setup(label: string, settings: Record<string, string>) {
  db = await createTestDatabase(label);
  const prefix = createTestPrefix(label);
  cleanupPrefix = prefix.cleanup;
  const env = {
    DATABASE_URL: db.url,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix.prefix,
    STALE_AFTER: '1h',
    SWEEP_EVERY: '1h',
    RETENTION: 'off',
    WORKER_METRICS_PORT: '0',
    SWEEP_MAX_REPLICA_LAG: 'off',
    ...settings,
  };
  return { db, env };
}

async function startWorkers(env: Record<string, string>, count: number) {
  const workers = Array.from({ length: count }, () => {
    const p = startCli(['worker'], env);
    children.add(p);
    return p;
  });
  await Promise.all(workers.map((w) => w.waitForOutput(/"msg":"sweep worker started"/)));
  return workers;
}

const staleLeft = async (d: TestDatabase) =>
  (
    await d.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_log WHERE request_id LIKE 'stale-%' AND time_completed IS NULL`,
    )
  ).rows[0]?.n ?? -1;

async function statusJson(env: Record<string, string>) {
  const status = await runCli(['status', '--json'], env);
  // 0 healthy, 1 degraded: a pause is a reason for degraded health (issue 13), not an error.
  expect([0, 1], status.output).toContain(status.code);
  return JSON.parse(status.output.trim().split('\n').at(-1) ?? '{}');
}

describe('fleet-wide pacing', () => {
  it('3 worker processes together stay within 15% of SWEEP_MAX_ROWS_PER_SECOND', async () => {
    const LIMIT = 1500;
    const ROWS = 15_000;
    const { db, env } = await setup('pacing', {
      SWEEP_MAX_ROWS_PER_SECOND: String(LIMIT),
      // The fixed bucket alone: the adaptive throttle would only ever lower the rate, and with
      // the stream cap not every process would get a partition to sweep.
      SWEEP_IMPACT_TARGET: 'off',
      SWEEP_MAX_STREAMS: 'off',
      SWEEP_CHUNK_SIZE: '250',
      SWEEP_PARTITIONS: '6',
      SWEEP_CONCURRENCY: '2',
    });
    await seed(db.pool, { kind: 'incomplete', count: ROWS, tag: 'stale' });
    const workers = await startWorkers(env, 3);
    const sweep = await runCli(['sweep', '--wait', '--json'], env);
    expect(sweep.code, sweep.output).toBe(0);
    expect(await staleLeft(db)).toBe(0);

    // The rate as the database saw it: every chunk's rows share their transaction's now(). The
    // first chunk is the bucket's starting content (one chunk), so the rate counts the rows
    // after it over the time from its commit to the last one.
    const { rows } = await db.pool.query<{ n: number; first: number; span: number }>(
      `SELECT count(*)::int AS n,
              count(*) FILTER (WHERE time_completed = (SELECT min(time_completed) FROM audit_log
                                                        WHERE result_kind = 'timeout'))::int AS first,
              extract(epoch FROM max(time_completed) - min(time_completed))::float8 AS span
         FROM audit_log WHERE result_kind = 'timeout'`,
    );
    const r = rows[0] as { n: number; first: number; span: number };
    expect(r.n).toBe(ROWS);
    const rate = (r.n - r.first) / r.span;
    console.log(
      `paced drain: ${r.n} rows in ${r.span.toFixed(2)} s = ${rate.toFixed(0)} rows/s (limit ${LIMIT})`,
    );
    expect(rate).toBeGreaterThan(LIMIT * 0.85);
    expect(rate).toBeLessThan(LIMIT * 1.15);
    // The limit held for the fleet, not per process: all three processes swept.
    for (const w of workers) expect(w.output()).toMatch(/"msg":"timed out audit log entries/);
    const summary = JSON.parse(sweep.output.trim().split('\n').at(-1) ?? '{}');
    expect(summary.waitedMs.pacing).toBeGreaterThan(0);
  });
});

describe('pause and resume', () => {
  it('stops a drain within one chunk, survives a restart of every worker, starts no runs, resumes where it was', async () => {
    const CHUNK = 200;
    const { db, env } = await setup('pause', {
      // Paced, so that the drain lasts long enough to pause it halfway.
      SWEEP_MAX_ROWS_PER_SECOND: '2000',
      SWEEP_CHUNK_SIZE: String(CHUNK),
      SWEEP_PARTITIONS: '4',
      SWEEP_CONCURRENCY: '2',
    });
    await seed(db.pool, { kind: 'incomplete', count: 30_000, tag: 'stale' });
    let workers = await startWorkers(env, 2);
    const requested = await runCli(['sweep'], env);
    expect(requested.code, requested.output).toBe(0);
    await waitFor('the drain to be under way', async () => (await staleLeft(db)) < 28_000, {
      intervalMs: 100,
    });

    const paused = await runCli(['pause', '--reason', 'vacuum full in progress'], env);
    expect(paused.code, paused.output).toBe(0);
    expect(paused.output).toMatch(
      /sweeper paused by .+ \(vacuum full in progress\), until audit-sweeper resume/,
    );
    const pausedAt = (await db.pool.query('SELECT now() AS t')).rows[0].t as Date;
    await sleep(1500);
    const afterPause = await staleLeft(db);
    expect(afterPause).toBeGreaterThan(0);
    // Chunks that committed after the pause was set: at most the one under way in each of the
    // 4 streams (2 workers x 2).
    const late = await db.pool.query<{ chunks: number; rows: number }>(
      `SELECT count(DISTINCT time_completed)::int AS chunks, count(*)::int AS rows
         FROM audit_log WHERE result_kind = 'timeout' AND time_completed > $1`,
      [pausedAt],
    );
    expect(late.rows[0]?.chunks).toBeLessThanOrEqual(4);
    expect(late.rows[0]?.rows).toBeLessThanOrEqual(4 * CHUNK);

    const status = await statusJson(env);
    expect(status.control.state).toBe('paused');
    expect(status.control.pause).toMatchObject({ reason: 'vacuum full in progress', until: null });
    const text = await runCli(['status'], env);
    expect(text.output).toMatch(
      /sweeper: PAUSED by .+ \(vacuum full in progress\), until audit-sweeper resume/,
    );

    // A sweep requested while paused starts nothing (and says so).
    const jobsBefore = await jobCount(env);
    const refused = await runCli(['sweep', '--wait'], env);
    expect(refused.code).toBe(1);
    expect(refused.output).toMatch(/the sweeper is paused \(by .+\): no run started/);
    expect(await jobCount(env)).toBe(jobsBefore);

    // Every worker restarts: still paused.
    for (const w of workers) w.child.kill('SIGTERM');
    for (const w of workers) expect(await w.exited, w.output()).toBe(0);
    workers = await startWorkers(env, 2);
    await sleep(2000);
    expect(await staleLeft(db)).toBe(afterPause);
    expect((await statusJson(env)).control.state).toBe('paused');

    const resumed = await runCli(['resume'], env);
    expect(resumed.code, resumed.output).toBe(0);
    expect(resumed.output).toMatch(
      /sweeper resumed \(it was paused by .+: vacuum full in progress\)/,
    );
    await waitFor('the drain to complete after resume', async () => (await staleLeft(db)) === 0);
    const done = await waitFor('the run summary', async () => {
      const s = await statusJson(env);
      return s.recentRuns.find((r: { finalized: number }) => r.finalized > 0);
    });
    // The run went on where it was (one run, every row) and tells how long it stood paused.
    expect(done.finalized).toBe(30_000);
    expect(done.waitedMs.paused).toBeGreaterThan(2000);
  });

  it('pause --for ends by itself, and the drain completes', async () => {
    const { db, env } = await setup('pausefor', { SWEEP_CHUNK_SIZE: '500', SWEEP_PARTITIONS: '2' });
    await seed(db.pool, { kind: 'incomplete', count: 2000, tag: 'stale' });
    const bad = await runCli(['pause', '--for', 'soon'], env);
    expect(bad.code).toBe(2);
    expect(bad.output).toMatch(/--for must be a duration/);

    const paused = await runCli(['pause', '--for', '20s'], env);
    expect(paused.code, paused.output).toBe(0);
    expect(paused.output).toMatch(/until \d{4}-\d\d-\d\dT/);
    // The schedule's first tick fires as the workers start: paused, it starts nothing.
    await startWorkers(env, 1);
    await sleep(1000);
    expect(await staleLeft(db)).toBe(2000);
    const status = await statusJson(env);
    expect(status.control.state).toBe('paused');
    expect(Date.parse(status.control.pause.until)).toBeGreaterThan(Date.now());

    await waitFor(
      'the pause to end by itself',
      async () => (await statusJson(env)).control.state !== 'paused',
      { intervalMs: 1000 },
    );
    const sweep = await runCli(['sweep', '--wait'], env);
    expect(sweep.code, sweep.output).toBe(0);
    expect(await staleLeft(db)).toBe(0);
  });
});

/** Run and partition jobs in the queue (any state): a tick that starts a run adds them. */
async function jobCount(env: Record<string, string>): Promise<number> {
  const redis = new Redis(TEST_REDIS_URL);
  try {
    let n = 0;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(
        cursor,
        'MATCH',
        `${env.QUEUE_PREFIX}:audit-sweep*`,
        'COUNT',
        1000,
      );
      cursor = next;
      n += keys.filter((k) => /:(run-[^:]+|[^:]+-p\d+(-c\d+)?)$/.test(k)).length;
    } while (cursor !== '0');
    return n;
  } finally {
    redis.disconnect();
  }
}
