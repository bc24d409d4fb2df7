import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { processFleet, sweeperEnv, until } from './support/harness.ts';
import { createTestPrefix } from './support/redis.ts';
import { seed } from './support/seed.ts';

/**
 * The adaptive throttle (SWEEP_IMPACT_TARGET) with a real worker process: the test raises the
 * signal on purpose by holding the row lock of the sweeper's probe table from its own
 * connection, so the probe's commit waits as an application's would behind a busy database. The
 * fleet's row rate must fall while the lock is held and climb again once it is gone; with `off`,
 * nothing holds the sweep back.
 */

const fleet = processFleet();
let db: TestDatabase | undefined;
let holder: pg.Client | undefined;
const cleanups: (() => Promise<void>)[] = [];

afterEach(async (context) => {
  await fleet.cleanup(context);
  await holder?.end().catch(() => {});
  holder = undefined;
  for (const c of cleanups.splice(0)) await c();
  await db?.drop();
  db = undefined;
});

async function setup(label: string, settings: Record<string, string>, rows: number) {
  db = await createTestDatabase(label);
  const { prefix, cleanup } = createTestPrefix(label);
  cleanups.push(cleanup);
  await seed(db.pool, { kind: 'incomplete', count: rows, tag: 'stale' });
  const env = sweeperEnv(
    { databaseUrl: db.url, prefix },
    { SWEEP_PARTITIONS: '4', SWEEP_CHUNK_SIZE: '1000', ...settings },
  );
  const worker = fleet.start(['worker'], env);
  await worker.waitForOutput(/"msg":"sweep worker started"/);
  return { env, worker, db };
}

async function status(env: Record<string, string>) {
  const r = await runCli(['status', '--json'], env);
  expect(r.code, r.output).toBe(0);
  return JSON.parse(r.output.trim().split('\n').at(-1) ?? '{}');
}

const staleLeft = async (t: TestDatabase) =>
  (
    await t.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM audit_log WHERE time_completed IS NULL',
    )
  ).rows[0]?.n ?? -1;

describe('SWEEP_IMPACT_TARGET', () => {
  it('the fleet rate falls while commits are slow and recovers once they are fast again', async () => {
    // A target far above this machine's idle commit, so only the held lock crosses it.
    const { env, db } = await setup('adaptive', { SWEEP_IMPACT_TARGET: '50ms' }, 300_000);
    expect((await runCli(['sweep'], env)).code).toBe(0);
    const before = await until(async () => {
      const a = (await status(env)).control.adaptive;
      return a && a.rate >= 10_000 ? a : undefined;
    });
    expect(before.targetMs).toBe(50);

    holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT * FROM audit_sweeper_probe FOR UPDATE');
    const held = await until(async () => {
      const a = (await status(env)).control.adaptive;
      return a && a.rate <= 1_000 ? a : undefined;
    });
    expect(held.signalMs).toBeGreaterThan(50);
    expect(held.reason).toMatch(
      /^adaptive: commit latency \d+ ms > 50 ms target, rate \d+ rows\/s$/,
    );
    const text = await runCli(['status'], env);
    expect(text.output).toMatch(/adaptive: commit latency \d+ ms > 50 ms target/);
    expect(text.output).toMatch(
      /streams: \d+ partition sweeps running, cap 2 \(SWEEP_MAX_STREAMS\)/,
    );
    // While held, the sweep crawls: the rate bounds what it takes.
    const left = await staleLeft(db);
    await new Promise((r) => setTimeout(r, 2_000));
    expect(left - (await staleLeft(db))).toBeLessThan(2 * 1_000 + 3 * 1_000);

    await holder.query('ROLLBACK');
    const recovered = await until(async () => {
      const a = (await status(env)).control.adaptive;
      return a && a.rate >= 5 * held.rate && a.signalMs < 50 ? a : undefined;
    });
    expect(recovered.reason).toMatch(/<= 50 ms target/);
    await until(async () => ((await staleLeft(db)) === 0 ? true : undefined));
  }, 180_000);

  it('off: the probe is not taken and a held probe table holds nothing back', async () => {
    const { env, db } = await setup('adaptiveoff', { SWEEP_IMPACT_TARGET: 'off' }, 20_000);
    holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT * FROM audit_sweeper_probe FOR UPDATE');
    const sweep = await runCli(['sweep', '--wait'], env);
    expect(sweep.code, sweep.output).toBe(0);
    expect(await staleLeft(db)).toBe(0);
    const s = await status(env);
    expect(s.control.adaptive).toBeNull();
    // The worker's first tick at start may have drained it already: count every run.
    const runs = s.recentRuns as { finalized: number; waitedMs?: { pacing?: number } }[];
    expect(runs.reduce((n, r) => n + r.finalized, 0)).toBe(20_000);
    expect(runs.every((r) => r.waitedMs?.pacing === undefined)).toBe(true);
  }, 120_000);
});
