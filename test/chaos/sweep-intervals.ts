import { partitionOf } from '../../src/sweep/partitions.ts';
import type { WriteTx } from './audit-trail.ts';
import type { WorkerProcess } from './fleet.ts';
import type { FaultyProxy } from './proxy.ts';

/**
 * When each partition sweep held its lock, and whether two sweeps of one partition ever ran at
 * once. Every partition job logs `lockHeld.since` (its process's clock just after the lock was
 * granted) when it takes the lock, and `lockHeld.since`/`until` (until: just before it is given
 * back) with its status when it ends, at debug level. A sweep whose end was never logged is one
 * whose process died holding the lock (SIGKILL): it held it until the process ended. So one
 * lock's holders, if the lock works, have disjoint intervals with no tolerance needed: a
 * holder's `until` comes before its release, its successor's `since` after its grant.
 */

export type Interval = {
  worker: WorkerProcess;
  partitions: number;
  partition: number;
  start: number;
  end: number;
  error?: string;
  /** Never logged its end: its process was killed holding the lock. */
  cutByKill?: boolean;
};

/** Rounding between the database's microseconds and a process's milliseconds. */
const ROUNDING_MS = 1;

type LockLine = {
  job?: string;
  partition?: number;
  partitions?: number;
  lockHeld?: { since: number; until?: number };
  status?: { partition: number; partitions: number; error?: string };
};

export function loggedIntervals(w: WorkerProcess): Interval[] {
  const out: Interval[] = [];
  const open = new Map<string, Interval>();
  for (const line of w.cli.output().split('\n')) {
    if (!line.startsWith('{') || !line.includes('"lockHeld"')) continue;
    let rec: LockLine;
    try {
      rec = JSON.parse(line);
    } catch {
      continue;
    }
    const held = rec.lockHeld;
    const partition = rec.status?.partition ?? rec.partition;
    const partitions = rec.status?.partitions ?? rec.partitions;
    if (!held || partition === undefined || partitions === undefined) continue;
    const key = `${rec.job}|${held.since}`;
    if (held.until === undefined) {
      open.set(key, { worker: w, partition, partitions, start: held.since, end: Number.NaN });
      continue;
    }
    open.delete(key);
    const error = rec.status?.error;
    out.push({
      worker: w,
      partition,
      partitions,
      start: held.since,
      end: held.until,
      ...(error ? { error } : {}),
    });
  }
  for (const i of open.values())
    out.push({ ...i, end: w.endedAt ?? Date.now(), cutByKill: w.endedBy === 'sigkill' });
  return out;
}

/**
 * Whether a worker holds a partition lock right now, by its log, read incrementally: the faults
 * meant to take a lock from its holder (SIGSTOP, a Redis blackhole) wait for one with this.
 */
export function lockHolding(w: WorkerProcess): () => boolean {
  let read = 0;
  const open = new Set<string>();
  return () => {
    const out = w.cli.output();
    const end = out.lastIndexOf('\n') + 1;
    for (const line of out.slice(read, end).split('\n')) {
      if (!line.includes('"lockHeld"')) continue;
      try {
        const rec = JSON.parse(line) as LockLine;
        const key = `${rec.job}|${rec.lockHeld?.since}`;
        if (rec.lockHeld?.until === undefined) open.add(key);
        else open.delete(key);
      } catch {}
    }
    read = end;
    return open.size > 0;
  };
}

/** The worker whose proxy session wrote a transaction (ports are reused: match by time too). */
export function attribute(
  tx: WriteTx,
  slots: { pg: FaultyProxy }[],
  workers: WorkerProcess[],
): WorkerProcess | undefined {
  if (tx.port === null) return undefined;
  for (const [slot, s] of slots.entries()) {
    const used = s.pg.upstreamPorts.find(
      (u) => u.port === tx.port && u.from <= tx.start + 1 && (u.to ?? Infinity) >= tx.end - 1,
    );
    if (!used) continue;
    return workers.find(
      (w) => w.slot === slot && w.startedAt <= used.from && (w.endedAt ?? Infinity) >= used.from,
    );
  }
  return undefined;
}

/**
 * The sweep chunks a worker committed while it held no lock of a partition that holds the
 * chunk's rows, by its own log: none if every finalizing write is made under its lock. A
 * statement sent before a SIGKILL can still reach the database, or finish there, after it
 * (through a slow link, or already running): the lock it was sent under stays taken until its
 * TTL runs out, so a killed holding covers its chunks until then.
 */
export function chunksOutsideLocks(
  own: Interval[],
  chunks: WriteTx[],
  lockTtlMs: number,
): WriteTx[] {
  return chunks.filter(
    (c) =>
      !own.some(
        (i) =>
          partitionOf(c.minId, i.partitions) === i.partition &&
          partitionOf(c.maxId, i.partitions) === i.partition &&
          c.start >= i.start - ROUNDING_MS &&
          c.end <= i.end + (i.cutByKill ? lockTtlMs : 0) + ROUNDING_MS,
      ),
  );
}

export type Overlap = { a: Interval; b: Interval; ms: number; excuse: string | null };

/**
 * Every pair of sweeps of one partition (same count, same lock) that ran at once, with why the
 * lock could not keep them apart: a holder frozen or cut off from Redis past its lock's TTL
 * (lock lost), or Redis restarted empty (every lock lost). No excuse is a violation.
 */
export function overlaps(intervals: Interval[], redisRestarts: [number, number][]): Overlap[] {
  const groups = new Map<string, Interval[]>();
  for (const i of intervals) {
    const key = `${i.partition}-of-${i.partitions}`;
    groups.set(key, [...(groups.get(key) ?? []), i]);
  }
  const out: Overlap[] = [];
  for (const list of groups.values()) {
    list.sort((x, y) => x.start - y.start);
    for (let i = 0; i < list.length; i++) {
      const a = list[i] as Interval;
      for (let j = i + 1; j < list.length; j++) {
        const b = list[j] as Interval;
        if (b.start >= a.end) break;
        const ms = Math.min(a.end, b.end) - b.start;
        out.push({ a, b, ms, excuse: excuse(a, b, redisRestarts) });
      }
    }
  }
  return out;
}

function excuse(a: Interval, b: Interval, redisRestarts: [number, number][]): string | null {
  const during = (w: [number, number][], i: Interval) =>
    w.some(([from, to]) => from < i.end && to > i.start);
  for (const i of [a, b]) {
    if (i.error?.includes('lock lost')) return 'holder lost its lock (logged)';
    if (during(i.worker.frozen, i)) return 'holder frozen (SIGSTOP) past the lock TTL';
    if (during(i.worker.blackholed, i)) return "holder's Redis blackholed past the lock TTL";
  }
  if (redisRestarts.some(([from, to]) => from < Math.min(a.end, b.end) && to > a.start))
    return 'Redis restarted empty (every lock lost)';
  return null;
}
