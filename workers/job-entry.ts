import { type Job, UnrecoverableError } from 'bullmq';
import { parseJobData } from '../src/queue/jobs.ts';
import { CORRUPT_DATA } from '../src/queue/tolerant-job.ts';

/**
 * The check every job passes before its processor runs. The queue is open to whoever can reach
 * Redis or Bull Board (add, edit, duplicate), so a job may carry anything: a malformed one
 * fails at once (UnrecoverableError: no retries) with a reason that says what is wrong, instead
 * of failing deep inside a processor, being retried, or being recorded as if it were real.
 * Returns the job's data as its schema parsed it.
 */
export async function checkJobEntry(job: Job, queueName: string): Promise<unknown> {
  const data: unknown = job.data;
  if (data && typeof data === 'object' && CORRUPT_DATA in data) {
    // Rewritten as JSON so that every reader (Bull Board, status) can list the failed job.
    await job.updateData({ unreadableData: (data as Record<string, unknown>)[CORRUPT_DATA] });
    throw new UnrecoverableError('stored job data is not valid JSON');
  }
  const parsed = parseJobData(queueName, job.name, data);
  if (parsed.ok) return parsed.data;
  // Huge data is not kept: a failed job stays visible for weeks, and its data with it.
  if (parsed.bytes !== undefined) await job.updateData({ removedData: { bytes: parsed.bytes } });
  throw new UnrecoverableError(parsed.reason);
}
