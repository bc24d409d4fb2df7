import { setTimeout as sleep } from 'node:timers/promises';

export type RetryPolicy = {
  /** First delay; each next one doubles. */
  initialDelayMs: number;
  /** No new attempt starts once this much time has passed since the first. */
  totalMs: number;
  isRetryable: (err: unknown) => boolean;
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
};

/** Runs `attempt` until it succeeds, fails for good, or the policy's time is spent. */
export async function withRetry<T>(policy: RetryPolicy, attempt: () => Promise<T>): Promise<T> {
  const started = Date.now();
  let delay = policy.initialDelayMs;
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      const elapsed = Date.now() - started;
      if (!policy.isRetryable(err) || elapsed + delay > policy.totalMs) throw err;
      policy.onRetry?.(err, n, delay);
      await sleep(delay);
      delay *= 2;
    }
  }
}
