import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PartitionLock } from '../src/queue/partition-lock.ts';
import { createTestPrefix, TEST_REDIS_URL } from './support/redis.ts';

/**
 * The per-partition lock against a real Redis: one holder at a time, only the holder can renew
 * or release it, and it expires by itself when its holder stops renewing it (a dead or frozen
 * worker), so that the partition is never blocked for longer than the TTL.
 */

const { prefix, cleanup } = createTestPrefix('partition-lock');
let redis: Redis;
let other: Redis;
let n = 0;
/** Each test locks its own partition number, so tests cannot see each other's keys. */
const nextPartition = () => n++;

beforeAll(async () => {
  redis = new Redis(TEST_REDIS_URL);
  // A second connection, as a second worker process would have.
  other = new Redis(TEST_REDIS_URL);
});

afterAll(async () => {
  await cleanup();
  redis?.disconnect();
  other?.disconnect();
});

describe('PartitionLock', () => {
  it('only one holder at a time; the key is named after the partition and holds a token', async () => {
    const p = nextPartition();
    const a = new PartitionLock(redis, `${prefix}:partition-lock:${p}`, 10_000);
    const b = new PartitionLock(other, `${prefix}:partition-lock:${p}`, 10_000);
    expect(a.key).toBe(`${prefix}:partition-lock:${p}`);
    expect(b.key).toBe(a.key);

    expect(await a.acquire()).toBe(true);
    expect(await b.acquire()).toBe(false);
    // Not even the holder can take it twice (a second job of the same worker has its own lock).
    expect(await a.acquire()).toBe(false);
    const token = await redis.get(a.key);
    expect(token).toMatch(/^[0-9a-f-]{36}$/);
    const ttl = await redis.pttl(a.key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(10_000);

    // Another partition is independent.
    const c = new PartitionLock(other, `${prefix}:partition-lock:${nextPartition()}`, 10_000);
    expect(await c.acquire()).toBe(true);
    await c.release();

    await a.release();
    expect(await redis.exists(a.key)).toBe(0);
    expect(await b.acquire()).toBe(true);
    await b.release();
  });

  it('a non-holder can neither renew nor release the lock; the holder can', async () => {
    const p = nextPartition();
    const holder = new PartitionLock(redis, `${prefix}:partition-lock:${p}`, 5_000);
    const intruder = new PartitionLock(other, `${prefix}:partition-lock:${p}`, 60_000);
    expect(await holder.acquire()).toBe(true);
    const token = await redis.get(holder.key);

    expect(await intruder.renew()).toBe(false);
    // The intruder's renewal did not extend the TTL to its own 60 s.
    expect(await redis.pttl(holder.key)).toBeLessThanOrEqual(5_000);

    await intruder.release();
    expect(await redis.get(holder.key)).toBe(token);
    expect(await intruder.acquire()).toBe(false);

    await redis.pexpire(holder.key, 1_000);
    expect(await holder.renew()).toBe(true);
    const renewed = await redis.pttl(holder.key);
    expect(renewed).toBeGreaterThan(1_000);
    expect(renewed).toBeLessThanOrEqual(5_000);

    await holder.release();
    expect(await redis.exists(holder.key)).toBe(0);
    // Releasing twice is harmless.
    await holder.release();
    expect(await intruder.acquire()).toBe(true);
    await intruder.release();
  });

  it('expires by itself after the TTL when not renewed; the old holder then cannot renew or release its successor', async () => {
    const p = nextPartition();
    const frozen = new PartitionLock(redis, `${prefix}:partition-lock:${p}`, 1_000);
    const successor = new PartitionLock(other, `${prefix}:partition-lock:${p}`, 10_000);
    expect(await frozen.acquire()).toBe(true);
    expect(await successor.acquire()).toBe(false);

    await sleep(1_500);
    expect(await redis.exists(frozen.key)).toBe(0);
    expect(await frozen.renew()).toBe(false);

    expect(await successor.acquire()).toBe(true);
    const token = await other.get(successor.key);
    // The frozen holder wakes up: it must not extend or delete the successor's lock.
    expect(await frozen.renew()).toBe(false);
    await frozen.release();
    expect(await redis.get(successor.key)).toBe(token);
    expect(await redis.pttl(successor.key)).toBeGreaterThan(1_000);
    await successor.release();
  });

  it('renewal keeps the lock held beyond its TTL', async () => {
    const p = nextPartition();
    const holder = new PartitionLock(redis, `${prefix}:partition-lock:${p}`, 1_000);
    const waiter = new PartitionLock(other, `${prefix}:partition-lock:${p}`, 1_000);
    expect(await holder.acquire()).toBe(true);
    for (let i = 0; i < 6; i++) {
      await sleep(400);
      expect(await holder.renew()).toBe(true);
      expect(await waiter.acquire()).toBe(false);
    }
    // 2.4 s have passed, more than twice the TTL: renewal is what kept it.
    await holder.release();
    expect(await waiter.acquire()).toBe(true);
    await waiter.release();
  });
});
