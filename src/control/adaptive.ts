import { hostname } from 'node:os';
import type { ImpactTarget } from '../config.ts';
import type { Pool } from '../db/pool.ts';
import type { Logger } from '../log.ts';
import { productKey, type SweepQueue } from '../queue/sweep-queue.ts';
import type { RedisClient } from '../redis-client.ts';
import { probeCommit } from '../sql/impact-probe.ts';

/**
 * The adaptive throttle (SWEEP_IMPACT_TARGET): the fleet measures what an application write
 * feels, and steers the fleet-wide row rate of the pacing bucket (pacing.ts) so that it stays
 * under a target. One worker of the fleet, elected by a Redis lease, is the sampler: every
 * PROBE_EVERY_MS it commits a one-row UPDATE synchronously (the WAL flush every application
 * commit pays) and times it. A probe still in flight counts with its time so far, so a stalled
 * database cuts the rate before the probe returns. Steering is AIMD, as TCP does: cut the rate
 * by CUT when the signal is above target (at most once per CUT_EVERY_MS, the time a cut takes
 * to show), raise it by RAISE_ROWS per probe when the signal is well under target and the
 * sweep actually used the rate it had (an idle sweeper does not climb to full speed and then
 * hit the database with it). The state lives in one Redis hash every chunk's bucket reads.
 */
export const PROBE_EVERY_MS = 250;
/** The signal: the mean of the last few probes (about a second), plus one in flight. */
const WINDOW = 4;
const CUT = 0.6;
const CUT_EVERY_MS = 1_000;
const RAISE_ROWS = 1_000;
/** Raised only while the signal is under this share of the target (a band where it holds). */
const RAISE_BELOW = 0.8;
/** Where a fleet with no state yet starts, and the floor a cut never goes under. */
export const START_RATE = 10_000;
export const MIN_RATE = 200;
/** The ceiling when SWEEP_MAX_ROWS_PER_SECOND is off. */
export const MAX_RATE = 1_000_000;
/**
 * The idle baseline: a moving average of the probes taken while the fleet took no rows (what
 * an application's commit costs on this database at its usual load, the sweep apart), each
 * probe weighing this much. A probe above 4x the baseline counts as 4x, so one stall does not
 * move it far. It is kept for a week in Redis, so a new sampler goes on from it.
 */
const BASELINE_WEIGHT = 0.02;
const BASELINE_TTL_MS = 7 * 86_400_000;
/** A target never under this: below it, scheduling noise alone would hold the sweep back. */
const TARGET_FLOOR_MS = 2;
/** The sampler's lease: lost when it stops renewing, so another worker takes over. */
const LEASE_MS = 3_000;
/** The state is dropped this long after the sampler stopped: the bucket then starts over. */
const STATE_TTL_MS = 30_000;

export const adaptiveKey = (sq: Pick<SweepQueue, 'prefix'>) => productKey(sq, 'adaptive');
const leaseKey = (sq: Pick<SweepQueue, 'prefix'>) => productKey(sq, 'adaptive-sampler');
const baselineKey = (sq: Pick<SweepQueue, 'prefix'>) => productKey(sq, 'adaptive-baseline');

/** What the sampler last decided, as `status`, the overview and the metrics show it. */
export type AdaptiveState = {
  rate: number;
  signalMs: number;
  targetMs: number;
  baselineMs: number;
  sampler: string;
  /** Why the rate is what it is, in one line. */
  reason: string;
  at: number;
};

/** The AIMD step, apart from Redis and the database. */
export function steer(o: {
  rate: number;
  signalMs: number;
  targetMs: number;
  /** Rows the fleet took since the last step, against what the rate allowed. */
  used: number;
  allowed: number;
  sinceCutMs: number;
  ceiling: number;
}): { rate: number; cut: boolean } {
  if (o.signalMs > o.targetMs) {
    if (o.sinceCutMs < CUT_EVERY_MS) return { rate: o.rate, cut: false };
    return { rate: Math.max(MIN_RATE, Math.round(o.rate * CUT)), cut: true };
  }
  const busy = o.used >= 0.5 * o.allowed;
  if (o.signalMs < RAISE_BELOW * o.targetMs && busy)
    return { rate: Math.min(o.ceiling, o.rate + RAISE_ROWS), cut: false };
  return { rate: Math.min(o.ceiling, o.rate), cut: false };
}

export const targetMs = (t: ImpactTarget, baselineMs: number) =>
  Math.max(TARGET_FLOOR_MS, 'ms' in t ? t.ms : t.multiple * baselineMs);

const fmtRate = (r: number) => (r >= 10_000 ? `${Math.round(r / 1000)}k` : String(Math.round(r)));
const fmtMs = (ms: number) => (ms >= 10 ? String(Math.round(ms)) : ms.toFixed(1));

export function describeAdaptive(s: Pick<AdaptiveState, 'rate' | 'signalMs' | 'targetMs'>) {
  const over = s.signalMs > s.targetMs;
  return `adaptive: commit latency ${fmtMs(s.signalMs)} ms ${over ? '>' : '<='} ${fmtMs(s.targetMs)} ms target, rate ${fmtRate(s.rate)} rows/s`;
}

/** Renews the lease when this process holds it, takes it when nobody does. */
const LEASE = `
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if cur then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`;

/**
 * Every worker runs one; only the elected one probes and steers. Started with the worker,
 * stopped at its shutdown.
 */
export class ImpactSampler {
  private readonly me = `${hostname()}:${process.pid}`;
  private readonly timer: NodeJS.Timeout;
  private samples: number[] = [];
  private inFlightSince: number | null = null;
  private lastCut = 0;
  private lastTaken: number | null = null;
  private ticking = false;
  private leader = false;

  constructor(
    private readonly deps: {
      redis: RedisClient;
      sq: Pick<SweepQueue, 'prefix'>;
      /** A pool of one connection of its own. */
      probePool: Pool;
      logger: Logger;
      target: ImpactTarget;
      ceiling: number;
    },
  ) {
    this.timer = setInterval(() => this.tick(), PROBE_EVERY_MS);
    this.timer.unref();
  }

  stop() {
    clearInterval(this.timer);
  }

  private async tick() {
    if (this.ticking) {
      // A probe still in flight: its time so far is a sample already, when it is long; the
      // lease is kept meanwhile, so no second sampler starts probing behind the same stall.
      if (this.leader && this.inFlightSince !== null) {
        const { redis, sq } = this.deps;
        await redis.eval(LEASE, 1, leaseKey(sq), this.me, LEASE_MS).catch(() => {});
        await this.step(performance.now() - this.inFlightSince).catch(() => {});
      }
      return;
    }
    this.ticking = true;
    try {
      const { redis, sq } = this.deps;
      const leader = (await redis.eval(LEASE, 1, leaseKey(sq), this.me, LEASE_MS)) === 1;
      if (leader !== this.leader)
        this.deps.logger.info(
          { sampler: leader },
          leader
            ? 'this worker measures the commit latency for the fleet (adaptive throttle)'
            : 'another worker measures the commit latency now',
        );
      this.leader = leader;
      if (!leader) {
        this.samples = [];
        this.lastTaken = null;
        return;
      }
      this.inFlightSince = performance.now();
      let ms: number;
      try {
        await probeCommit(this.deps.probePool);
        ms = performance.now() - this.inFlightSince;
      } catch (err) {
        // No answer is no measure: the rate stays; the pool's own logs say what is wrong.
        this.deps.logger.debug({ err }, 'the commit-latency probe failed');
        return;
      } finally {
        this.inFlightSince = null;
      }
      this.samples.push(ms);
      if (this.samples.length > WINDOW) this.samples.shift();
      await this.step(null);
    } catch (err) {
      this.deps.logger.debug({ err }, 'the adaptive throttle could not steer this time');
    } finally {
      this.ticking = false;
    }
  }

  /** One AIMD step from the last probes (and, when given, a probe in flight this long). */
  private async step(inFlightMs: number | null) {
    const { redis, sq } = this.deps;
    const key = adaptiveKey(sq);
    const [[rateRaw, takenRaw], baselineRaw] = await Promise.all([
      redis.hmget(key, 'rate', 'taken') as Promise<(string | null)[]>,
      redis.get(baselineKey(sq)),
    ]);
    const rate = rateRaw === null ? Math.min(START_RATE, this.deps.ceiling) : Number(rateRaw);
    const done = this.samples;
    const last = done.at(-1);
    if (last === undefined && inFlightMs === null) return;
    const taken = Number(takenRaw ?? 0);
    const used = this.lastTaken === null || taken < this.lastTaken ? 0 : taken - this.lastTaken;
    const idle = this.lastTaken !== null && used === 0;
    this.lastTaken = taken;
    let baseline = baselineRaw === null ? (last ?? inFlightMs ?? 1) : Number(baselineRaw);
    if (baselineRaw !== null && idle && inFlightMs === null && last !== undefined)
      baseline += (Math.min(last, 4 * baseline) - baseline) * BASELINE_WEIGHT;
    if (baselineRaw === null || idle)
      await redis.set(baselineKey(sq), String(baseline), 'PX', BASELINE_TTL_MS);
    const all = inFlightMs === null ? done : [...done, inFlightMs];
    const signalMs = all.reduce((a, b) => a + b, 0) / all.length;
    const target = targetMs(this.deps.target, baseline);
    const now = performance.now();
    const next = steer({
      rate,
      signalMs,
      targetMs: target,
      used,
      allowed: (rate * PROBE_EVERY_MS) / 1000,
      sinceCutMs: now - this.lastCut,
      ceiling: this.deps.ceiling,
    });
    if (next.cut) this.lastCut = now;
    const state: AdaptiveState = {
      rate: next.rate,
      signalMs: Math.round(signalMs * 100) / 100,
      targetMs: Math.round(target * 100) / 100,
      baselineMs: Math.round(baseline * 1000) / 1000,
      sampler: this.me,
      reason: '',
      at: Date.now(),
    };
    state.reason = describeAdaptive(state);
    await redis
      .multi()
      .hset(key, {
        rate: String(state.rate),
        signalMs: String(state.signalMs),
        targetMs: String(state.targetMs),
        baselineMs: String(state.baselineMs),
        sampler: state.sampler,
        reason: state.reason,
        at: String(state.at),
      })
      .pexpire(key, STATE_TTL_MS)
      .exec();
  }
}

/** The sampler's last decision; null when no sampler steers (off, or no worker running). */
export async function readAdaptive(
  sq: Pick<SweepQueue, 'prefix'>,
  redis: RedisClient,
): Promise<AdaptiveState | null> {
  const h = await redis.hgetall(adaptiveKey(sq));
  if (!h.at || !h.rate) return null;
  return {
    rate: Number(h.rate),
    signalMs: Number(h.signalMs),
    targetMs: Number(h.targetMs),
    baselineMs: Math.round(Number(h.baselineMs) * 1000) / 1000,
    sampler: h.sampler ?? '',
    reason: h.reason ?? '',
    at: Number(h.at),
  };
}
