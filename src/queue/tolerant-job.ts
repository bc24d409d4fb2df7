import { Job, Queue, Worker } from 'bullmq';

/**
 * Jobs whose stored JSON does not parse. BullMQ parses a job's `data` (and `opts`) whenever it
 * reads the job, and throws on text that is not JSON: such a job, written by anything but
 * BullMQ itself, would be picked up and dropped by every worker forever (never failed), and
 * would make every Bull Board list that contains it answer 500.
 *
 * TolerantJob reads such a job with its data replaced by `{ [CORRUPT_DATA]: <the text's
 * start> }` (and unreadable options by none), so that lists show it and the worker's entry
 * check (workers/job-entry.ts) fails it at once with a clear reason, rewriting its data as JSON.
 * The product's queue and worker use it (TolerantQueue, TolerantWorker).
 */
export const CORRUPT_DATA = '__audit_sweeper_unreadable_data';

type FromJson = typeof Job.fromJSON;

const parses = (text: unknown) => {
  if (typeof text !== 'string' || text === '') return true;
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
};

export class TolerantJob extends Job {
  // biome-ignore lint/suspicious/noExplicitAny: the same type parameters as Job.fromJSON.
  static override fromJSON<T = any, R = any, N extends string = string>(
    queue: Parameters<FromJson>[0],
    json: Parameters<FromJson>[1],
    jobId?: string,
  ): Job<T, R, N> {
    if (parses(json.data) && parses(json.opts)) return Job.fromJSON<T, R, N>(queue, json, jobId);
    const repaired = { ...json };
    if (!parses(json.data))
      repaired.data = JSON.stringify({ [CORRUPT_DATA]: String(json.data).slice(0, 200) });
    // Stored as text, typed as the parsed options.
    if (!parses(json.opts)) repaired.opts = '{}' as unknown as typeof json.opts;
    return Job.fromJSON<T, R, N>(queue, repaired, jobId);
  }
}

export class TolerantQueue extends Queue {
  protected override get Job(): typeof Job {
    // The class differs only in a static method; its instances are plain Jobs.
    return TolerantJob as unknown as typeof Job;
  }
}

export class TolerantWorker extends Worker {
  protected override get Job(): typeof Job {
    // The class differs only in a static method; its instances are plain Jobs.
    return TolerantJob as unknown as typeof Job;
  }
}
