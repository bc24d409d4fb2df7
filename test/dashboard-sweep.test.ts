import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunSummary } from '../src/queue/jobs.ts';
import { partitionOf } from '../src/sweep/partitions.ts';
import {
  backdate,
  type Dashboard,
  initEntries,
  poisonedBacklog,
  startDashboardWithWorker,
} from './support/dashboard-harness.ts';

/**
 * "Sweep now" through the API with a real worker in this process. The schedule is an hour
 * apart (its first tick fires at start and is waited out), so only the test's requests sweep.
 */

let d: Dashboard;

type SweepState = {
  tickJobId: string;
  tickState: string;
  runId: string | null;
  joined: boolean;
  runState: string | null;
  progress: { partitions: number; partitionsDone: number; finalized: number } | null;
  summary: RunSummary | null;
  done: boolean;
};

beforeAll(async () => {
  d = await startDashboardWithWorker('dashboard_sweep', {
    SWEEP_CHUNK_SIZE: '25',
    // A failing partition fails for good at once (the poison-row test).
    SWEEP_ATTEMPTS: '1',
  });
});

afterAll(async () => {
  await d?.close();
});

async function requestSweep(): Promise<string> {
  const res = await d.get('/api/sweeps', { method: 'POST' });
  expect(res.status).toBe(202);
  return (await res.json()).tickJobId;
}

const readState = async (tickJobId: string): Promise<SweepState> =>
  (await d.get(`/api/sweeps/${tickJobId}`)).json();

/** Polls the sweep's state like the page does, keeping every state seen. */
async function follow(tickJobId: string): Promise<SweepState[]> {
  const seen: SweepState[] = [];
  await expect
    .poll(
      async () => {
        const state = await readState(tickJobId);
        seen.push(state);
        return state.done;
      },
      { message: `sweep ${tickJobId} to finish` },
    )
    .toBe(true);
  return seen;
}

const count = async (where: string) =>
  (await d.db.pool.query(`SELECT count(*)::int AS n FROM audit_log WHERE ${where}`)).rows[0].n;

describe('Sweep now', () => {
  it('finalizes the stale entries and reports the run, its progress and its totals', async () => {
    const stale = await initEntries(d.store, 300);
    await backdate(d, stale);
    const inFlight = await initEntries(d.store, 5, 1_000);
    const before = await (await d.get('/api/overview')).json();
    expect(before.backlog).toMatchObject({ stale: 300, inFlight: 5 });
    const runsBefore: number = before.recentRuns.length;

    const tickJobId = await requestSweep();
    const states = await follow(tickJobId);
    const last = states.at(-1) as SweepState;
    expect(last).toMatchObject({
      tickJobId,
      tickState: 'completed',
      runState: 'completed',
      joined: false,
      progress: { partitions: 8, partitionsDone: 8, finalized: 300 },
      summary: { finalized: 300, partitions: 8, trigger: 'manual', failedPartitions: [] },
    });
    expect(last.summary?.runId).toBe(last.runId);
    // Progress never goes backwards while the run goes on.
    const progress = states.flatMap((s) => (s.progress ? [s.progress] : []));
    for (const [i, p] of progress.entries()) {
      const previous = progress[i - 1];
      if (previous) {
        expect(p.finalized).toBeGreaterThanOrEqual(previous.finalized);
        expect(p.partitionsDone).toBeGreaterThanOrEqual(previous.partitionsDone);
      }
    }

    expect(await count(`id = ANY('{${stale.join(',')}}') AND result_kind = 'timeout'`)).toBe(300);
    expect(await count(`id = ANY('{${inFlight.join(',')}}') AND time_completed IS NULL`)).toBe(5);
    const after = await (await d.get('/api/overview')).json();
    expect(after.backlog).toMatchObject({ stale: 0, inFlight: 5 });
    expect(after.partitions.every((p: { stale: number }) => p.stale === 0)).toBe(true);
    expect(after.recentRuns).toHaveLength(runsBefore + 1);
    expect(after.recentRuns[0]).toMatchObject({ runId: last.runId, finalized: 300 });
  });

  it('pressed again during a sweep, joins it: two runs never overlap', async () => {
    const stale = await initEntries(d.store, 400, 2_000);
    await backdate(d, stale);
    const first = await requestSweep();
    const second = await requestSweep();
    await expect.poll(async () => (await readState(first)).runId).toBeTruthy();
    const third = await requestSweep();
    const finals = await Promise.all([first, second, third].map(follow));
    const summaries = finals.map((states) => (states.at(-1) as SweepState).summary as RunSummary);
    expect(summaries.every(Boolean)).toBe(true);
    const runs = new Map(summaries.map((s) => [s.runId, s]));
    // Any runs that did start one after the other, never side by side.
    const ordered = [...runs.values()].sort((a, b) => a.startedAt.localeCompare(b.startedAt));
    for (const [i, run] of ordered.entries()) {
      const next = ordered[i + 1];
      if (next)
        expect(Date.parse(next.startedAt)).toBeGreaterThanOrEqual(Date.parse(run.finishedAt));
    }
    expect([...runs.values()].reduce((n, s) => n + s.finalized, 0)).toBe(400);
    expect(await count(`id = ANY('{${stale.join(',')}}') AND result_kind = 'timeout'`)).toBe(400);
  });

  it('the overview page shows the run with its count', async () => {
    const html = await (await d.get('/')).text();
    const runs = (await (await d.get('/api/overview')).json()).recentRuns as RunSummary[];
    const ours = runs.find((r) => r.finalized === 300);
    expect(ours).toBeDefined();
    expect(html).toContain(`data-run-id="${ours?.runId}"`);
    expect(html).toMatch(/data-testid="run-chart"/);
    expect(html).toMatch(/data-testid="stale">0</);
  });

  it('a partition that fails shows as failed, with its error, while the others finish', async () => {
    const stale = await poisonedBacklog(d, 100, 5_000);
    const poison = stale[0] as string;

    const last = (await follow(await requestSweep())).at(-1) as SweepState;
    const partition = partitionOf(poison, 8);
    expect(last).toMatchObject({ done: true, runState: 'completed' });
    expect(last.progress).toMatchObject({ partitionsDone: 8, failedPartitions: 1 });
    expect(last.summary?.failedPartitions).toEqual([
      { partition, error: expect.stringMatching(/poisoned row/) },
    ]);
    const timedOut = await count(`id = ANY('{${stale.join(',')}}') AND result_kind = 'timeout'`);
    expect(last.summary?.finalized).toBe(timedOut);
    expect(last.progress?.finalized).toBe(timedOut);
    // Every partition but the poisoned one was drained.
    const overview = await (await d.get('/api/overview')).json();
    for (const p of overview.partitions) {
      if (p.partition !== partition) expect(p.stale).toBe(0);
    }
    expect(overview.partitions[partition].stale).toBeGreaterThan(0);
    const html = await (await d.get('/')).text();
    expect(html).toContain(`partition ${partition}: `);
    expect(html).toMatch(/poisoned row/);
    expect(html).toMatch(/class="bar failed"/);
  });
});
