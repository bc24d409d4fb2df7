import { mkdirSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from './support/browser.ts';
import type { CliProcess } from './support/cli.ts';
import {
  backdate,
  curePoison,
  type Dashboard,
  initEntries,
  PASSWORD,
  poisonedBacklog,
  startDashboard,
  USER,
  waitForFirstScheduledRun,
} from './support/dashboard-harness.ts';
import { processFleet } from './support/harness.ts';
import { type PrivateRedis, startPrivateRedis } from './support/private-servers.ts';

/**
 * What an on-call operator sees, in real headless Chromium: three worker processes in the fleet
 * list and one killed dropping off, the health summary turning degraded when the queue is paused
 * and when Redis is killed (the backlog still shown, with a banner), a failing partition's alert
 * and its retry button, a refresh that fails, and the page at phone width (390 px) without
 * sideways scrolling. Redis is private to this file. Screenshots go to test-artifacts/.
 */

const ARTIFACTS = 'test-artifacts';
const STARTED = /"msg":"sweep worker started"/;
let d: Dashboard;
let redis: PrivateRedis;
let browser: Browser;
let page: Page;
const fleet = processFleet();
const workers: CliProcess[] = [];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  redis = await startPrivateRedis();
  const settings = {
    REDIS_URL: redis.url,
    STALE_AFTER: '1h',
    SWEEP_EVERY: '1h',
    SWEEP_PARTITIONS: '8',
    // A failing partition fails for good at once: the alert shows without waiting out retries.
    SWEEP_ATTEMPTS: '1',
  };
  d = await startDashboard('browser_operator', { ...settings, DASHBOARD_BASE_PATH: '/ops/audit' });
  for (let i = 0; i < 3; i++)
    workers.push(fleet.start(['worker'], { ...d.env, ...settings, WORKER_METRICS_PORT: '0' }));
  await Promise.all(workers.map((w) => w.waitForOutput(STARTED)));
  await waitForFirstScheduledRun(d);
  browser = await launchChromium();
  page = await openPage(1280, 1000);
  await page.goto(`${d.origin}${d.base}/`);
});

afterAll(async () => {
  await browser?.close();
  for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
  await Promise.all(workers.map((w) => w.exited));
  await d?.close();
  await redis?.destroy();
});

async function openPage(width: number, height: number): Promise<Page> {
  const context = await browser.newContext({
    viewport: { width, height },
    httpCredentials: { username: USER, password: PASSWORD },
  });
  return context.newPage();
}

/** Pairs of the chart's text labels whose boxes intersect, as the browser laid them out. */
const overlappingLabels = (p: Page, testid: string) =>
  p.evaluate((id) => {
    const boxes = [...document.querySelectorAll(`[data-testid="${id}"] text`)]
      .map((t) => ({ text: t.textContent, r: t.getBoundingClientRect() }))
      .filter((b) => b.r.width > 0);
    const hits: string[] = [];
    for (const [i, a] of boxes.entries())
      for (const b of boxes.slice(i + 1))
        if (
          a.r.left < b.r.right &&
          b.r.left < a.r.right &&
          a.r.top < b.r.bottom &&
          b.r.top < a.r.bottom
        )
          hits.push(`${a.text} / ${b.text}`);
    return { labels: boxes.map((b) => b.text), hits };
  }, testid);

const health = () => page.getByTestId('health').getAttribute('data-state');
const workerPids = async () =>
  (await page.locator('[data-testid="worker"] td[data-label="PID"]').allTextContents()).map(Number);

describe('the operator view in Chromium', () => {
  it('lists the three live workers with their pid, version and settings; healthy', async () => {
    await expect.poll(workerPids).toHaveLength(3);
    expect((await workerPids()).sort()).toEqual(workers.map((w) => w.child.pid).sort());
    const row = page.getByTestId('worker').first();
    expect(await row.locator('td[data-label="Version"]').textContent()).toMatch(/^\d+\.\d+\.\d+/);
    expect(await row.locator('td[data-label="Settings"]').textContent()).toContain(
      'STALE_AFTER=1h',
    );
    expect(await page.getByTestId('settings-source').getAttribute('data-source')).toBe('workers');
    await expect.poll(health).toBe('healthy');
    await page.screenshot({ path: `${ARTIFACTS}/operator-1-fleet.png`, fullPage: true });
  });

  it('a killed worker drops off the list by itself', async () => {
    const victim = workers[1] as CliProcess;
    victim.child.kill('SIGKILL');
    await victim.exited;
    // Heartbeats expire within 15 s; the page refreshes itself every 5 s.
    await expect.poll(workerPids, { timeout: 40_000 }).toHaveLength(2);
    expect(await workerPids()).not.toContain(victim.child.pid);
    await page.screenshot({ path: `${ARTIFACTS}/operator-2-worker-killed.png`, fullPage: true });
  });

  it('pausing the queue turns the health degraded, naming the pause; resuming heals it', async () => {
    await d.sq.queue.pause();
    await expect.poll(health).toBe('degraded');
    expect(await page.getByTestId('health').textContent()).toMatch(/paused/);
    // Sweep now on a paused queue: no worker takes it, and the page says where to look.
    await page.getByTestId('sweep-now').click();
    const status = page.getByTestId('sweep-status');
    await expect
      .poll(() => status.textContent())
      .toMatch(/waiting for a worker.*health is degraded/);
    await page.screenshot({ path: `${ARTIFACTS}/operator-3-paused.png`, fullPage: true });
    await d.sq.queue.resume();
    await expect.poll(health).toBe('healthy');
    await expect.poll(() => status.textContent()).toMatch(/finished/);
  });

  it('a failing partition is an alert with its error; its retry button sweeps it again', async () => {
    await poisonedBacklog(d, 30, 100);
    await page.getByTestId('sweep-now').click();
    const alert = page.getByTestId('failing-partition');
    await expect.poll(() => alert.count()).toBe(1);
    expect(await alert.textContent()).toMatch(/poisoned row/);
    expect(await health()).toBe('degraded');
    await page.screenshot({
      path: `${ARTIFACTS}/operator-4-failing-partition.png`,
      fullPage: true,
    });

    await curePoison(d);
    await alert.getByTestId('retry-partition').click();
    await expect.poll(() => alert.count()).toBe(0);
    await expect.poll(() => page.getByTestId('stale').textContent()).toBe('0');
    expect(
      await page.locator('[data-testid="runs"] tr', { hasText: 'retry (partition' }).count(),
    ).toBe(1);
  });

  it('at 390 px wide: no sideways scroll, the runs readable, the chart sized for the phone', async () => {
    const phone = await openPage(390, 844);
    await phone.goto(`${d.origin}${d.base}/`);
    const widths = await phone.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      inner: window.innerWidth,
    }));
    expect(widths.scroll).toBeLessThanOrEqual(widths.inner);
    // Each run's figures are in view, labelled, inside the screen.
    const cell = phone.locator('[data-testid="runs"] [data-testid="run-finalized"]').first();
    const box = await cell.boundingBox();
    expect(box && box.x >= 0 && box.x + box.width <= 390).toBe(true);
    expect(await phone.getByTestId('run-chart-narrow').isVisible()).toBe(true);
    expect(await phone.getByTestId('run-chart').isVisible()).toBe(false);
    // Chart labels never overlap, and both axes say their unit, on the phone and the desktop.
    for (const [p, id] of [
      [phone, 'run-chart-narrow'],
      [page, 'run-chart'],
    ] as const) {
      const { labels, hits } = await overlappingLabels(p, id);
      expect(hits).toEqual([]);
      expect(labels).toEqual(expect.arrayContaining(['rows', 'run finished (UTC)']));
    }
    await phone.screenshot({ path: `${ARTIFACTS}/operator-5-phone.png`, fullPage: true });
    await phone.context().close();
  });

  it('with Redis killed: degraded, the backlog still shown with a banner naming the outage', async () => {
    const stale = await initEntries(d.store, 12, 1_000);
    await backdate(d, stale);
    await redis.kill();
    await expect.poll(() => page.getByTestId('outage-redis').count()).toBe(1);
    expect(await health()).not.toBe('healthy');
    expect(await page.getByTestId('health').textContent()).toMatch(/Redis does not answer/);
    expect(await page.getByTestId('stale').textContent()).toBe('12');
    expect(await page.getByTestId('partition-stale').count()).toBe(8);
    // Still counted with the workers' settings: those recorded with the last run, in PostgreSQL.
    expect(await page.getByTestId('settings-source').getAttribute('data-source')).toBe(
      'last-worker',
    );
    await page.screenshot({ path: `${ARTIFACTS}/operator-6-redis-down.png`, fullPage: true });
    // Bull Board's own API says "retry later" too, not a 500 with Redis's message.
    const board = await d.get('/queues/api/queues');
    expect(board.status).toBe(503);
    expect(await board.json()).toEqual({
      error: { message: 'a backing service is unavailable; retry later' },
    });
    // A fresh load renders too: PostgreSQL's side, not an error page.
    const fresh = await openPage(1280, 1000);
    const res = await fresh.goto(`${d.origin}${d.base}/`);
    expect(res?.status()).toBe(200);
    expect(await fresh.getByTestId('stale').textContent()).toBe('12');
    expect(await fresh.getByTestId('health').getAttribute('data-state')).toBe('degraded');
    await fresh.context().close();
  });

  it('an open page whose refresh fails says so at the top, with the age of what it shows', async () => {
    await page.route(`${d.origin}${d.base}/`, (route) => route.abort('connectionrefused'));
    const banner = page.getByTestId('refresh-status');
    await expect.poll(() => banner.isVisible()).toBe(true);
    expect(await banner.textContent()).toMatch(/Cannot refresh .* the figures below are .+ old/);
    await page.screenshot({ path: `${ARTIFACTS}/operator-7-refresh-failing.png` });
    await page.unroute(`${d.origin}${d.base}/`);
    await expect.poll(() => banner.isVisible()).toBe(false);
  });
});
