import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { partitionJobId } from '../src/queue/job-ids.ts';
import type { RunSummary } from '../src/queue/jobs.ts';
import type { Overview } from '../src/read/overview.ts';
import { partitionOf } from '../src/sweep/partitions.ts';
import {
  basic,
  curePoison,
  type Dashboard,
  poisonedBacklog,
  startDashboardWithWorker,
} from './support/dashboard-harness.ts';
import { until } from './support/harness.ts';

/**
 * A partition that keeps failing (a row whose update always raises): it is an alert on the
 * overview with its error, it gets a single attempt in the runs after its first failure so the
 * others are not held up by its retries, and "Retry partition N now" sweeps it alone once the
 * cause is gone, which clears the alert.
 */

let d: Dashboard;
let partition = -1;
const READER_PASSWORD = 'an auditor reads';

beforeAll(async () => {
  d = await startDashboardWithWorker('partition_failures', {
    SWEEP_ATTEMPTS: '3',
    DASHBOARD_READER_PASSWORD: READER_PASSWORD,
  });
  const [poison] = await poisonedBacklog(d, 40, 100);
  partition = partitionOf(poison as string, 8);
});

afterAll(async () => {
  await d?.close();
});

const overview = async (): Promise<Overview> => (await d.get('/api/overview')).json();

/** Asks for a sweep and waits for its run's totals. */
async function sweep(): Promise<RunSummary> {
  const { tickJobId } = await (await d.get('/api/sweeps', { method: 'POST' })).json();
  return until(async () => {
    const s = await (await d.get(`/api/sweeps/${tickJobId}`)).json();
    return s.done ? (s.summary as RunSummary) : undefined;
  });
}

describe('a partition that keeps failing', () => {
  it('is an alert with its error, and the health says which partition', async () => {
    const first = await sweep();
    expect(first.failedPartitions).toEqual([
      { partition, error: expect.stringMatching(/poisoned row/) },
    ]);
    // Its first failure is retried as usual (SWEEP_ATTEMPTS).
    const job = await d.sq.partitions.getJob(partitionJobId(first.runId, partition, 0));
    expect(job?.attemptsMade).toBe(3);

    const o = await overview();
    expect(o.failingPartitions).toEqual([
      expect.objectContaining({ partition, partitions: 8, failedRuns: 1, runId: first.runId }),
    ]);
    expect(o.health.state).toBe('degraded');
    expect(o.health.reasons).toContainEqual(
      expect.objectContaining({
        code: 'partition_failing',
        message: expect.stringContaining(`partition ${partition} of 8`),
      }),
    );
    const html = await (await d.get('/')).text();
    expect(html).toContain(`data-testid="failing-partition" data-partition="${partition}"`);
    expect(html).toMatch(/poisoned row/);
    expect(html).toContain(`data-testid="retry-partition" data-partition="${partition}"`);
    // The reader sees the alert, without a button its login could not use.
    const reader = await (
      await d.get('/', { headers: { authorization: basic('reader', READER_PASSWORD) } })
    ).text();
    expect(reader).toContain(`data-testid="failing-partition" data-partition="${partition}"`);
    expect(reader).toMatch(/poisoned row/);
    expect(reader).not.toContain('data-testid="retry-partition"');
  });

  it('gets one attempt in the next runs, so it does not hold the run up with its retries', async () => {
    const second = await sweep();
    expect(second.failedPartitions.map((f) => f.partition)).toEqual([partition]);
    const job = await d.sq.partitions.getJob(partitionJobId(second.runId, partition, 0));
    expect(job?.opts.attempts).toBe(1);
    expect(job?.attemptsMade).toBe(1);
    // The other partitions' jobs keep their retries.
    const other = await d.sq.partitions.getJob(
      partitionJobId(second.runId, (partition + 1) % 8, 0),
    );
    expect(other?.opts.attempts).toBe(3);
    expect((await overview()).failingPartitions[0]?.failedRuns).toBe(2);
  });

  it('Retry partition N now: refused for a bad or healthy partition, sweeps the failing one alone', async () => {
    const bad = await d.get('/api/partitions/x/retry', { method: 'POST' });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.parameter).toBe('partition');
    const healthy = await d.get(`/api/partitions/${(partition + 1) % 8}/retry`, { method: 'POST' });
    expect(healthy.status).toBe(409);
    // Same-origin only, like every write.
    const cross = await d.get(`/api/partitions/${partition}/retry`, {
      method: 'POST',
      headers: { origin: 'https://evil.example' },
    });
    expect(cross.status).toBe(403);

    await curePoison(d);
    const res = await d.get(`/api/partitions/${partition}/retry`, { method: 'POST' });
    expect(res.status).toBe(202);
    const { runId } = await res.json();
    const o = await until(async () => {
      const now = await overview();
      return now.recentRuns[0]?.runId === runId ? now : undefined;
    });
    expect(o.recentRuns[0]).toMatchObject({
      trigger: 'retry',
      only: [partition],
      failedPartitions: [],
    });
    expect(o.failingPartitions).toEqual([]);
    expect(o.backlog?.stale).toBe(0);
    expect(o.health.state).toBe('healthy');
  });
});
