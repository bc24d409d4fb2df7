import type { NextFunction, Request, Response } from 'express';
import { sendError } from './errors.ts';

export type AdmissionOptions = {
  /** Requests served at once: the API pool's size, so none ever waits for a connection. */
  concurrency: number;
  /** Requests that may wait for a slot; any more are turned away at once. */
  maxQueued: number;
  /** How long a request may wait for a slot before it is turned away. */
  maxWaitMs: number;
  /** Called for each request turned away (a metric). */
  onReject?: (reason: 'queue_full' | 'wait_timeout') => void;
};

/** Seconds a client turned away is asked to wait (Retry-After). */
export const RETRY_AFTER_SECONDS = 1;

/**
 * Admission control in front of an expensive route: at most `concurrency` requests run, at most
 * `maxQueued` wait (first come, first served) and none waits longer than `maxWaitMs`. The rest
 * get `503` with `Retry-After` at once, instead of piling up behind a pool whose wait queue has
 * no bound and answering after its connection timeout, or not at all.
 */
export function admission(o: AdmissionOptions) {
  let running = 0;
  const queue: (() => void)[] = [];

  const release = () => {
    const next = queue.shift();
    if (next) next();
    else running--;
  };

  return (_req: Request, res: Response, next: NextFunction) => {
    let released = false;
    const admit = () => {
      // The slot is given back once, whichever of finish or close comes first (a client that
      // hangs up mid-answer only gets close).
      const done = () => {
        if (released) return;
        released = true;
        release();
      };
      res.once('finish', done).once('close', done);
      next();
    };
    if (running < o.concurrency) {
      running++;
      admit();
      return;
    }
    if (queue.length >= o.maxQueued) {
      o.onReject?.('queue_full');
      busy(res);
      return;
    }
    const waiter = () => {
      clearTimeout(timer);
      res.off('close', abandon);
      admit();
    };
    const dequeue = () => {
      const at = queue.indexOf(waiter);
      if (at >= 0) queue.splice(at, 1);
    };
    const abandon = () => {
      clearTimeout(timer);
      dequeue();
    };
    const timer = setTimeout(() => {
      res.off('close', abandon);
      dequeue();
      o.onReject?.('wait_timeout');
      busy(res);
    }, o.maxWaitMs);
    res.once('close', abandon);
    queue.push(waiter);
  };
}

function busy(res: Response) {
  res.set('Retry-After', String(RETRY_AFTER_SECONDS));
  sendError(res, 503, 'the audit-log API is busy; retry later');
}
