import { mkdirSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEARTBEAT_TTL_MS } from '../src/fleet/heartbeat.ts';
import { SWEEP_QUEUE } from '../src/queue/jobs.ts';
import { productKey } from '../src/queue/sweep-queue.ts';
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
 * Every page carries a Content-Security-Policy, and the pages still work under it in real
 * Chromium: Bull Board (its queues, a queue's jobs and their tabs, a job's page, the schedulers)
 * and the overview, for the operator and for the reader (whose page has no action), with no
 * violation reported. A heartbeat forged in Redis with markup in its fields is shown as text,
 * or not at all when it does not even look like a heartbeat: nothing in it runs.
 */

const ARTIFACTS = 'test-artifacts';
const READER_PASSWORD = 'reads the log only';
let d: Dashboard;
let browser: Browser;

/** Markup that would run if it reached the page unescaped. */
const MARKUP = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  d = await startDashboardWithWorker('browser_csp', {
    DASHBOARD_READER_PASSWORD: READER_PASSWORD,
  });
  await backdate(d, await initEntries(d.store, 30));
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await d?.close();
});

type Watched = { page: Page; problems: string[] };

/** A page that records CSP violations (the event and Chromium's console report) and errors. */
async function openPage(username: string, password: string): Promise<Watched> {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 1000 },
    httpCredentials: { username, password },
  });
  const page = await context.newPage();
  const problems: string[] = [];
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  page.on('console', (m) => {
    if (/Content Security Policy|CSP violation/i.test(m.text())) problems.push(m.text());
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('dialog', (dialog) => {
    problems.push(`dialog: ${dialog.message()}`);
    dialog.dismiss().catch(() => {});
  });
  return { page, problems };
}

/** Writes a worker record and its index entry the way a heartbeat does, with any content. */
async function forgeHeartbeat(id: string, record: Record<string, unknown>) {
  await d.redis
    .multi()
    .set(productKey(d.sq, `worker:${id}`), JSON.stringify(record), 'PX', 10 * HEARTBEAT_TTL_MS)
    .zadd(productKey(d.sq, 'workers'), Date.now(), id)
    .exec();
}

describe('Content-Security-Policy', () => {
  it('is sent with every page and answer: the overview, Bull Board, its API, errors', async () => {
    for (const path of ['/', '/queues', '/queues/api/queues', '/api/overview', '/nope']) {
      const res = await d.get(path);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp, path).toMatch(/default-src 'none'/);
      expect(csp, path).toMatch(/frame-ancestors 'none'/);
      expect(csp, path).not.toMatch(/'unsafe-eval'/);
      // Scripts from our own origin only, whatever the page.
      expect(csp.match(/script-src [^;]*/)?.[0] ?? "script-src 'none'", path).not.toMatch(
        /unsafe|\*|https?:/,
      );
    }
  });

  it('Bull Board works under it in Chromium: queues, jobs and their tabs, a job, schedulers; no violation', async () => {
    // A run to look at.
    const sweep = await d.get('/api/sweeps', { method: 'POST' });
    const { tickJobId } = await sweep.json();
    await expect
      .poll(async () => (await (await d.get(`/api/sweeps/${tickJobId}`)).json()).done, {
        timeout: 60_000,
      })
      .toBe(true);

    const { page, problems } = await openPage(USER, PASSWORD);
    const res = await page.goto(`${d.origin}${d.base}/queues`);
    expect(res?.headers()['content-security-policy']).toMatch(/script-src 'self'/);
    await page.getByText('Partition jobs').first().waitFor();
    await page.goto(`${d.origin}${d.base}/queues/queue/${SWEEP_QUEUE}?status=completed`);
    // The jobs, each with its tabs: data (a code view), options, logs.
    const runJob = page.getByRole('link', { name: /^run-/ }).first();
    await runJob.waitFor();
    for (const tab of ['Options', 'Logs', 'Data'])
      await page
        .locator('button', { hasText: new RegExp(`^${tab}$`) })
        .first()
        .click();
    await page.getByText('returnValue').first().waitFor();
    // One job on its own page.
    await runJob.click();
    await page.waitForURL(/\/queues\/queue\/audit-sweep\/run-/);
    await page.getByText('jobData').first().waitFor();
    await page.screenshot({ path: `${ARTIFACTS}/csp-1-bull-board-job.png`, fullPage: true });
    // The schedulers' page.
    await page
      .getByRole('link', { name: /^Schedulers/ })
      .first()
      .click();
    await page.getByText(/sweep/).first().waitFor();
    await page.screenshot({ path: `${ARTIFACTS}/csp-2-bull-board-schedulers.png`, fullPage: true });
    // Styles applied (its stylesheet loaded): the page is not unstyled white.
    const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    expect(background).not.toBe('rgba(0, 0, 0, 0)');
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it('the overview works under it for the operator and the reader; a forged heartbeat does not run', async () => {
    // Fits the schema, with markup in its text fields: shown, escaped.
    await forgeHeartbeat('forged-text', {
      id: 'forged-text',
      host: MARKUP,
      pid: 4242,
      version: MARKUP,
      concurrency: 1,
      settings: {
        STALE_AFTER: 3_600_000,
        SWEEP_EVERY: 3_600_000,
        SWEEP_PARTITIONS: 8,
        SWEEP_CHUNK_SIZE: 5000,
        SWEEP_TIME_BUDGET: 30_000,
        SWEEP_LOCK_TTL: 30_000,
        SWEEP_ATTEMPTS: 5,
        RETENTION: null,
        DATABASE: MARKUP,
      },
      startedAt: new Date().toISOString(),
      lastHeartbeat: new Date().toISOString(),
      jobsInHand: 0,
      jobs: [{ id: MARKUP, name: MARKUP }],
    });
    // Markup where numbers belong: no heartbeat at all, left out.
    await forgeHeartbeat('forged-numbers', {
      id: 'forged-numbers',
      host: 'h',
      pid: MARKUP,
      version: '1',
      concurrency: MARKUP,
      settings: { STALE_AFTER: MARKUP },
      startedAt: MARKUP,
      lastHeartbeat: MARKUP,
      jobsInHand: MARKUP,
      jobs: [],
    });
    const json = await (await d.get('/api/overview')).json();
    const ids = json.workers.map((w: { id: string }) => w.id);
    expect(ids).toContain('forged-text');
    expect(ids).not.toContain('forged-numbers');
    const html = await (await d.get('/')).text();
    expect(html).not.toContain('<img src=x');
    expect(html).not.toContain('<script>window');
    expect(html).toContain('&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;');

    for (const [user, password, name] of [
      [USER, PASSWORD, 'operator'],
      ['reader', READER_PASSWORD, 'reader'],
    ] as const) {
      const { page, problems } = await openPage(user, password);
      await page.goto(`${d.origin}${d.base}/`);
      const forged = page.locator('tr[data-worker-id="forged-text"]');
      await forged.waitFor();
      expect(await forged.locator('td[data-label="Host"]').textContent()).toBe(MARKUP);
      expect(await page.locator('tr[data-worker-id="forged-numbers"]').count()).toBe(0);
      // The page refreshes itself (its script runs under the policy) and nothing forged ran.
      const generated = await page.locator('#overview').getAttribute('data-generated-at');
      await expect
        .poll(() => page.locator('#overview').getAttribute('data-generated-at'), {
          timeout: 30_000,
        })
        .not.toBe(generated);
      expect(await page.evaluate(() => (window as { __pwned?: number }).__pwned)).toBeUndefined();
      const actions = await page
        .locator('[data-testid="sweep-now"], [data-testid="pause"]')
        .count();
      expect(actions).toBe(name === 'operator' ? 2 : 0);
      await page.screenshot({ path: `${ARTIFACTS}/csp-3-overview-${name}.png`, fullPage: true });
      expect(problems).toEqual([]);
      await page.context().close();
    }
  });
});
