import type { Pool } from '../db/pool.ts';
import * as sql from '../sql/headroom.ts';

/**
 * The cutoff's headroom: how long real operations take against STALE_AFTER. An operation that
 * outlives the cutoff is timed out while it runs, and its real result, when it comes, is dropped
 * as a late completion; this says how close the application comes to that.
 */
export type Headroom = {
  /** Operations completed with success or error in the window (at most SAMPLE_LIMIT). */
  samples: number;
  p99Ms: number | null;
  maxMs: number | null;
  windowMs: number;
};

export const HEADROOM_WINDOW_MS = 3_600_000;
const SAMPLE_LIMIT = 10_000;
/** Read again at most this often: the overview is read on every page load and scrape. */
const CACHE_MS = 60_000;

const cache = new WeakMap<Pool, { at: number; value: Promise<Headroom> }>();

/** The newest completed operations' durations, cached a minute per pool, one read at a time. */
export function readHeadroom(pool: Pool, now = Date.now()): Promise<Headroom> {
  const hit = cache.get(pool);
  if (hit && now - hit.at < CACHE_MS) return hit.value;
  const value = sql
    .operationDurations(pool, { windowMs: HEADROOM_WINDOW_MS, limit: SAMPLE_LIMIT })
    .then((r) => ({
      samples: r.samples,
      p99Ms: r.p99Ms === null ? null : Math.round(r.p99Ms),
      maxMs: r.maxMs === null ? null : Math.round(r.maxMs),
      windowMs: HEADROOM_WINDOW_MS,
    }));
  cache.set(pool, { at: now, value });
  // A failed read is not kept: the next caller tries again.
  value.catch(() => cache.delete(pool));
  return value;
}

/** Real operations this close to the cutoff (a share of STALE_AFTER) make the health degraded. */
export const HEADROOM_WARN_SHARE = 0.5;
