import { randomUUID } from 'node:crypto';
import type { RedisClient } from '../redis-client.ts';
import { deleteIfEqual, pexpireIfEqual } from './redis-scripts.ts';

/**
 * One sweep per partition at a time, for efficiency only: a lost or doubled lock wastes work but
 * cannot corrupt a row, because every finalizing UPDATE is conditional. It is a Redis key set with
 * NX and a TTL, holding a random token; renew and release act only if the token is still ours.
 */
export class PartitionLock {
  readonly key: string;
  private readonly token = randomUUID();

  constructor(
    private readonly redis: RedisClient,
    /** The key, e.g. partitionLockKey(sq, "3-of-16"): partition 3 of 7 is another range. */
    key: string,
    private readonly ttlMs: number,
  ) {
    this.key = key;
  }

  /** True when we now hold the lock; false when another sweep does. */
  async acquire(): Promise<boolean> {
    return (await this.redis.set(this.key, this.token, 'PX', this.ttlMs, 'NX')) === 'OK';
  }

  /** Extends our hold; false when the lock expired and may belong to someone else now. */
  renew(): Promise<boolean> {
    return pexpireIfEqual(this.redis, this.key, this.token, this.ttlMs);
  }

  async release(): Promise<void> {
    await deleteIfEqual(this.redis, this.key, this.token);
  }
}
