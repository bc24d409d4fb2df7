import { setTimeout as sleep } from 'node:timers/promises';

export type WaitOptions<T> = {
  timeoutMs?: number;
  intervalMs?: number;
  /** Treat a probe that throws as "not yet" (a server that is still coming back). */
  ignoreErrors?: boolean;
  /** When the probe's value means done; by default anything but undefined, null and false. */
  done?: (value: T) => boolean;
};

/**
 * Polls `probe` until its value is done and returns it; fails naming `what` after the timeout.
 * Poll at modest intervals: a tight loop steals a core from what it waits for.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T> | T,
  options: WaitOptions<T> = {},
): Promise<NonNullable<T>> {
  const { timeoutMs = 90_000, intervalMs = 500, ignoreErrors = false } = options;
  const done = options.done ?? ((v: T) => v !== undefined && v !== null && v !== false);
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = ignoreErrors
      ? await Promise.resolve()
          .then(probe)
          .catch(() => undefined)
      : await probe();
    if (last !== undefined && done(last)) return last as NonNullable<T>;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    await sleep(intervalMs);
  }
}
