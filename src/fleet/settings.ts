import type { Config } from '../config.ts';
import { formatDuration } from '../duration.ts';

/**
 * The settings that decide what a worker does, as it reports them in its heartbeat: the ones
 * that must agree across the fleet (and with the dashboard and CLI reading the fleet's state).
 */
export const FLEET_SETTINGS = [
  'STALE_AFTER',
  'SWEEP_EVERY',
  'SWEEP_PARTITIONS',
  'SWEEP_CHUNK_SIZE',
  'SWEEP_TIME_BUDGET',
  'SWEEP_LOCK_TTL',
  'SWEEP_ATTEMPTS',
  'SWEEP_LOCK_TIMEOUT',
  'SWEEP_STATEMENT_TIMEOUT',
  'RETENTION',
  'SWEEP_MAX_STREAMS',
  'SWEEP_IMPACT_TARGET',
] as const;
export type FleetSettingName = (typeof FLEET_SETTINGS)[number];
export type FleetSettings = Pick<Config, FleetSettingName> & {
  /** Which database the process sweeps: host:port/name, no credentials. */
  DATABASE: string;
};

/** `host:port/name` of a postgres URL: enough to tell two databases apart, nothing secret. */
export function databaseIdentity(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '5432'}/${decodeURIComponent(u.pathname.slice(1))}`;
  } catch {
    return 'unknown';
  }
}

export function fleetSettingsOf(
  config: Pick<Config, FleetSettingName | 'DATABASE_URL'>,
): FleetSettings {
  const s = Object.fromEntries(FLEET_SETTINGS.map((k) => [k, config[k]])) as Pick<
    Config,
    FleetSettingName
  >;
  return { ...s, DATABASE: databaseIdentity(config.DATABASE_URL) };
}

/** A setting's value as it would be written in the environment: 30s, 16, off. */
export function showSetting(name: keyof FleetSettings, value: unknown): string {
  if (value === null) return 'off';
  if (name === 'SWEEP_IMPACT_TARGET' && typeof value === 'object') {
    const t = value as { multiple?: number; ms?: number };
    return t.multiple !== undefined ? `${t.multiple}x` : formatDuration(t.ms ?? 0);
  }
  if (
    typeof value === 'number' &&
    name !== 'SWEEP_PARTITIONS' &&
    name !== 'SWEEP_CHUNK_SIZE' &&
    name !== 'SWEEP_MAX_STREAMS' &&
    name !== 'SWEEP_ATTEMPTS'
  )
    return formatDuration(value);
  return String(value);
}
