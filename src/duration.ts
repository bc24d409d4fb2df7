const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const DURATION = /^(\d+)(ms|s|m|h|d)$/;

export const DURATION_HINT = 'a duration like 500ms, 30s, 15m, 4h or 90d';

/**
 * The longest delay a Node timer holds: 2^31-1 ms (about 24.8 days), rounded down to whole days.
 * A longer one fires after 1 ms, so every duration that ends up in a timer stays below this.
 */
export const TIMER_MAX_MS = 24 * 86_400_000;

/** Parses "500ms", "30s", "15m", "4h", "90d" into milliseconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (!match) return undefined;
  const [, amount, unit] = match as unknown as [string, string, keyof typeof UNIT_MS];
  return Number(amount) * UNIT_MS[unit];
}

/** The largest unit that divides the value evenly: 14_400_000 -> "4h". */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms >= UNIT_MS[unit] && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}

/**
 * An elapsed time as operators read it: 850 ms, 12.3 s, 4 min 10 s, 3 h 20 min, 2 d 4 h; a zero
 * second unit is left out (1 h).
 */
export function humanDuration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1).replace(/\.0$/, '')} s`;
  const s = Math.round(ms / 1_000);
  const [major, minor] =
    s < 3_600
      ? [`${Math.floor(s / 60)} min`, `${s % 60} s`]
      : s < 86_400
        ? [`${Math.floor(s / 3_600)} h`, `${Math.floor((s % 3_600) / 60)} min`]
        : [`${Math.floor(s / 86_400)} d`, `${Math.floor((s % 86_400) / 3_600)} h`];
  return minor.startsWith('0 ') ? major : `${major} ${minor}`;
}

/**
 * A duration from `min` to `max` ms, or the reason it is not one (to be shown with the option or
 * field it came from): malformed, too short, or longer than the code can honour.
 */
export function parseBoundedDuration(
  text: string,
  min: number,
  max: number,
): { ms: number } | { error: string } {
  const ms = parseDuration(text);
  const range = `from ${formatDuration(min)} to ${formatDuration(max)}`;
  if (ms === undefined) return { error: `must be ${DURATION_HINT}, ${range}` };
  if (ms < min || ms > max) return { error: `must be ${range}` };
  return { ms };
}
