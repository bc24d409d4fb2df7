import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { closeSweepQueue, createSweepQueue, type SweepQueue } from '../src/queue/sweep-queue.ts';
import type { CliProcess } from './support/cli.ts';
import { runCli } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { processFleet, sweeperEnv, until } from './support/harness.ts';
import { createTestPrefix, TEST_REDIS_URL } from './support/redis.ts';
import { seed } from './support/seed.ts';

/**
 * SWEEP_MAX_STREAMS: the fleet-wide cap on partition sweeps running at once, with 4 real worker
 * processes of 2 slots each. Every partition job logs (at debug) when it took its partition
 * lock and, when it ends, when it gave it back (`lockHeld`, by the one machine's clock): the
 * most intervals open at one instant is the most sweeps that ran at once.
 */

const fleet = processFleet();
let db: TestDatabase | undefined;
let sq: SweepQueue | undefined;
let redis: Redis | undefined;
const cleanups: (() => Promise<void>)[] = [];

afterEach(async (context) => {
  await fleet.cleanup(context);
  if (sq) await closeSweepQueue(sq);
  redis?.disconnect();
  for (const c of cleanups.splice(0)) await c();
  await db?.drop();
  db = sq = redis = undefined;
});

type Held = { worker: number; start: number; end: number };

/** Each process's lock holdings; one never given back (SIGKILL) ends at `killedAt[i]`. */
function holdings(workers: CliProcess[], killedAt: number[] = []): Held[] {
  const out: Held[] = [];
  workers.forEach((w, i) => {
    const open = new Map<string, number>();
    for (const line of w.output().split('\n')) {
      if (!line.includes('"lockHeld"')) continue;
      const rec = JSON.parse(line) as { job: string; lockHeld: { since: number; until?: number } };
      const key = `${rec.job}|${rec.lockHeld.since}`;
      if (rec.lockHeld.until === undefined) open.set(key, rec.lockHeld.since);
      else {
        open.delete(key);
        out.push({ worker: i, start: rec.lockHeld.since, end: rec.lockHeld.until });
      }
    }
    for (const start of open.values())
      out.push({ worker: i, start, end: killedAt[i] ?? Number.POSITIVE_INFINITY });
  });
  return out;
}

/** The most holdings open at one instant. */
function mostAtOnce(held: Held[]): number {
  const events = held.flatMap((h) => [
    { t: h.start, d: 1 },
    { t: h.end, d: -1 },
  ]);
  // An end and a start at the same millisecond: the end first (the slot passed on).
  events.sort((a, b) => a.t - b.t || a.d - b.d);
  let open = 0;
  let most = 0;
  for (const e of events) {
    open += e.d;
    most = Math.max(most, open);
  }
  return most;
}

async function setup(label: string, settings: Record<string, string>, rows: number) {
  db = await createTestDatabase(label);
  const { prefix, cleanup } = createTestPrefix(label);
  cleanups.push(cleanup);
  redis = new Redis(TEST_REDIS_URL);
  sq = createSweepQueue(redis, prefix);
  await seed(db.pool, { kind: 'incomplete', count: rows, tag: 'stale' });
  const env = sweeperEnv(
    { databaseUrl: db.url, prefix },
    {
      LOG_LEVEL: 'debug',
      SWEEP_PARTITIONS: '16',
      SWEEP_CONCURRENCY: '2',
      SWEEP_CHUNK_SIZE: '250',
      // Paced (and nothing else), so that every sweep lasts long enough to overlap others.
      SWEEP_IMPACT_TARGET: 'off',
      SWEEP_MAX_ROWS_PER_SECOND: '8000',
      ...settings,
    },
  );
  const workers = [0, 1, 2, 3].map(() => fleet.start(['worker'], env));
  await Promise.all(workers.map((w) => w.waitForOutput(/"msg":"sweep worker started"/)));
  return { env, workers, db };
}

const staleLeft = async (t: TestDatabase) =>
  (
    await t.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM audit_log WHERE time_completed IS NULL',
    )
  ).rows[0]?.n ?? -1;

describe('SWEEP_MAX_STREAMS', () => {
  it('with 4 worker processes of 2 slots, never more than 2 partition sweeps at once', async () => {
    const { env, workers, db } = await setup('streams2', { SWEEP_MAX_STREAMS: '2' }, 24_000);
    expect(await sq?.partitions.getGlobalConcurrency()).toBe(2);
    const sweep = await runCli(['sweep', '--wait'], env);
    expect(sweep.code, sweep.output).toBe(0);
    expect(await staleLeft(db)).toBe(0);
    const held = holdings(workers);
    // All 16 partitions were swept, two at a time at most (whichever processes took them: one
    // with 2 slots may chain them all, BullMQ handing it the next job as it finishes one).
    expect(held.length).toBeGreaterThanOrEqual(16);
    expect(mostAtOnce(held)).toBe(2);

    // `status` shows the streams in use against the cap.
    const s = await runCli(['status', '--json'], env);
    const control = JSON.parse(s.output.trim().split('\n').at(-1) ?? '{}').control;
    expect(control.streams).toMatchObject({ cap: 2 });

    // Redis lost the cap (a failover to a replica without it, a flush): the workers put it back.
    await sq?.partitions.removeGlobalConcurrency();
    await until(async () =>
      (await sq?.partitions.getGlobalConcurrency()) === 2 ? true : undefined,
    );
  }, 180_000);

  it('off: the same fleet runs more than 2 sweeps at once (what the cap prevents)', async () => {
    const { env, workers } = await setup('streamsoff', { SWEEP_MAX_STREAMS: 'off' }, 24_000);
    expect(await sq?.partitions.getGlobalConcurrency()).toBeNull();
    const sweep = await runCli(['sweep', '--wait'], env);
    expect(sweep.code, sweep.output).toBe(0);
    expect(mostAtOnce(holdings(workers))).toBeGreaterThan(2);
  }, 180_000);

  it('a worker SIGKILLed mid-sweep gives its slot back once its job lock expires', async () => {
    const ttl = 2_000;
    const { env, workers, db } = await setup(
      'streamskill',
      { SWEEP_MAX_STREAMS: '2', SWEEP_LOCK_TTL: '2s', SWEEP_MAX_ROWS_PER_SECOND: '2000' },
      40_000,
    );
    expect((await runCli(['sweep'], env)).code).toBe(0);
    // The first process seen holding a partition lock is killed while it sweeps.
    const victim = await until(async () => {
      const i = workers.findIndex((w) => /"msg":"partition lock taken"/.test(w.output()));
      return i >= 0 ? i : undefined;
    });
    const killedAt = Date.now();
    workers[victim]?.child.kill('SIGKILL');
    await workers[victim]?.exited;
    await until(async () => ((await staleLeft(db)) === 0 ? true : undefined));

    const killed: number[] = [];
    killed[victim] = killedAt;
    const held = holdings(workers, killed);
    expect(mostAtOnce(held)).toBeLessThanOrEqual(2);
    // After the kill: the first moment two live processes' sweeps ran at once is when the dead
    // one's slot was back. BullMQ's job lock (2 TTL) plus one stalled check (1 TTL) bound it.
    const live = held.filter((h) => h.worker !== victim && h.end > killedAt);
    const twoAgain = live
      .flatMap((a) => live.filter((b) => b !== a && b.start >= a.start && b.start < a.end))
      .map((b) => b.start)
      .filter((t) => t > killedAt)
      .sort((a, b) => a - b)[0];
    expect(twoAgain).toBeDefined();
    expect((twoAgain as number) - killedAt).toBeLessThan(3 * ttl + 2_000);
  }, 180_000);
});
