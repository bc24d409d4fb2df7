/**
 * The one way tests wait for something outside vitest's expect.poll: for a value (not only an
 * assertion), with a name that says what did not happen.
 */

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `probe` until it returns something truthy and returns it; fails naming `what` after
 * `timeoutMs`. A probe that throws counts as "not yet" only with `ignoreErrors` (a server that
 * is still starting), and its last error is named in the failure.
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T>,
  o: { timeoutMs?: number; intervalMs?: number; ignoreErrors?: boolean } = {},
): Promise<NonNullable<T>> {
  const timeoutMs = o.timeoutMs ?? 90_000;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      if (!o.ignoreErrors) throw err;
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (${last})` : ''}`);
    await sleep(o.intervalMs ?? 250);
  }
}
