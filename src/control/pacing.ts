import { productKey, type SweepQueue } from '../queue/sweep-queue.ts';
import type { RedisClient } from '../redis-client.ts';
import { adaptiveKey, MAX_RATE, START_RATE } from './adaptive.ts';

/**
 * Fleet-wide pacing: one token bucket in Redis that every chunk of every worker draws its rows
 * from in one atomic script. The limit is on rows, whatever the number of processes: adding pods
 * never adds database load. The script reads Redis's own clock, so workers' clocks do not matter.
 *
 * The rate is SWEEP_MAX_ROWS_PER_SECOND, or, with the adaptive throttle on, the smaller of it and
 * the rate the fleet's sampler last set (adaptive.ts; START_RATE until it has). Each grant is
 * counted (`taken`), so the sampler knows whether the sweep used the rate it had.
 *
 * KEYS: bucket, adaptive state ('' field set when off). ARGV: fixed rate (-1: none), chunk size,
 * want (a negative want hands tokens back), adaptive (1/0), start rate. Grants all of the ask or
 * nothing, and then says how long until it could: a chunk never shrinks to a trickle of tiny
 * transactions, and a waiting chunk knows when to ask again. Returns {granted, wait, rate}.
 */
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local chunkSize = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
if ARGV[4] == '1' then
  local a = tonumber(redis.call('HGET', KEYS[2], 'rate')) or tonumber(ARGV[5])
  if rate < 0 or a < rate then rate = a end
end
local chunk = math.max(1, math.min(chunkSize, rate))
local cap = math.max(chunk, math.min(2 * chunkSize, rate))
if want > 0 then want = math.min(want, chunk) end
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
if ARGV[4] == '1' and granted > 0 then redis.call('HINCRBY', KEYS[2], 'taken', granted) end
return {granted, wait, math.floor(rate)}`;

/**
 * The bucket holds at most two chunks (at most a second's worth), so that tokens that arrive
 * while the chunks that want them are still waking up are not lost, and a burst stays short.
 * It starts with one chunk's worth.
 */
export class RowPacer {
  private readonly key: string;
  private readonly adaptiveKey: string;
  /** The rate of the last grant or refusal (the adaptive one when it steers). */
  rowsPerSecond: number;

  constructor(
    private readonly redis: RedisClient,
    sq: Pick<SweepQueue, 'prefix'>,
    /** SWEEP_MAX_ROWS_PER_SECOND (null: no fixed limit). */
    private readonly fixedRate: number | null,
    private readonly chunkSize: number,
    /** Whether the adaptive throttle steers the rate. */
    readonly adaptive: boolean,
  ) {
    this.key = productKey(sq, 'pacing-bucket');
    this.adaptiveKey = adaptiveKey(sq);
    this.rowsPerSecond = fixedRate ?? Math.min(START_RATE, MAX_RATE);
  }

  private run(want: number) {
    return this.redis.eval(
      TAKE,
      2,
      this.key,
      this.adaptiveKey,
      this.fixedRate ?? -1,
      this.chunkSize,
      want,
      this.adaptive ? 1 : 0,
      START_RATE,
    ) as Promise<[number, number, number]>;
  }

  /** Rows granted for the next chunk (0: none yet) and, when 0, how long to wait first. */
  async take(want: number): Promise<{ granted: number; waitMs: number }> {
    const [granted, waitMs, rate] = await this.run(want);
    this.rowsPerSecond = rate;
    return { granted, waitMs };
  }

  /** Hands back what a chunk was granted but did not use (it found fewer stale rows). */
  async giveBack(rows: number): Promise<void> {
    if (rows > 0) await this.run(-rows);
  }
}
