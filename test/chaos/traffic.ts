import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { AuditLogStore } from '../../src/store/store.ts';
import type { Completion } from '../../src/store/types.ts';
import type { ActionKind } from './schedule.ts';

/**
 * The live traffic around the sweeper: writers through the store API (init, then complete;
 * some never completed; some completed late, after the cutoff, racing the sweeper), a reader
 * that tails GET /v1/audit-log following next_page_token alone, and operators clicking
 * "Sweep now", Bull Board's "Run now" and retries. Each keeps what it did for the checks.
 */

export const WRITER_TAG = 'w';

export type WriterOp = {
  requestId: string;
  id?: string;
  plan: 'complete' | 'never' | 'late';
  result?: Completion;
  outcome?: 'applied' | 'not-applied' | 'error' | 'init-failed';
  existing?: string;
};

export function startWriters(
  pool: pg.Pool,
  o: { ratePerSecond: number; staleAfterMs: number; random: () => number },
) {
  const store = new AuditLogStore(pool);
  const ops: WriterOp[] = [];
  const inFlight = new Set<Promise<void>>();
  let stopping = false;

  const one = async (op: WriterOp) => {
    try {
      op.id = await store.init({
        requestId: op.requestId,
        requestUri: `/v1/chaos/${op.requestId}`,
        operationId: 'chaos_write',
        sourceIp: '10.9.8.7',
        actor: { kind: 'unauthenticated' },
      });
    } catch {
      op.outcome = 'init-failed';
      return;
    }
    if (op.plan === 'never' || !op.result) return;
    await sleep(
      op.plan === 'late'
        ? o.staleAfterMs + Math.round(o.random() * 3_000)
        : 10 + Math.round(o.random() * 300),
    );
    try {
      const r = await store.complete(op.id, op.result);
      op.outcome = r.applied ? 'applied' : 'not-applied';
      if (!r.applied) op.existing = r.existingResult;
    } catch {
      op.outcome = 'error';
    }
  };

  const timer = setInterval(() => {
    if (stopping || inFlight.size > 2_000) return;
    const x = o.random();
    const op: WriterOp = {
      requestId: `${WRITER_TAG}-${ops.length}`,
      plan: x < 0.1 ? 'never' : x < 0.2 ? 'late' : 'complete',
    };
    op.result =
      o.random() < 0.8
        ? { kind: 'success', httpStatusCode: 200 }
        : { kind: 'error', httpStatusCode: 503, errorCode: 'Busy', errorMessage: 'try later' };
    ops.push(op);
    const p = one(op).finally(() => inFlight.delete(p));
    inFlight.add(p);
  }, 1_000 / o.ratePerSecond);

  return {
    ops,
    /** Stops starting operations and waits for those under way (late ones included). */
    stop: async () => {
      stopping = true;
      clearInterval(timer);
      await Promise.all(inFlight);
    },
  };
}

export type Http = { url: string; auth: string };

export const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

async function call(http: Http, method: string, path: string) {
  const res = await fetch(`${http.url}${path}`, {
    method,
    headers: { authorization: http.auth },
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as unknown) : null };
}

/** A tailing reader: every completed id in the order served, and the answers it got. */
export function startReader(http: Http, limit = 1_000) {
  const seen: { id: string; timeCompleted: string }[] = [];
  const statuses = new Map<number | string, number>();
  let token: string | null = null;
  let stopping = false;
  let lastShortPageAt = 0;
  const loop = (async () => {
    while (!stopping) {
      const q = new URLSearchParams({ start_time: '2000-01-01T00:00:00Z', limit: String(limit) });
      if (token) q.set('page_token', token);
      try {
        const { status, body } = await call(http, 'GET', `/v1/audit-log?${q}`);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (status !== 200) {
          await sleep(500);
          continue;
        }
        const page = body as {
          items: { id: string; time_completed: string }[];
          next_page_token: string | null;
        };
        for (const item of page.items)
          seen.push({ id: item.id, timeCompleted: item.time_completed });
        token = page.next_page_token ?? token;
        if (page.items.length < limit) {
          lastShortPageAt = Date.now();
          await sleep(300);
        }
      } catch (err) {
        const key = (err as Error).name;
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
        await sleep(500);
      }
    }
  })();
  return {
    seen,
    statuses,
    /** When the reader last reached the end of the log as served. */
    caughtUpAt: () => lastShortPageAt,
    stop: async () => {
      stopping = true;
      await loop;
    },
  };
}

/** Bull Board's queues: runs and ticks (with the `sweep` scheduler), and partition jobs. */
const API = '/queues/api/queues';
const SWEEP = 'audit-sweep';
const PARTITIONS = 'audit-sweep-partitions';

/** One operator action over HTTP; resolves with a label of its outcome. */
export async function act(http: Http, kind: ActionKind): Promise<string> {
  const either = Math.random() < 0.5 ? SWEEP : PARTITIONS;
  try {
    if (kind === 'sweep-now') return String((await call(http, 'POST', '/api/sweeps')).status);
    if (kind === 'run-now')
      return String((await call(http, 'PUT', `${API}/${SWEEP}/job-schedulers/sweep/run`)).status);
    if (kind === 'retry-failed')
      return String((await call(http, 'PUT', `${API}/${either}/retry/failed`)).status);
    // One job: a failed one of either queue, or a completed partition job (Bull Board offers
    // "retry" on completed jobs too).
    const [queue, status] = kind === 'retry-job' ? [either, 'failed'] : [PARTITIONS, 'completed'];
    const list = await call(
      http,
      'GET',
      `${API}?activeQueue=${queue}&status=${status}&page=1&jobsPerPage=20`,
    );
    if (list.status !== 200) return String(list.status);
    const queues = (list.body as { queues: { name: string; jobs: { id: string }[] }[] }).queues;
    const jobs = queues.find((q) => q.name === queue)?.jobs ?? [];
    const job = jobs[Math.floor(Math.random() * jobs.length)];
    if (!job) return 'nothing to retry';
    return String(
      (await call(http, 'PUT', `${API}/${queue}/${encodeURIComponent(job.id)}/retry`)).status,
    );
  } catch (err) {
    return (err as Error).name;
  }
}
