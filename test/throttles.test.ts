import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../src/db/migrate.ts';
import { silentLogger } from '../src/log.ts';
import { runCli } from './support/cli.ts';
import { processFleet, sweeperEnv } from './support/harness.ts';
import { type ReplicatedPostgres, startReplicatedPostgres } from './support/pg-replica.ts';
import { createTestPrefix } from './support/redis.ts';
import { seed } from './support/seed.ts';

/**
 * The replica-lag throttle against a real streaming replica: a private primary (initdb) and a
 * replica of it (pg_basebackup -R), both on loopback ports. Replay is paused on the replica, so
 * its lag grows for real while the sweeper drains; the sweeper must stop and say so in `status`,
 * then finish once replay resumes. A user that may not see replica positions carries on.
 * The load throttle runs on the same private primary, where no other test's sessions count.
 */

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const fleet = processFleet();
let pair: ReplicatedPostgres;
let primary: ReplicatedPostgres['primary'];
let pool: pg.Pool;
const prefixes: (() => Promise<void>)[] = [];

beforeAll(async () => {
  pair = await startReplicatedPostgres();
  primary = pair.primary;
  await migrate(primary.url('audit'), silentLogger);
  pool = new pg.Pool({ connectionString: primary.url('audit'), max: 4 });
}, 180_000);

afterAll(async () => {
  await pool?.end();
  await pair?.destroy();
  for (const cleanup of prefixes) await cleanup();
});

afterEach(async (context) => {
  await pair.resumeReplay().catch(() => {});
  await fleet.cleanup(context);
});

const staleLeft = async () =>
  (
    await pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM audit_log WHERE time_completed IS NULL',
    )
  ).rows[0]?.n ?? -1;

async function until<T>(what: string, probe: () => Promise<T>, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(300);
  }
}

function env(label: string, overrides: Record<string, string>) {
  const { prefix, cleanup } = createTestPrefix(label);
  prefixes.push(cleanup);
  return sweeperEnv({ databaseUrl: primary.url('audit'), prefix }, overrides);
}

async function status(e: Record<string, string>) {
  const r = await runCli(['status', '--json'], e);
  expect(r.code, r.output).toBe(0);
  return JSON.parse(r.output.trim().split('\n').at(-1) ?? '{}');
}

describe('SWEEP_MAX_REPLICA_LAG', () => {
  it('waits while the replica lags, shows the lag in status, and drains once replay resumes', async () => {
    const e = env('lag', {
      SWEEP_MAX_REPLICA_LAG: '1s',
      // Paced, so that the drain outlasts the moment the lag passes 1 s.
      SWEEP_MAX_ROWS_PER_SECOND: '2000',
      SWEEP_CHUNK_SIZE: '200',
      SWEEP_PARTITIONS: '4',
    });
    await seed(pool, { kind: 'incomplete', count: 20_000, tag: 'stale' });
    await pair.pauseReplay();
    const worker = fleet.start(['worker'], e);
    await worker.waitForOutput(/"msg":"sweep worker started"/);
    expect((await runCli(['sweep'], e)).code).toBe(0);

    const throttled = await until('status to show the replica-lag throttle', async () => {
      const s = await status(e);
      return s.control.state === 'throttled' ? s.control : null;
    });
    const w = throttled.workers.find((x: { reason: string }) => x.reason === 'replica_lag');
    expect(w.value).toBeGreaterThan(1000);
    expect(w.limit).toBe(1000);
    expect(w.detail).toMatch(/^replica \S+, \d+ bytes behind$/);
    const text = await runCli(['status'], e);
    expect(text.output).toMatch(/sweeper: throttled/);
    expect(text.output).toMatch(
      /throttled: replica lag \d+\.\d s > limit 1\.0 s \(replica \S+, \d+ bytes behind\)/,
    );

    // Held: nothing moves while replay stays paused (a chunk already past the gate may commit).
    const held = await staleLeft();
    expect(held).toBeGreaterThan(0);
    await sleep(3000);
    expect(held - (await staleLeft())).toBeLessThanOrEqual(2 * 200);

    await pair.resumeReplay();
    await until('the drain to complete', async () => (await staleLeft()) === 0);
    const done = await until('the run summary', async () => {
      const s = await status(e);
      return s.recentRuns[0]?.finalized === 20_000 ? s.recentRuns[0] : null;
    });
    expect(done.waitedMs.replica_lag).toBeGreaterThan(2000);
  }, 180_000);

  it('a user that cannot see replica positions says so once and carries on', async () => {
    await pool.query(`DO $$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'plain_sweeper') THEN
          CREATE ROLE plain_sweeper LOGIN; END IF; END $$`);
    await pool.query('GRANT SELECT, UPDATE ON audit_log TO plain_sweeper');
    await seed(pool, { kind: 'incomplete', count: 2_000, tag: 'stale2' });
    await pair.pauseReplay();
    const e = env('lagnopriv', {
      DATABASE_URL: primary.url('audit').replace('postgres@', 'plain_sweeper@'),
      SWEEP_MAX_REPLICA_LAG: '1s',
      SWEEP_CHUNK_SIZE: '100',
      SWEEP_PARTITIONS: '2',
    });
    const worker = fleet.start(['worker'], e);
    await worker.waitForOutput(/"msg":"sweep worker started"/);
    const sweep = await runCli(['sweep', '--wait'], e);
    expect(sweep.code, sweep.output).toBe(0);
    expect(await staleLeft()).toBe(0);
    const warnings = worker
      .output()
      .split('\n')
      .filter((l) => l.includes('SWEEP_MAX_REPLICA_LAG is not enforced'));
    expect(warnings).toHaveLength(1);
  }, 120_000);
});

describe('SWEEP_MAX_ACTIVE_BACKENDS', () => {
  it('waits while other sessions keep the database busy, and goes on when they end', async () => {
    await seed(pool, { kind: 'incomplete', count: 3_000, tag: 'stale3' });
    const e = env('load', {
      SWEEP_MAX_REPLICA_LAG: 'off',
      SWEEP_MAX_ACTIVE_BACKENDS: '1',
      SWEEP_CHUNK_SIZE: '100',
      SWEEP_PARTITIONS: '2',
    });
    // Two application sessions running a statement: 2 active backends, above the limit of 1.
    const busy = [0, 1].map(() => new pg.Client({ connectionString: primary.url('audit') }));
    await Promise.all(busy.map((c) => c.connect()));
    const sleeping = busy.map((c) => c.query('SELECT pg_sleep(120)').catch(() => {}));
    try {
      const worker = fleet.start(['worker'], e);
      await worker.waitForOutput(/"msg":"sweep worker started"/);
      expect((await runCli(['sweep'], e)).code).toBe(0);
      const throttled = await until('status to show the load throttle', async () => {
        const s = await status(e);
        return s.control.state === 'throttled' ? s.control : null;
      });
      expect(throttled.workers[0]).toMatchObject({ reason: 'load', value: 2, limit: 1 });
      const text = await runCli(['status'], e);
      expect(text.output).toMatch(/throttled: active backends 2 > limit 1/);
      // The worker's /metrics says so too: what the ThrottledLong alert and Grafana read.
      const listening = await worker.waitForOutput(/"msg":"probes and metrics listening"/);
      const port = JSON.parse(listening).port;
      const metric = async (name: string) => {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
      };
      expect(await metric('audit_sweeper_throttled_workers\\{reason="load"\\}')).toBe(1);
      expect(await metric('audit_sweeper_throttled_workers\\{reason="replica_lag"\\}')).toBe(0);
      const heldFor = await metric('audit_sweeper_throttled_for_seconds\\{reason="load"\\}');
      expect(heldFor).toBeGreaterThan(0);
      await expect
        .poll(() => metric('audit_sweeper_throttled_for_seconds\\{reason="load"\\}'))
        .toBeGreaterThan(heldFor + 1);
      expect(await staleLeft()).toBe(3_000);
    } finally {
      await pool.query(
        `SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(120)%' AND pid <> pg_backend_pid()`,
      );
      await Promise.all(sleeping);
      await Promise.all(busy.map((c) => c.end()));
    }
    await until('the drain to complete', async () => (await staleLeft()) === 0);
  }, 120_000);
});
