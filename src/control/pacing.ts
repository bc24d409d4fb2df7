import { productKey, type SweepQueue } from '../queue/sweep-queue.ts';
import type { RedisClient } from '../redis-client.ts';

/**
 * Fleet-wide pacing: one token bucket in Redis, refilled at SWEEP_MAX_ROWS_PER_SECOND, that every
 * chunk of every worker draws its rows from in one atomic script. The limit is on rows, whatever
 * the number of processes: adding pods never adds database load. The script reads Redis's own
 * clock, so workers' clocks do not matter.
 *
 * ARGV: rate (tokens/s), capacity, want (a negative want hands tokens back). Grants all of
 * `want` or nothing, and then says how long until it could: a chunk never shrinks to a trickle
 * of tiny transactions, and a waiting chunk knows when to ask again.
 */
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1])
local at = tonumber(b[2])
if tokens == nil or at == nil then tokens = math.max(0, math.min(cap, want)); at = now end
tokens = math.min(cap, tokens + math.max(0, now - at) * rate / 1000)
local granted = 0
local wait = 0
if want < 0 then
  tokens = math.min(cap, tokens - want)
elseif tokens >= want then
  granted = want
  tokens = tokens - want
else
  wait = math.ceil((want - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], 60000)
return {granted, wait}`;

export class RowPacer {
  private readonly key: string;
  /**
   * What the bucket holds at most: two chunks (at most a second's worth), so that tokens that
   * arrive while the chunks that want them are still waking up are not lost, and a burst stays
   * short. It starts with one chunk's worth.
   */
  readonly capacity: number;
  private readonly chunk: number;

  constructor(
    private readonly redis: RedisClient,
    sq: Pick<SweepQueue, 'prefix'>,
    readonly rowsPerSecond: number,
    chunkSize: number,
  ) {
    this.key = productKey(sq, 'pacing-bucket');
    this.chunk = Math.max(1, Math.min(chunkSize, rowsPerSecond));
    this.capacity = Math.max(this.chunk, Math.min(2 * chunkSize, rowsPerSecond));
  }

  /** Rows granted for the next chunk (0: none yet) and, when 0, how long to wait first. */
  async take(want: number): Promise<{ granted: number; waitMs: number }> {
    const ask = Math.min(want, this.chunk);
    const [granted, waitMs] = (await this.redis.eval(
      TAKE,
      1,
      this.key,
      this.rowsPerSecond,
      this.capacity,
      ask,
    )) as [number, number];
    return { granted, waitMs };
  }

  /** Hands back what a chunk was granted but did not use (it found fewer stale rows). */
  async giveBack(rows: number): Promise<void> {
    if (rows > 0)
      await this.redis.eval(TAKE, 1, this.key, this.rowsPerSecond, this.capacity, -rows);
  }
}
