import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Overview } from '../src/read/overview.ts';
import {
  backdate,
  type Dashboard,
  initEntries,
  startDashboard,
  waitForFirstScheduledRun,
} from './support/dashboard-harness.ts';

/**
 * The dashboard reads the fleet: it counts with the workers' STALE_AFTER, not its own, names a
 * setting on which it and the workers disagree, and turns degraded when the workers disagree
 * among themselves. Its /metrics reports the same health.
 */

let d: Dashboard;
beforeAll(async () => {
  d = await startDashboard('dashboard_fleet', { STALE_AFTER: '4h', SWEEP_EVERY: '1h' });
  await d.startWorker({ STALE_AFTER: '1h' });
  await waitForFirstScheduledRun(d);
  await backdate(d, await initEntries(d.store, 5), 2);
});
afterAll(async () => {
  await d?.close();
});

const overview = async (): Promise<Overview> => (await d.get('/api/overview')).json();

describe('the dashboard and the fleet', () => {
  it('counts with the worker’s cutoff and names where its own differs', async () => {
    const o = await overview();
    expect(o.settingsSource).toBe('workers');
    expect(o.staleAfterMs).toBe(3_600_000);
    // Two hours old: stale for the worker's 1h, not for the dashboard's own 4h.
    expect(o.backlog?.stale).toBe(5);
    expect(o.drift).toEqual([
      {
        setting: 'STALE_AFTER',
        betweenWorkers: false,
        values: [
          { value: '1h', processes: [expect.stringMatching(/^worker .+ pid \d+$/)] },
          { value: '4h', processes: ['this dashboard'] },
        ],
      },
    ]);
    expect(o.health.state).toBe('healthy');
    const html = await (await d.get('/')).text();
    expect(html).toContain('data-testid="settings-drift"');
    expect(html).toMatch(/STALE_AFTER differs: 1h \(worker .+\) vs 4h \(this dashboard\)/);
    expect(html).toMatch(/data-testid="stale">5</);
    const metrics = await (await d.get('/metrics')).text();
    expect(metrics).toMatch(/^audit_sweeper_backlog_rows\{state="stale"\} 5$/m);
    expect(metrics).toMatch(/^audit_sweeper_health\{state="healthy"\} 1$/m);
  });

  it('workers that disagree make the health degraded, naming the setting', async () => {
    await d.startWorker({ STALE_AFTER: '1h', SWEEP_PARTITIONS: '4' });
    await expect.poll(async () => (await overview()).workers?.length).toBe(2);
    const o = await overview();
    expect(o.health.state).toBe('degraded');
    expect(o.health.reasons).toContainEqual(
      expect.objectContaining({
        code: 'settings_drift',
        message: expect.stringMatching(/SWEEP_PARTITIONS differs: 16 \(.+\) vs 4 \(.+\)/),
      }),
    );
    const metrics = await (await d.get('/metrics')).text();
    expect(metrics).toMatch(/^audit_sweeper_health\{state="degraded"\} 1$/m);
    expect(metrics).toMatch(/^audit_sweeper_live_workers 2$/m);
  });
});
