import type { RedisClient } from '../redis-client.ts';

/**
 * Compare-and-act on a key that holds an owner's token, in one atomic script each: an owner that
 * froze past its key's TTL cannot extend or delete what belongs to its successor now.
 */
const DELETE_IF_EQUAL = `if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1]) else return 0 end`;
const PEXPIRE_IF_EQUAL = `if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

/** Deletes `key` if it still holds `value`; true when it did. */
export async function deleteIfEqual(
  redis: RedisClient,
  key: string,
  value: string,
): Promise<boolean> {
  return (await redis.eval(DELETE_IF_EQUAL, 1, key, value)) === 1;
}

/** The same, queued on a MULTI so that it commits with the rest of the transaction. */
export const deleteIfEqualIn = (
  multi: ReturnType<RedisClient['multi']>,
  key: string,
  value: string,
) => multi.eval(DELETE_IF_EQUAL, 1, key, value);

/** Sets `key`'s TTL if it still holds `value`; true when it did. */
export async function pexpireIfEqual(
  redis: RedisClient,
  key: string,
  value: string,
  ttlMs: number,
): Promise<boolean> {
  return (await redis.eval(PEXPIRE_IF_EQUAL, 1, key, value, ttlMs)) === 1;
}
