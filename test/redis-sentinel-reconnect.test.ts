import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { silentLogger } from '../src/log.ts';
import { connectProducer, type RedisClient } from '../src/queue/connection.ts';
import { type FaultyProxy, startProxy } from './chaos/proxy.ts';
import { command } from './support/redis-nodes.ts';
import { type PrivateSentinel, startPrivateSentinel } from './support/redis-sentinel.ts';

/**
 * A Sentinel failover that arrives while the client is already reconnecting must not end the
 * client. ioredis keeps the failover detector of the lost connection subscribed; its
 * `+switch-master` used to abort the reconnect under way, and the client then answered every
 * command with "Connection is closed." for good (CI saw it after a SIGKILLed primary). Here the
 * sentinels answer through a slow proxy, so the reconnect's question to them is still out when
 * the failover is announced.
 */

/** Each way, per chunk: the reconnect's two questions to a sentinel take four times this. */
const SENTINEL_LATENCY_MS = 2_500;

let sentinel: PrivateSentinel;
let proxies: FaultyProxy[] = [];
let client: RedisClient | undefined;

beforeAll(async () => {
  sentinel = await startPrivateSentinel('audit');
  proxies = await Promise.all(
    sentinel.sentinels.map((s, i) => startProxy(`sentinel-${i}`, s.port)),
  );
}, 120_000);

afterAll(async () => {
  client?.disconnect();
  await Promise.all(proxies.map((p) => p.close()));
  await sentinel?.destroy();
});

it('a failover announced while the client reconnects: the client reconnects to the new primary', async () => {
  const url = `redis+sentinel://${proxies.map((p) => `127.0.0.1:${p.port}`).join(',')}/audit`;
  const config = loadConfig({ REDIS_URL: url, QUEUE_PREFIX: '{reconnect}' });
  const redis = await connectProducer(config, silentLogger);
  client = redis;
  await redis.set('{reconnect}:before', '1');
  const oldPrimary = await sentinel.primaryPort();
  // The detector subscribes once the connection is up: wait until every sentinel has it.
  await expect
    .poll(async () => {
      const lists = await Promise.all(
        sentinel.sentinels.map((s) => command(s.port, ['CLIENT', 'LIST'])),
      );
      return lists.every((list) => / sub=[1-9]/.test(String(list)));
    })
    .toBe(true);

  for (const p of proxies) p.latencyMs = SENTINEL_LATENCY_MS;
  // Drop the client's connection (the primary stays up): it starts reconnecting at once,
  // asking the slow sentinels for the primary...
  const clients = String(await command(oldPrimary, ['CLIENT', 'LIST']));
  const id = /id=(\d+) [^\n]*name=audit-sweeper-producer/.exec(clients)?.[1];
  expect(id, clients).toBeDefined();
  await command(oldPrimary, ['CLIENT', 'KILL', 'ID', String(id)]);
  // ...and meanwhile the primary changes: +switch-master reaches the old detector first.
  await command(sentinel.sentinels[0]?.port ?? 0, ['SENTINEL', 'FAILOVER', 'audit']);
  await sentinel.waitForNewPrimary(oldPrimary);

  // Writes reach the new primary once the reconnect is through; the client never gives up.
  await expect
    .poll(
      () =>
        redis.set('{reconnect}:after', '1').then(
          () => 'written',
          (err: Error) => `${err.message} (client ${redis.status})`,
        ),
      { timeout: 60_000, interval: 500 },
    )
    .toBe('written');
  expect(await command(await sentinel.primaryPort(), ['GET', '{reconnect}:after'])).toBe('1');
}, 120_000);
