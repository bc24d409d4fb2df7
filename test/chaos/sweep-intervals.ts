import type { WriteTx } from './audit-trail.ts';
import type { WorkerProcess } from './fleet.ts';
import type { FaultyProxy } from './proxy.ts';

/**
 * When each partition sweep ran, and whether two sweeps of one partition ever ran at once.
 * A sweep that ended is read from its worker's log: every partition job logs its status
 * (partition, partitions, durationMs, error) when it ends, at debug level or above, after it
 * released its lock. A sweep cut short by SIGKILL logs nothing: it is rebuilt from the chunks
 * its worker committed (the audit trail's transactions, attributed to the worker through the
 * proxy port its session used), from its first such chunk to the kill.
 */

export type Interval = {
  worker: WorkerProcess;
  partitions: number;
  partition: number;
  start: number;
  end: number;
  error?: string;
  cutByKill?: boolean;
  /** A killed sweep whose chunks fit a partition of more than one count: which it was is unknown. */
  ambiguous?: boolean;
};

/** Overlaps shorter than this are the gap between a lock's release and its holder's log line. */
const TOLERANCE_MS = 50;

/** Partition of an id for n partitions: ranges of the id's first 32 bits (README). */
export function partitionOf(id: string, n: number): number {
  const prefix = Number.parseInt(id.slice(0, 8), 16);
  for (let p = 0; p < n; p++) if (prefix < Math.floor(((p + 1) * 2 ** 32) / n)) return p;
  return n - 1;
}

export function loggedIntervals(w: WorkerProcess): Interval[] {
  const out: Interval[] = [];
  for (const line of w.cli.output().split('\n')) {
    if (!line.includes('"durationMs"') || !line.startsWith('{')) continue;
    let rec: {
      time: number;
      status?: { partition: number; partitions: number; durationMs: number; error?: string };
    };
    try {
      rec = JSON.parse(line);
    } catch {
      continue;
    }
    const s = rec.status;
    if (!s || typeof s.partition !== 'number') continue;
    out.push({
      worker: w,
      partitions: s.partitions,
      partition: s.partition,
      start: rec.time - s.durationMs,
      end: rec.time,
      ...(s.error ? { error: s.error } : {}),
    });
  }
  return out;
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

export function killedIntervals(
  w: WorkerProcess,
  logged: Interval[],
  chunks: WriteTx[],
  /** The partition counts any worker had been given by then: a job may carry any of them. */
  countsAt: (t: number) => number[],
): Interval[] {
  if (w.endedBy !== 'sigkill' || w.endedAt === null) return [];
  const spans = new Map<string, Interval>();
  for (const c of chunks) {
    // Every (count, partition) whose range holds the whole chunk; more than one: ambiguous.
    const fits = countsAt(c.start)
      .map((n) => ({ n, p: partitionOf(c.minId, n) }))
      .filter(({ n, p }) => partitionOf(c.maxId, n) === p);
    const inLogged = logged.some((i) =>
      fits.some(
        ({ n, p }) =>
          i.partitions === n &&
          i.partition === p &&
          c.start >= i.start - TOLERANCE_MS &&
          c.end <= i.end + TOLERANCE_MS,
      ),
    );
    if (inLogged) continue;
    for (const { n, p } of fits) {
      const key = `${p}-of-${n}`;
      const span = spans.get(key) ?? {
        worker: w,
        partitions: n,
        partition: p,
        start: c.start,
        end: c.end,
        cutByKill: true,
      };
      span.start = Math.min(span.start, c.start);
      span.end = Math.max(span.end, c.end);
      if (fits.length > 1) span.ambiguous = true;
      spans.set(key, span);
    }
  }
  // From its first chunk to its last: what it provably wrote (it may have waited after that).
  return [...spans.values()];
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
        if (b.start >= a.end - TOLERANCE_MS) break;
        const ms = Math.min(a.end, b.end) - b.start;
        if (ms <= TOLERANCE_MS) continue;
        out.push({ a, b, ms, excuse: excuse(a, b, redisRestarts) });
      }
    }
  }
  return out;
}

function excuse(a: Interval, b: Interval, redisRestarts: [number, number][]): string | null {
  const during = (w: [number, number][], i: Interval) =>
    w.some(([from, to]) => from < i.end && to > i.start);
  // A logged sweep's start is estimated (its log time minus its duration, and the line is
  // written after the lock's release, late under Redis faults): its first chunks can fall before
  // it and be rebuilt, after the worker's kill, as a sweep of their own. Within one process two
  // sweeps of one partition would need one lock taken twice, which its token forbids.
  if (a.worker === b.worker && (a.cutByKill || b.cutByKill))
    return "one process: a logged sweep and the chunks rebuilt after that process's kill";
  for (const i of [a, b]) {
    if (i.ambiguous) return 'killed sweep whose partition count is unknown (its chunks fit two)';
    if (i.error?.includes('lock lost')) return 'holder lost its lock (logged)';
    if (during(i.worker.frozen, i)) return 'holder frozen (SIGSTOP) past the lock TTL';
    if (during(i.worker.blackholed, i)) return "holder's Redis blackholed past the lock TTL";
  }
  if (redisRestarts.some(([from, to]) => from < Math.min(a.end, b.end) && to > a.start))
    return 'Redis restarted empty (every lock lost)';
  return null;
}
