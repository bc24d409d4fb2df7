import type { Job } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJobId } from '../src/queue/job-ids.ts';
import { JobName, SWEEP_QUEUE } from '../src/queue/jobs.ts';
import { productKey, trimFinishedJobs } from '../src/queue/sweep-queue.ts';
import { readRecentRunsFromRedis } from '../src/run-history/redis.ts';
import type { SweepWorker } from '../workers/sweep-worker.ts';
import {
  type Dashboard,
  startDashboard,
  waitForFirstScheduledRun,
} from './support/dashboard-harness.ts';

/**
 * Jobs the product did not make: anyone with Bull Board or Redis can add, edit or duplicate a
 * job. A malformed one fails at once (no retries) with a reason that says what is wrong, a job
 * whose stored JSON is corrupt neither loops forever nor breaks Bull Board, huge data is not
 * kept, failed jobs are bounded whoever added them, and only runs the product made reach the
 * run history.
 */

let d: Dashboard;
let worker: SweepWorker;

beforeAll(async () => {
  d = await startDashboard('foreign_jobs', { SWEEP_EVERY: '24d', SWEEP_ATTEMPTS: '5' });
  worker = await d.startWorker();
  await waitForFirstScheduledRun(d);
});

afterAll(async () => {
  await d?.close();
});

const jobKey = (id: string) => `${d.sq.prefix}:${SWEEP_QUEUE}:${id}`;

/** Waits until the job has failed; returns it as stored. */
async function failed(id: string, queue = d.sq.queue): Promise<Job> {
  await expect.poll(() => queue.getJobState(id), { message: `job ${id} failed` }).toBe('failed');
  // Read after it failed: a job read before would not carry the reason.
  return (await queue.getJob(id)) as Job;
}

/** The failed list as Bull Board's own API serves it. */
async function bullBoardFailedList() {
  const res = await d.get(
    `/queues/api/queues?activeQueue=${SWEEP_QUEUE}&status=failed&page=1&jobsPerPage=50`,
  );
  return { status: res.status, body: await res.text() };
}

describe('malformed jobs fail at once, with a reason', () => {
  it.each([
    ['an empty name', '', { trigger: 'manual' }, /unknown job name "": audit-sweeper runs only/],
    ['an unknown name', 'frobnicate', {}, /unknown job name "frobnicate"/],
    [
      'partition data of the wrong type',
      JobName.partition,
      { runId: 'x', partition: 'one' },
      /^invalid partition job data: runId: must be a run id$/,
    ],
    ['a tick with a bogus trigger', JobName.tick, { trigger: 'bogus' }, /^invalid tick job data/],
    ['retention data with extra fields', JobName.retention, { all: true }, /^invalid retention/],
    ['a run with no data', JobName.run, {}, /^invalid run job data/],
    [
      'a partition job in the runs queue',
      JobName.partition,
      { runId: 'r1234abcd5678', partition: 0, partitions: 1, continuation: 0 },
      /^a partition job belongs in queue audit-sweep-partitions, not audit-sweep$/,
    ],
  ])('%s', async (what, name, data, reason) => {
    // Partition jobs go to their own queue, unless the case is about the wrong queue.
    const queue =
      name === JobName.partition && !what.includes('runs queue') ? d.sq.partitions : d.sq.queue;
    const job = await queue.add(name, data, { attempts: 5 });
    const done = await failed(job.id as string, queue);
    expect(done.failedReason).toMatch(reason);
    // No retries: 5 attempts were allowed.
    expect(done.attemptsMade).toBe(1);
  });

  it('a run job not made by the product (well-formed, but no partitions) stays out of the history', async () => {
    const runId = 'rzzzzzzzz0123abcd';
    const before = await readRecentRunsFromRedis(d.sq, d.redis, 500);
    const data = { runId, trigger: 'manual', partitions: 2, startedAt: new Date().toISOString() };
    // With an id of its own, as Bull Board's add or duplicate gives it...
    const foreign = await d.sq.queue.add(JobName.run, data);
    expect((await failed(foreign.id as string)).failedReason).toMatch(
      /^not a run made by audit-sweeper: its job id/,
    );
    // ...or even with the id a real run would have, but no partition jobs under it.
    const forged = await d.sq.queue.add(JobName.run, data, { jobId: runJobId(runId) });
    expect((await failed(forged.id as string)).failedReason).toMatch(
      /not a run made by audit-sweeper: it has no partition jobs/,
    );
    const after = await readRecentRunsFromRedis(d.sq, d.redis, 500);
    expect(after).toEqual(before);
  });

  it('history entries that are not run summaries are never shown', async () => {
    const key = productKey(d.sq, 'run-history');
    await d.redis.lpush(key, '{"runId":null}', 'not json', JSON.stringify({ partitions: 3 }));
    const runs = await readRecentRunsFromRedis(d.sq, d.redis, 500);
    expect(runs.length).toBeGreaterThan(0); // the first scheduled run
    for (const run of runs) expect(run.runId).toMatch(/^r[0-9a-z]+$/);
    const overview = await (await d.get('/api/overview')).json();
    expect(JSON.stringify(overview.recentRuns)).not.toMatch(/undefined|null,"trigger"/);
    expect(overview.recentRuns).toHaveLength(runs.length);
    const page = await (await d.get('/')).text();
    expect(page).not.toContain('undefined');
  });
});

describe('a job whose stored JSON is corrupt', () => {
  it('is failed at once, its data rewritten as JSON, and Bull Board lists it', async () => {
    await worker.close();
    let restarted = false;
    try {
      const job = await d.sq.queue.add(JobName.tick, { trigger: 'manual' }, { attempts: 5 });
      const id = job.id as string;
      await d.redis.hset(jobKey(id), 'data', '{"trigger": "manual", oops');
      // Listed while it waits: Bull Board reads it without failing.
      const waiting = await d.get(
        `/queues/api/queues?activeQueue=${SWEEP_QUEUE}&status=waiting&page=1&jobsPerPage=50`,
      );
      expect(waiting.status).toBe(200);
      expect(await waiting.text()).toContain(id);

      worker = await d.startWorker();
      restarted = true;
      const done = await failed(id);
      expect(done.failedReason).toBe('stored job data is not valid JSON');
      expect(done.attemptsMade).toBe(1);
      const stored = (await d.redis.hget(jobKey(id), 'data')) as string;
      expect(JSON.parse(stored)).toEqual({ unreadableData: '{"trigger": "manual", oops' });
      const list = await bullBoardFailedList();
      expect(list.status).toBe(200);
      expect(list.body).toContain(id);
    } finally {
      if (!restarted) worker = await d.startWorker();
    }
  });
});

describe('what is kept', () => {
  it('huge job data is not kept: the job fails at once and its data is replaced by its size', async () => {
    const job = await d.sq.queue.add(JobName.tick, { trigger: 'manual', blob: 'x'.repeat(5e6) });
    const done = await failed(job.id as string);
    expect(done.failedReason).toMatch(
      /^job data is 50000\d\d bytes; audit-sweeper's jobs carry at most 16384$/,
    );
    const stored = (await d.redis.hget(jobKey(job.id as string), 'data')) as string;
    expect(stored.length).toBeLessThan(100);
    expect(JSON.parse(stored)).toEqual({ removedData: { bytes: expect.any(Number) } });
  });

  it('failed jobs that ask to be kept forever are trimmed by age and count all the same', async () => {
    // Three failures asking to be kept forever, two of them 40 days old.
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const job = await d.sq.queue.add(`foreign-${i}`, {}, { removeOnFail: false });
      ids.push(job.id as string);
      await failed(job.id as string);
    }
    const old = Date.now() - 40 * 86_400_000;
    for (const id of ids.slice(0, 2)) {
      await d.redis.hset(jobKey(id), 'finishedOn', old);
      await d.redis.zadd(`${d.sq.prefix}:${SWEEP_QUEUE}:failed`, old, id);
    }
    // Every worker trims at start and then every max(SWEEP_EVERY, 30 s): restart one.
    await worker.close();
    worker = await d.startWorker();
    await expect
      .poll(
        async () =>
          !(await d.sq.queue.getJob(ids[0] as string)) &&
          !(await d.sq.queue.getJob(ids[1] as string)),
        { message: 'the 40-day-old failures trimmed' },
      )
      .toBe(true);
    expect(await d.sq.queue.getJob(ids[2] as string)).toBeDefined();

    // By count: beyond the bound, the oldest go first.
    const before = await d.sq.queue.getFailedCount();
    await trimFinishedJobs(d.sq, {
      failed: { age: 365 * 86_400, count: 2 },
      completed: { age: 365 * 86_400, count: 1_000 },
    });
    expect(before).toBeGreaterThan(2);
    expect(await d.sq.queue.getFailedCount()).toBe(2);
  });
});

describe("Bull Board's add", () => {
  const add = (body: unknown) =>
    d.get(`/queues/api/queues/${SWEEP_QUEUE}/add`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it.each([
    ['an empty name', { name: '', data: {}, options: {} }, /unknown job name ""/],
    ['a run', { name: 'run', data: {}, options: {} }, /a run is made by a tick/],
    [
      'a tick with bad data',
      { name: 'tick', data: { trigger: 'now' }, options: {} },
      /invalid tick job data/,
    ],
  ])('refuses %s with 400 and the reason', async (_what, body, reason) => {
    const before = await d.sq.queue.getJobCountByTypes('waiting', 'active', 'completed', 'failed');
    const res = await add(body);
    expect(res.status).toBe(400);
    const json = await res.json();
    expect(json.error.message).toMatch(reason);
    expect(await d.sq.queue.getJobCountByTypes('waiting', 'active', 'completed', 'failed')).toBe(
      before,
    );
  });

  it('adds a valid tick, which starts a sweep', async () => {
    const res = await add({ name: 'tick', data: { trigger: 'manual' }, options: {} });
    expect(res.status).toBe(200);
    const { job } = await res.json();
    await expect
      .poll(async () => (await d.sq.queue.getJob(job.id))?.returnvalue?.runId, {
        message: 'a run started',
      })
      .toMatch(/^r[0-9a-z]+$/);
  });
});
