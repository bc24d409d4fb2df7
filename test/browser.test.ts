import { mkdirSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJobId } from '../src/queue/job-ids.ts';
import { SWEEP_QUEUE } from '../src/queue/jobs.ts';
import { launchChromium } from './support/browser.ts';
import {
  backdate,
  type Dashboard,
  initEntries,
  PASSWORD,
  startDashboardWithWorker,
  USER,
} from './support/dashboard-harness.ts';

/**
 * The dashboard in real headless Chromium (Debian's), served under a base path as behind a
 * reverse proxy: log in, see the stale backlog, press Sweep now, watch it drain and the run
 * appear with its count, then find the run's job in Bull Board. Screenshots go to
 * test-artifacts/.
 */

const ARTIFACTS = 'test-artifacts';
const STALE = 240;
const TIMEOUT = 60_000;

let d: Dashboard;
let browser: Browser;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  d = await startDashboardWithWorker('browser', {
    DASHBOARD_BASE_PATH: '/ops/audit',
    SWEEP_CHUNK_SIZE: '20',
  });
  const stale = await initEntries(d.store, STALE);
  await backdate(d, stale);
  await initEntries(d.store, 4, 10_000);
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await d?.close();
});

async function openPage(credentials?: { username: string; password: string }): Promise<Page> {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 1000 },
    ...(credentials ? { httpCredentials: credentials } : {}),
  });
  return context.newPage();
}

describe('dashboard in Chromium', () => {
  it('refuses a browser without credentials or with wrong ones', async () => {
    for (const credentials of [undefined, { username: USER, password: `${PASSWORD}!` }]) {
      const page = await openPage(credentials);
      // Chromium gives up on a Basic challenge it cannot answer (an error, or the 401 itself).
      const outcome = await page.goto(`${d.origin}${d.base}/`).then(
        (res) => `HTTP ${res?.status()}`,
        (err: Error) => err.message,
      );
      expect(outcome).toMatch(/^HTTP 401$|ERR_INVALID_AUTH_CREDENTIALS/);
      expect(await page.getByTestId('stale').count()).toBe(0);
      await page.context().close();
    }
  });

  it('shows the backlog, sweeps on request, and the run appears in the page and Bull Board', async () => {
    const page = await openPage({ username: USER, password: PASSWORD });
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    // Our own requests only: Bull Board's UI also asks Google for fonts, which CI cannot reach,
    // and navigating away aborts the page's pending fetches.
    const ours = (url: string) => url.startsWith(`${d.origin}${d.base}/`);
    page.on('response', (r) => {
      if (ours(r.url()) && r.status() >= 400) errors.push(`HTTP ${r.status()} ${r.url()}`);
    });
    page.on('requestfailed', (r) => {
      const failure = r.failure()?.errorText ?? '';
      if (ours(r.url()) && failure !== 'net::ERR_ABORTED') errors.push(`${failure} ${r.url()}`);
    });

    const res = await page.goto(`${d.origin}${d.base}/`);
    expect(res?.status()).toBe(200);
    const stale = page.getByTestId('stale');
    await expect.poll(() => stale.textContent()).toBe(String(STALE));
    expect(await page.getByTestId('in-flight').textContent()).toBe('4');
    const partitionStale = await page.getByTestId('partition-stale').allTextContents();
    expect(partitionStale).toHaveLength(8);
    expect(partitionStale.reduce((n, t) => n + Number(t), 0)).toBe(STALE);
    await page.screenshot({ path: `${ARTIFACTS}/browser-1-overview.png`, fullPage: true });

    await page.getByTestId('sweep-now').click();
    const status = page.getByTestId('sweep-status');
    await expect
      .poll(() => status.textContent(), { timeout: TIMEOUT })
      .toMatch(new RegExp(`finished: ${STALE} rows finalized`));
    // The page refreshes its figures by itself: no reload.
    await expect.poll(() => stale.textContent(), { timeout: TIMEOUT }).toBe('0');
    const runId = /Run (\S+) finished/.exec((await status.textContent()) ?? '')?.[1] ?? '';
    expect(runId).toMatch(/^r\w+$/);
    const row = page.locator(`tr[data-run-id="${runId}"]`);
    await expect.poll(() => row.count(), { timeout: TIMEOUT }).toBe(1);
    expect(await row.getByTestId('run-finalized').textContent()).toBe(String(STALE));
    await expect
      .poll(() => page.locator(`[data-testid="run-chart"] rect[data-run-id="${runId}"]`).count())
      .toBe(1);
    await page.screenshot({ path: `${ARTIFACTS}/browser-2-after-sweep.png`, fullPage: true });

    // Bull Board, through the overview's link: its UI must load under the base path.
    await page.getByTestId('bull-board-link').click();
    await page.waitForURL(`${d.origin}${d.base}/queues**`);
    // Runs and their partition jobs are two queues, so the run is not buried among them.
    await page.getByText('Partition jobs').first().waitFor({ timeout: TIMEOUT });
    await page.getByText('Runs', { exact: true }).first().waitFor({ timeout: TIMEOUT });
    await page.screenshot({ path: `${ARTIFACTS}/browser-3-bull-board.png`, fullPage: true });
    await page.goto(`${d.origin}${d.base}/queues/queue/${SWEEP_QUEUE}?status=completed`);
    const runJob = page.getByText(runJobId(runId)).first();
    await runJob.waitFor({ timeout: TIMEOUT });
    await runJob.scrollIntoViewIfNeeded();
    // Times are in UTC, as on the overview.
    await page
      .getByText(/\d\d:\d\d:\d\d UTC/)
      .first()
      .waitFor({ timeout: TIMEOUT });
    await page.screenshot({ path: `${ARTIFACTS}/browser-4-bull-board-run.png` });
    // And its header leads back to the overview.
    // Bull Board puts its misc links in the menu behind the header's last button.
    await page.locator('header [aria-haspopup="menu"]').last().click();
    await page.getByText('Back to the overview').first().click();
    await page.waitForURL(`${d.origin}${d.base}/`);
    await page.getByTestId('stale').waitFor({ timeout: TIMEOUT });

    // Pause and Resume from the page (same-origin POSTs with the page's credentials).
    await page.getByTestId('pause-reason').fill('browser test');
    await page.getByTestId('pause').click();
    await expect
      .poll(() => page.getByTestId('control-state').textContent(), { timeout: TIMEOUT })
      .toBe('paused');
    expect(
      await page.locator('.card', { has: page.getByTestId('control-state') }).textContent(),
    ).toContain('browser test');
    await page.screenshot({ path: `${ARTIFACTS}/browser-5-paused.png` });
    await page.getByTestId('resume').click();
    await expect
      .poll(() => page.getByTestId('control-state').textContent(), { timeout: TIMEOUT })
      .toBe('running');

    expect(errors).toEqual([]);
    await page.context().close();
  });
});
