import type { Job } from 'bullmq';
import type { Logger } from '../../src/log.ts';

/** How often a partition job records its progress and writes its job log. */
const REPORT_EVERY_MS = 1_000;

type Progress = { chunks: number; finalized: number; lastChunk: number };

/**
 * A partition job's progress and job log reach Redis at most once a second and once at the end,
 * sent with the next chunk's lock check instead of waited for on their own: a chunk costs one
 * database round trip and one Redis round trip (the lock check, which must come before every
 * chunk). They are for people watching; failing to record them does not fail the sweep.
 */
export class ProgressBatcher {
  private reported = { at: performance.now(), chunks: 0, finalized: 0 };
  private latest: Progress = { chunks: 0, finalized: 0, lastChunk: 0 };
  private pending: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly job: Job,
    private readonly log: Logger,
  ) {}

  /** After each chunk: sends the progress when the last was sent a second ago or more. */
  chunk(p: Progress) {
    this.latest = p;
    if (performance.now() - this.reported.at >= REPORT_EVERY_MS) this.send(p);
  }

  /** At the end: sends what the last batch left out. */
  flush() {
    if (this.latest.chunks > this.reported.chunks) this.send(this.latest);
  }

  /** Settles once what was sent so far has been recorded, or failed to be; never rejects. */
  sent(): Promise<unknown> {
    return this.pending;
  }

  private send(p: Progress) {
    const from = this.reported;
    this.reported = { at: performance.now(), chunks: p.chunks, finalized: p.finalized };
    this.pending = Promise.all([
      this.pending,
      this.job.updateProgress(p),
      this.job.log(
        `chunks ${from.chunks + 1}-${p.chunks}: ${p.finalized - from.finalized} rows timed out (${p.finalized} in this job)`,
      ),
    ]).catch((err) => this.log.warn({ err }, 'could not record the job progress'));
  }
}
