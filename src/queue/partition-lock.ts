import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * One sweep per partition at a time, for efficiency only: a lost or doubled lock wastes work but
 * cannot corrupt a row, because every finalizing UPDATE is conditional. It is a Redis key set with
 * NX and a TTL, holding a random token; renew and release act only if the token is still ours,
 * so a holder that froze past its TTL cannot extend or delete its successor's lock.
 */
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1]) else return 0 end`;

export class PartitionLock {
  readonly key: string;
  private readonly token = randomUUID();

  constructor(
    private readonly redis: Redis,
    keyPrefix: string,
    /** Names the id range: "3-of-16" (partition 3 of 7 is another range, with its own lock). */
    partition: string | number,
    private readonly ttlMs: number,
  ) {
    this.key = `${keyPrefix}:partition-lock:${partition}`;
  }

  /** True when we now hold the lock; false when another sweep does. */
  async acquire(): Promise<boolean> {
    return (await this.redis.set(this.key, this.token, 'PX', this.ttlMs, 'NX')) === 'OK';
  }

  /** Extends our hold; false when the lock expired and may belong to someone else now. */
  async renew(): Promise<boolean> {
    return (await this.redis.eval(RENEW, 1, this.key, this.token, this.ttlMs)) === 1;
  }

  async release(): Promise<void> {
    await this.redis.eval(RELEASE, 1, this.key, this.token);
  }
}
