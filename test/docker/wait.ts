import { vi } from 'vitest';

/**
 * Polls `probe` until `done` holds for its value (by default: truthy) and returns that value;
 * fails naming `what` and the last value after the timeout. A probe that throws counts as "not
 * yet" (a container still starting). vitest's vi.waitFor underneath.
 */
export function waitFor<T>(
  what: string,
  probe: () => Promise<T> | T,
  o: { done?: (value: T) => boolean; timeoutMs?: number; intervalMs?: number } = {},
): Promise<NonNullable<T>> {
  const done = o.done ?? ((v: T) => Boolean(v));
  return vi.waitFor(
    async () => {
      const value = await probe();
      if (!done(value))
        throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(value)}`);
      return value as NonNullable<T>;
    },
    { timeout: o.timeoutMs ?? 90_000, interval: o.intervalMs ?? 500 },
  );
}
