import { humanDuration } from '../duration.ts';
import { describeWorker, type FleetControl } from '../fleet/control-state.ts';
import type { WaitedMs } from '../sweep/status.ts';
import type { AdaptiveState } from './adaptive.ts';
import type { Streams } from './streams.ts';

/** The fleet's state in one line and, when held back, one line per worker: for `status` and logs. */
export function describeControl(
  c: FleetControl & { adaptive?: AdaptiveState | null; streams?: Streams },
): string[] {
  if (c.pause) {
    const p = c.pause;
    return [
      `sweeper: PAUSED by ${p.by} since ${p.since}${p.reason ? ` (${p.reason})` : ''}, ${p.until ? `until ${p.until}` : 'until audit-sweeper resume'}`,
    ];
  }
  const lines = [`sweeper: ${c.state}`];
  if (c.adaptive) lines.push(`  ${c.adaptive.reason}`);
  if (c.streams)
    lines.push(
      `  streams: ${c.streams.inUse} partition sweeps running, cap ${c.streams.cap ?? 'off'} (SWEEP_MAX_STREAMS)`,
    );
  for (const w of c.workers) lines.push(`  ${w.worker}: ${describeWorker(w)} since ${w.since}`);
  return lines;
}

/** "waited 12 s for replica_lag, 3 s for pacing", or '' when nothing waited. */
export function describeWaited(waited: WaitedMs | undefined): string {
  const parts = Object.entries(waited ?? {})
    .filter(([, ms]) => ms && ms >= 1)
    .map(([reason, ms]) => `${humanDuration(ms as number)} ${reason}`);
  return parts.length ? `waited ${parts.join(', ')}` : '';
}
