import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import { productKey, type SweepQueue } from '../queue/sweep-queue.ts';
import type { RedisClient } from '../redis-client.ts';
import { VERSION } from '../version.ts';
import type { FleetSettings } from './settings.ts';

/**
 * The fleet: every worker process writes a heartbeat record every HEARTBEAT_EVERY_MS, a key of
 * its own that expires after HEARTBEAT_TTL_MS, so a process that is killed or frozen drops off
 * the list by itself within that time; a process that shuts down cleanly removes its record at
 * once. An index (sorted set by last heartbeat) lets readers list them without SCAN; readers
 * ignore and prune index entries whose record has expired.
 */
export const HEARTBEAT_EVERY_MS = 5_000;
export const HEARTBEAT_TTL_MS = 15_000;

export type WorkerHeartbeat = {
  /** `host:pid:random`: also the BullMQ worker name, so Bull Board and getWorkers show it. */
  id: string;
  /** The machine or pod (os.hostname(): the pod name in Kubernetes). */
  host: string;
  pid: number;
  version: string;
  concurrency: number;
  settings: FleetSettings;
  startedAt: string;
  lastHeartbeat: string;
  /** Jobs this process is working on right now. */
  jobsInHand: number;
  jobs: { id: string; name: string }[];
};

/**
 * What a heartbeat must look like to be believed. Anything with access to Redis can write one,
 * and its fields reach the overview, `status` and the backlog's cutoff: a record that does not
 * fit (markup where a number belongs, a STALE_AFTER that is no duration) is no worker of ours
 * and is left out. Settings added in later versions are optional, so a rolling upgrade's older
 * workers still count.
 */
const ms = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const SETTINGS_SCHEMA = z.object({
  STALE_AFTER: ms.min(1),
  SWEEP_EVERY: ms.min(1),
  SWEEP_PARTITIONS: z.number().int().min(1).max(1_000_000),
  SWEEP_CHUNK_SIZE: z.number().int().min(1),
  SWEEP_TIME_BUDGET: ms,
  SWEEP_LOCK_TTL: ms,
  SWEEP_ATTEMPTS: z.number().int().min(1),
  SWEEP_LOCK_TIMEOUT: ms.optional(),
  SWEEP_STATEMENT_TIMEOUT: ms.optional(),
  RETENTION: ms.nullable(),
  DATABASE: z.string().max(1_000),
});
const text = z.string().max(1_000);
const HEARTBEAT_SCHEMA = z.object({
  id: text,
  host: text,
  pid: z.number().int().nonnegative(),
  version: text,
  concurrency: z.number().int().min(1).max(1_000),
  settings: SETTINGS_SCHEMA,
  startedAt: z.iso.datetime(),
  lastHeartbeat: z.iso.datetime(),
  jobsInHand: z.number().int().nonnegative(),
  jobs: z.array(z.object({ id: text, name: text })).max(1_000),
});

/** The record, if it is a heartbeat as workers write them; undefined otherwise. */
export function parseHeartbeat(raw: string): WorkerHeartbeat | undefined {
  try {
    const parsed = HEARTBEAT_SCHEMA.safeParse(JSON.parse(raw));
    return parsed.success ? (parsed.data as WorkerHeartbeat) : undefined;
  } catch {
    return undefined;
  }
}

const indexKey = (sq: Pick<SweepQueue, 'prefix'>) => productKey(sq, 'workers');
const recordKey = (sq: Pick<SweepQueue, 'prefix'>, id: string) => productKey(sq, `worker:${id}`);
/** The settings of the last worker that heartbeated, kept without expiry: readers' fallback. */
const lastSettingsKey = (sq: Pick<SweepQueue, 'prefix'>) => productKey(sq, 'worker-settings');

/** This process's identity in the fleet. */
export function workerIdentity() {
  const host = hostname();
  const pid = process.pid;
  return { id: `${host}:${pid}:${randomBytes(3).toString('hex')}`, host, pid, version: VERSION };
}

export type Heartbeat = {
  /** Writes one heartbeat now (the timer calls it too). */
  beat: () => Promise<void>;
  /** Stops beating and removes the record: the process leaves the fleet at once. */
  stop: () => Promise<void>;
};

/**
 * Starts heartbeating for one worker process. `state` is read at each beat (jobs in hand).
 * A beat that is still waiting for Redis (an outage) is not doubled by the next.
 */
export function startHeartbeat(
  sq: Pick<SweepQueue, 'prefix'>,
  redis: RedisClient,
  me: Omit<WorkerHeartbeat, 'lastHeartbeat' | 'jobsInHand' | 'jobs'>,
  state: () => { id: string; name: string }[],
  onError: (err: unknown) => void,
): Heartbeat {
  let pending: Promise<void> | undefined;
  const beat = () => {
    pending ??= (async () => {
      const jobs = state();
      const now = Date.now();
      const record: WorkerHeartbeat = {
        ...me,
        lastHeartbeat: new Date(now).toISOString(),
        jobsInHand: jobs.length,
        jobs: jobs.slice(0, 20),
      };
      await redis
        .multi()
        .set(recordKey(sq, me.id), JSON.stringify(record), 'PX', HEARTBEAT_TTL_MS)
        .zadd(indexKey(sq), now, me.id)
        .zremrangebyscore(indexKey(sq), '-inf', now - 10 * HEARTBEAT_TTL_MS)
        .set(lastSettingsKey(sq), JSON.stringify(me.settings))
        .exec();
    })()
      .catch(onError)
      .finally(() => {
        pending = undefined;
      });
    return pending;
  };
  const timer = setInterval(beat, HEARTBEAT_EVERY_MS);
  timer.unref();
  return {
    beat,
    stop: async () => {
      clearInterval(timer);
      // Bounded: with Redis away the record expires by itself within HEARTBEAT_TTL_MS.
      await Promise.race([
        redis.multi().del(recordKey(sq, me.id)).zrem(indexKey(sq), me.id).exec(),
        new Promise((resolve) => setTimeout(resolve, 1_000).unref()),
      ]);
    },
  };
}

/** The live workers (heartbeat within HEARTBEAT_TTL_MS), oldest first. */
export async function readHeartbeats(
  sq: Pick<SweepQueue, 'prefix'>,
  redis: RedisClient,
): Promise<WorkerHeartbeat[]> {
  const ids = await redis.zrange(indexKey(sq), '0', '-1');
  if (ids.length === 0) return [];
  const records = await redis.mget(ids.map((id) => recordKey(sq, id)));
  const gone = ids.filter((_, i) => records[i] === null);
  // Expired records: the process stopped heartbeating. Best effort; the next reader tries again.
  if (gone.length) await redis.zrem(indexKey(sq), ...gone).catch(() => {});
  return records
    .flatMap((r) => (r === null ? [] : (parseHeartbeat(r) ?? [])))
    .sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}

/** What the last worker to heartbeat ran with, even if none is alive now. */
export async function readLastWorkerSettings(
  sq: Pick<SweepQueue, 'prefix'>,
  redis: RedisClient,
): Promise<FleetSettings | null> {
  const raw = await redis.get(lastSettingsKey(sq));
  if (!raw) return null;
  try {
    const parsed = SETTINGS_SCHEMA.safeParse(JSON.parse(raw));
    return parsed.success ? (parsed.data as FleetSettings) : null;
  } catch {
    return null;
  }
}
