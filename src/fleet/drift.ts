import type { Config } from '../config.ts';
import type { SweepQueue } from '../queue/sweep-queue.ts';
import type { RedisClient } from '../redis-client.ts';
import { readHeartbeats, readLastWorkerSettings, type WorkerHeartbeat } from './heartbeat.ts';
import {
  FLEET_SETTINGS,
  type FleetSettingName,
  type FleetSettings,
  fleetSettingsOf,
  showSetting,
} from './settings.ts';

/** Where the settings the overview counts with come from. */
export type SettingsSource = 'workers' | 'last-worker' | 'own';

export type Drift = {
  setting: keyof FleetSettings;
  /** Each value and the processes that run with it. */
  values: { value: string; processes: string[] }[];
  /** True when live workers disagree among themselves (not only with the reader). */
  betweenWorkers: boolean;
};

export type OwnSettings = Pick<Config, FleetSettingName | 'DATABASE_URL'>;

export const processName = (w: Pick<WorkerHeartbeat, 'host' | 'pid'>) =>
  `worker ${w.host} pid ${w.pid}`;

const KEYS: (keyof FleetSettings)[] = [...FLEET_SETTINGS, 'DATABASE'];

/**
 * The settings to count with: the live workers' (what actually sweeps), else those of the last
 * worker seen, else the reader's own environment. When live workers disagree, STALE_AFTER is the
 * smallest (some worker finalizes rows that old) and every other setting the most common value.
 */
export function effectiveSettings(
  workers: WorkerHeartbeat[] | null,
  lastWorker: FleetSettings | null,
  own: OwnSettings,
): { settings: FleetSettings; source: SettingsSource } {
  if (workers?.length) {
    const settings = { ...workers[workers.length - 1]?.settings } as Record<string, unknown>;
    for (const key of KEYS) {
      // A worker of an older version may not report a newer setting: it has no say in it.
      const values = workers.map((w) => w.settings[key]).filter((v) => v !== undefined);
      if (values.length === 0) continue;
      settings[key] =
        key === 'STALE_AFTER' ? Math.min(...(values as number[])) : mostCommon(values);
    }
    return { settings: settings as FleetSettings, source: 'workers' };
  }
  if (lastWorker) return { settings: lastWorker, source: 'last-worker' };
  return { settings: fleetSettingsOf(own), source: 'own' };
}

function mostCommon(values: unknown[]): unknown {
  const counts = new Map<string, { value: unknown; n: number }>();
  for (const value of values) {
    const key = JSON.stringify(value);
    const c = counts.get(key) ?? { value, n: 0 };
    c.n += 1;
    counts.set(key, c);
  }
  return [...counts.values()].sort((a, b) => b.n - a.n)[0]?.value;
}

/**
 * Every setting on which the live workers, or a worker and the reader (this dashboard, this
 * `status`), disagree: named with its values and who runs with each.
 */
export function settingsDrift(
  workers: WorkerHeartbeat[],
  own: OwnSettings,
  reader: string,
): Drift[] {
  if (workers.length === 0) return [];
  const mine = fleetSettingsOf(own);
  const drift: Drift[] = [];
  for (const key of KEYS) {
    const groups = new Map<string, string[]>();
    const add = (value: unknown, who: string) => {
      const shown = showSetting(key, value);
      groups.set(shown, [...(groups.get(shown) ?? []), who]);
    };
    for (const w of workers)
      if (w.settings[key] !== undefined) add(w.settings[key], processName(w));
    const betweenWorkers = groups.size > 1;
    add(mine[key], reader);
    if (groups.size > 1)
      drift.push({
        setting: key,
        values: [...groups].map(([value, processes]) => ({ value, processes })),
        betweenWorkers,
      });
  }
  return drift;
}

export const describeDrift = (d: Drift) =>
  `${d.setting} differs: ${d.values.map((v) => `${v.value} (${v.processes.join(', ')})`).join(' vs ')}`;

/**
 * effectiveSettings read from Redis: what the live workers (else the last one) run with, or the
 * reader's own settings when Redis is not given or does not answer.
 */
export async function readSettingsToCountWith(
  fleet: { sq: Pick<SweepQueue, 'prefix'>; redis: RedisClient } | null,
  own: OwnSettings,
): Promise<{ settings: FleetSettings; source: SettingsSource }> {
  const seen = fleet
    ? await Promise.all([
        readHeartbeats(fleet.sq, fleet.redis),
        readLastWorkerSettings(fleet.sq, fleet.redis),
      ]).catch(() => null)
    : null;
  return effectiveSettings(seen?.[0] ?? null, seen?.[1] ?? null, own);
}
