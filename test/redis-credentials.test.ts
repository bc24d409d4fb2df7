import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { type PrivateRedis, startPrivateRedis } from './support/private-servers.ts';
import { type PrivateRedisCluster, startPrivateRedisCluster } from './support/redis-cluster.ts';
import { command } from './support/redis-nodes.ts';
import { type PrivateSentinel, startPrivateSentinel } from './support/redis-sentinel.ts';

/**
 * Wrong or missing Redis credentials are a bad setting, on every topology: a worker and `status`
 * exit 2 with one line naming REDIS_URL and the node that refused, without the password, instead
 * of retrying AUTH for ever. With Sentinel the sentinels may take no password while the data
 * nodes do: the primary they name is asked too.
 */

const PASSWORD = 'data-nodes-secret';
const WRONG = 'not-the-password';
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('redis_credentials');
});
afterAll(async () => {
  await db?.drop();
});

const cliEnv = (redisUrl: string) => ({
  DATABASE_URL: db.url,
  REDIS_URL: redisUrl,
  QUEUE_PREFIX: '{credentials}',
  LOG_LEVEL: 'warn',
});

/** Runs `verb` with REDIS_URL; the process must exit 2 with one line, returned. */
async function refused(verb: string, redisUrl: string): Promise<string> {
  const { code, output } = await runCli([verb], cliEnv(redisUrl));
  expect(code, output).toBe(2);
  const lines = output.trim().split('\n');
  expect(lines, output).toHaveLength(1);
  expect(output).not.toContain(WRONG);
  expect(output).not.toContain(PASSWORD);
  return lines[0] ?? '';
}

/**
 * `status --json` with REDIS_URL reads Redis: its report lists nothing unavailable. (It exits 3,
 * "down", since no worker runs here; 2 would be a bad setting.)
 */
async function answers(redisUrl: string) {
  const { code, output } = await runCli(['status', '--json'], cliEnv(redisUrl));
  expect(code, output).toBe(3);
  const report = JSON.parse(output.trim().split('\n').at(-1) ?? '');
  expect(report.unavailable).toEqual({});
  expect(report.health.reasons.map((r: { code: string }) => r.code)).toContain('no_live_worker');
}

describe('one server', () => {
  let redis: PrivateRedis;
  beforeAll(async () => {
    redis = await startPrivateRedis({ password: PASSWORD });
  });
  afterAll(async () => {
    await redis?.destroy();
  });

  it('no password and a wrong one are refused; the right one answers', async () => {
    const bare = `redis://127.0.0.1:${redis.port}`;
    expect(await refused('worker', bare)).toMatch(
      new RegExp(`^REDIS_URL: 127.0.0.1:${redis.port} refused the credentials \\(NOAUTH`),
    );
    expect(await refused('status', `redis://:${WRONG}@127.0.0.1:${redis.port}`)).toMatch(
      /refused the credentials \((WRONGPASS|NOAUTH).*set user:password@ in REDIS_URL$/,
    );
    await answers(redis.url);
  }, 60_000);
});

describe('Sentinel whose data nodes require a password (the sentinels do not)', () => {
  let sentinel: PrivateSentinel;
  let list: string;
  beforeAll(async () => {
    sentinel = await startPrivateSentinel('audit');
    list = sentinel.sentinels.map((s) => `127.0.0.1:${s.port}`).join(',');
    for (const node of [sentinel.replica, sentinel.primary]) {
      await command(node.port, ['CONFIG', 'SET', 'masterauth', PASSWORD]);
      await command(node.port, ['CONFIG', 'SET', 'requirepass', PASSWORD]);
    }
    for (const s of sentinel.sentinels)
      await command(s.port, ['SENTINEL', 'SET', 'audit', 'auth-pass', PASSWORD]);
  }, 120_000);
  afterAll(async () => {
    await sentinel?.destroy();
  });

  it('the primary the sentinels name refuses a missing or wrong password; the right one answers', async () => {
    const primary = await sentinel.primaryPort();
    const bare = await refused('worker', `redis+sentinel://${list}/audit`);
    expect(bare).toMatch(
      new RegExp(`^REDIS_URL: 127.0.0.1:${primary} refused the credentials \\(NOAUTH`),
    );
    expect(bare).toMatch(/set user:password@ in REDIS_URL \(the data nodes' password/);
    const wrong = await refused('status', `redis+sentinel://:${WRONG}@${list}/audit`);
    expect(wrong).toMatch(/refused the credentials \((WRONGPASS|NOAUTH)/);
    await answers(`redis+sentinel://:${PASSWORD}@${list}/audit`);
  }, 60_000);

  it('sentinels with a password of their own refuse a URL without ?sentinelPassword=', async () => {
    const SENTINEL_PASSWORD = 'sentinels-own-secret';
    for (const s of sentinel.sentinels)
      await command(s.port, ['ACL', 'SETUSER', 'default', 'on', `>${SENTINEL_PASSWORD}`]);
    const line = await refused('worker', `redis+sentinel://:${PASSWORD}@${list}/audit`);
    expect(line).toMatch(
      /^REDIS_URL: the sentinel at 127\.0\.0\.1:\d+ refused the credentials \(NOAUTH.*set \?sentinelPassword= \(and &sentinelUsername=\) in REDIS_URL$/,
    );
    await answers(
      `redis+sentinel://:${PASSWORD}@${list}/audit?sentinelPassword=${SENTINEL_PASSWORD}`,
    );
  }, 60_000);
});

describe('Redis Cluster whose nodes require a password', () => {
  let cluster: PrivateRedisCluster;
  beforeAll(async () => {
    cluster = await startPrivateRedisCluster();
    for (const node of cluster.nodes) {
      await command(node.port, ['CONFIG', 'SET', 'masterauth', PASSWORD]);
      await command(node.port, ['CONFIG', 'SET', 'requirepass', PASSWORD]);
    }
  }, 120_000);
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('a missing or wrong password is refused; the right one answers', async () => {
    const seeds = cluster.url.replace(/^redis\+cluster:\/\//, '');
    expect(await refused('worker', cluster.url)).toMatch(/refused the credentials \(NOAUTH/);
    expect(await refused('status', `redis+cluster://:${WRONG}@${seeds}`)).toMatch(
      /refused the credentials \((WRONGPASS|NOAUTH).*set user:password@ in REDIS_URL$/,
    );
    await answers(`redis+cluster://:${PASSWORD}@${seeds}`);
  }, 60_000);
});
