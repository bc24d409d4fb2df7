import { describe, expect, it } from 'vitest';
import type { WriteTx } from './chaos/audit-trail.ts';
import type { WorkerProcess } from './chaos/fleet.ts';
import { chunksOutsideLocks, loggedIntervals, overlaps } from './chaos/sweep-intervals.ts';
import type { CliProcess } from './support/cli.ts';

/**
 * The chaos run's overlap check (`npm run chaos`) is only worth its `violations: 0` if it
 * catches two holders of one partition's lock at once. These feed it the log lines a partition
 * job writes (workers/jobs/partition.ts) and check what it finds.
 */

const taken = (job: string, partition: number, since: number) =>
  JSON.stringify({
    job,
    partition,
    partitions: 4,
    lockHeld: { since },
    msg: 'partition lock taken',
  });
const ended = (job: string, partition: number, since: number, until: number, error?: string) =>
  JSON.stringify({
    job,
    partition,
    status: { partition, partitions: 4, ...(error ? { error } : {}) },
    lockHeld: { since, until },
    msg: 'partition swept',
  });

function worker(name: string, lines: string[], more: Partial<WorkerProcess> = {}): WorkerProcess {
  return {
    slot: 0,
    name,
    partitions: 4,
    cli: { output: () => `${lines.join('\n')}\n` } as unknown as CliProcess,
    startedAt: 0,
    endedAt: null,
    endedBy: null,
    frozen: [],
    blackholed: [],
    maxRssMb: 0,
    ...more,
  };
}

describe('the chaos run: sweeps of one partition at once', () => {
  it('holders one after the other do not overlap, to the millisecond', () => {
    const a = worker('a', [taken('1', 2, 1000), ended('1', 2, 1000, 2000)]);
    const b = worker('b', [taken('2', 2, 2001), ended('2', 2, 2001, 3000)]);
    expect(overlaps([...loggedIntervals(a), ...loggedIntervals(b)], [])).toEqual([]);
  });

  it('two holders at once with nothing to explain it are an unexcused overlap', () => {
    const a = worker('a', [taken('1', 2, 1000), ended('1', 2, 1000, 2000)]);
    const b = worker('b', [taken('2', 2, 1500), ended('2', 2, 1500, 3000)]);
    const found = overlaps([...loggedIntervals(a), ...loggedIntervals(b)], []);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ ms: 500, excuse: null });
    // Other partitions, or another partition count, are other locks.
    const c = worker('c', [taken('3', 1, 1500), ended('3', 1, 1500, 3000)]);
    expect(overlaps([...loggedIntervals(a), ...loggedIntervals(c)], [])).toEqual([]);
  });

  it('an overlap is excused, and counted, when the first holder was frozen or lost its lock', () => {
    const frozen = worker('a', [taken('1', 2, 1000), ended('1', 2, 1000, 9000)], {
      frozen: [[1200, 8000]],
    });
    const b = worker('b', [taken('2', 2, 4000), ended('2', 2, 4000, 5000)]);
    expect(overlaps([...loggedIntervals(frozen), ...loggedIntervals(b)], [])[0]?.excuse).toMatch(
      /frozen/,
    );
    const lost = worker('a', [
      taken('1', 2, 1000),
      ended('1', 2, 1000, 9000, 'partition lock lost'),
    ]);
    expect(overlaps([...loggedIntervals(lost), ...loggedIntervals(b)], [])[0]?.excuse).toMatch(
      /lost its lock/,
    );
    expect(
      overlaps([...loggedIntervals(lost), ...loggedIntervals(b)], [[3000, 3500]]),
    ).toHaveLength(1);
  });

  it('a sweep killed holding its lock holds it until the kill; its chunks land until the lock expires', () => {
    const killed = worker('a', [taken('1', 2, 1000)], { endedAt: 5000, endedBy: 'sigkill' });
    const [interval] = loggedIntervals(killed);
    expect(interval).toMatchObject({ start: 1000, end: 5000, cutByKill: true });
    const b = worker('b', [taken('2', 2, 4000), ended('2', 2, 4000, 6000)]);
    expect(overlaps([...loggedIntervals(killed), ...loggedIntervals(b)], [])[0]?.excuse).toBeNull();

    // Partition 2 of 4 is ids 80000000..bfffffff.
    const chunk = (start: number, end: number, minId = '90000000'): WriteTx => ({
      txid: String(start),
      port: 1,
      start,
      end,
      rows: 10,
      kind: 'timeout',
      minId: `${minId}-0000-4000-8000-000000000000`,
      maxId: `${minId}-0000-4000-8000-000000000001`,
    });
    const inside = chunk(2000, 2100);
    // Sent before the kill, committed after it: its lock (TTL 3 s here) was still taken.
    const inFlight = chunk(5100, 5200);
    const afterTtl = chunk(8100, 8200);
    const otherPartition = chunk(2000, 2100, '10000000');
    expect(
      chunksOutsideLocks(
        loggedIntervals(killed),
        [inside, inFlight, afterTtl, otherPartition],
        3_000,
      ),
    ).toEqual([afterTtl, otherPartition]);
    // A holding that ended by itself covers nothing after its end.
    expect(chunksOutsideLocks(loggedIntervals(b), [chunk(6100, 6200)], 3_000)).toHaveLength(1);
  });
});
