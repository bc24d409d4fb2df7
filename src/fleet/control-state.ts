import { type ProductPause, readProductPause } from '../pause.ts';
import { productKey, type SweepQueue } from '../queue/sweep-queue.ts';
import type { RedisClient } from '../redis-client.ts';
import type { WaitReason } from '../sweep/status.ts';

/** What one worker process's chunks were doing at its last report. */
export type WorkerControlState = {
  worker: string;
  state: 'running' | 'paced' | 'throttled' | 'paused';
  reason: WaitReason | null;
  /** The measured value and its limit: ms of replica lag, active backends, rows per second. */
  value: number | null;
  limit: number | null;
  /** The lagging replica's name, for replica_lag. */
  detail: string | null;
  /** Since when this state holds. */
  since: string;
  /** Reported at (ms since the epoch); older than STATE_FRESH_MS means gone quiet. */
  at: number;
};

/** The fleet's state, as `status`, the overview and the metrics show it. */
export type FleetControl = {
  /** Paused wins; then throttled, if any worker is; then paced; else running. */
  state: WorkerControlState['state'];
  pause: ProductPause | null;
  /** Workers that reported in the last few seconds and were held back. */
  workers: WorkerControlState[];
  /** Seconds every worker together has waited, by reason, since the prefix was created. */
  waitedSeconds: Partial<Record<WaitReason, number>>;
};

/** Workers report at least this often while held back; an older report no longer counts. */
export const STATE_FRESH_MS = 10_000;

const stateKey = (sq: Pick<SweepQueue, 'prefix'>) => productKey(sq, 'control-state');
const waitedKey = (sq: Pick<SweepQueue, 'prefix'>) => productKey(sq, 'waited-seconds');

/** A worker's report, with the time it waited since its last one, in one round trip. */
export async function reportWorkerState(
  sq: Pick<SweepQueue, 'prefix'>,
  redis: RedisClient,
  state: WorkerControlState,
  waitedMs: Partial<Record<WaitReason, number>>,
): Promise<void> {
  const multi = redis.multi().hset(stateKey(sq), state.worker, JSON.stringify(state));
  for (const [reason, ms] of Object.entries(waitedMs))
    if (ms) multi.hincrbyfloat(waitedKey(sq), reason, ms / 1000);
  await multi.exec();
}

async function readWorkerStates(
  sq: Pick<SweepQueue, 'prefix'>,
  redis: RedisClient,
): Promise<{ workers: WorkerControlState[]; waitedSeconds: FleetControl['waitedSeconds'] }> {
  const [states, waited] = await Promise.all([
    redis.hgetall(stateKey(sq)),
    redis.hgetall(waitedKey(sq)),
  ]);
  const now = Date.now();
  const workers: WorkerControlState[] = [];
  const stale: string[] = [];
  for (const [worker, raw] of Object.entries(states)) {
    const s = JSON.parse(raw) as WorkerControlState;
    if (now - s.at < STATE_FRESH_MS) workers.push(s);
    // Long gone (a worker that exited): tidy up.
    else if (now - s.at > 60 * STATE_FRESH_MS) stale.push(worker);
  }
  if (stale.length) await redis.hdel(stateKey(sq), ...stale);
  const waitedSeconds: FleetControl['waitedSeconds'] = {};
  for (const [reason, s] of Object.entries(waited))
    waitedSeconds[reason as WaitReason] = Math.round(Number(s) * 10) / 10;
  return { workers: workers.sort((a, b) => a.worker.localeCompare(b.worker)), waitedSeconds };
}

/** Running, paced, throttled (by what) or paused (by whom), as the workers last reported. */
export async function readFleetControl(
  sq: Pick<SweepQueue, 'prefix'>,
  redis: RedisClient,
): Promise<FleetControl> {
  const [pause, { workers, waitedSeconds }] = await Promise.all([
    readProductPause(sq, redis),
    readWorkerStates(sq, redis),
  ]);
  return fleetState(pause, workers, waitedSeconds);
}

const RANK = { paused: 3, throttled: 2, paced: 1, running: 0 } as const;

function fleetState(
  pause: ProductPause | null,
  workers: WorkerControlState[],
  waitedSeconds: FleetControl['waitedSeconds'],
): FleetControl {
  let state: FleetControl['state'] = pause ? 'paused' : 'running';
  if (!pause)
    for (const w of workers)
      if (w.state !== 'paused' && RANK[w.state] > RANK[state]) state = w.state;
  return {
    state,
    pause,
    workers: workers.filter((w) => w.state !== 'running'),
    waitedSeconds,
  };
}

/** One line for logs and `status`: "throttled: replica_lag 12.3 s > 1 s (replica r1)". */
export function describeWorker(w: WorkerControlState): string {
  if (w.state === 'running') return 'running';
  if (w.state === 'paused') return 'paused';
  const fmt = (v: number | null) =>
    v === null
      ? '?'
      : w.reason === 'replica_lag'
        ? `${(v / 1000).toFixed(1)} s`
        : w.reason === 'pacing'
          ? `${v} rows/s`
          : String(v);
  const what =
    w.reason === 'pacing'
      ? `pacing at ${fmt(w.limit)}`
      : `${w.reason === 'replica_lag' ? 'replica lag' : 'active backends'} ${fmt(w.value)} > limit ${fmt(w.limit)}`;
  return `${w.state}: ${what}${w.detail ? ` (${w.detail})` : ''}`;
}
