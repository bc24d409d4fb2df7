import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { isAlive, processFleet, sweeperEnv } from './support/harness.ts';
import {
  keySlot,
  type PrivateRedisCluster,
  startPrivateRedisCluster,
} from './support/redis-cluster.ts';
import { seed } from './support/seed.ts';

/**
 * A Redis Cluster that stays down: the master holding the queue's slot is SIGKILLed and has no
 * replica to take over, so every node answers CLUSTERDOWN for a minute. Once, one of two workers
 * died 9 s into such an outage of an unhandled rejection from ioredis ("Too many Cluster
 * redirections ... CLUSTERDOWN"). Every worker must live through it and drain after the heal.
 */

const OUTAGE_MS = 60_000;
let db: TestDatabase;
let cluster: PrivateRedisCluster;
const fleet = processFleet();

beforeAll(async () => {
  db = await createTestDatabase('cluster_down');
  cluster = await startPrivateRedisCluster({ replicas: 0 });
});
afterEach((context) => fleet.cleanup(context));
afterAll(async () => {
  await cluster?.destroy();
  await db?.drop();
});

const stale = async () =>
  (await db.pool.query(`SELECT count(*)::int AS n FROM audit_log WHERE time_completed IS NULL`))
    .rows[0].n as number;

describe('a Redis Cluster down for a minute', () => {
  it('keeps every worker alive, and the backlog drains once it heals', {
    timeout: 240_000,
  }, async () => {
    const prefix = `{cluster-down-${Date.now().toString(36)}}`;
    const env = sweeperEnv(
      { databaseUrl: db.url, prefix, redisUrl: cluster.url },
      { SWEEP_EVERY: '2s', SWEEP_LOCK_TTL: '3s', SWEEP_PARTITIONS: '4', SWEEP_CHUNK_SIZE: '500' },
    );
    const workers = [fleet.start(['worker'], env), fleet.start(['worker'], env)];
    await Promise.all(workers.map((w) => w.waitForOutput(/"msg":"sweep worker started"/)));
    // A first backlog drains: the fleet works before the outage.
    await seed(db.pool, { kind: 'incomplete', count: 2_000, tag: 'before' });
    await expect.poll(stale).toBe(0);

    const slot = await keySlot(cluster.nodes[0]?.port ?? 0, prefix);
    const { port } = await cluster.killMasterOf(slot);
    await expect.poll(() => cluster.isOk(), { timeout: 30_000 }).toBe(false);
    // Work arrives while Redis is down; nothing can be queued until it is back.
    await seed(db.pool, { kind: 'incomplete', count: 5_000, tag: 'during' });
    const downSince = Date.now();
    while (Date.now() - downSince < OUTAGE_MS) {
      for (const w of workers) expect(isAlive(w), w.output().slice(-3000)).toBe(true);
      await new Promise((r) => setTimeout(r, 1_000));
    }
    expect(await cluster.isOk()).toBe(false);

    await cluster.restart(port);
    await expect.poll(() => cluster.isOk(), { timeout: 60_000 }).toBe(true);
    await expect.poll(stale, { timeout: 120_000 }).toBe(0);
    for (const w of workers) expect(isAlive(w)).toBe(true);
    // The outage was seen and logged, not crashed through.
    const logs = workers.map((w) => w.output()).join('\n');
    expect(logs).toMatch(/CLUSTERDOWN|Redis connection error/);
    expect(logs).not.toMatch(/"level":60/);
  });
});
