import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { errorHandler as bullBoardErrorHandler } from '@bull-board/api/dist/handlers/error.js';
import type { HTTPStatus } from '@bull-board/api/dist/types.js';
import { ExpressAdapter } from '@bull-board/express';
import express, { type Request, type Response, Router } from 'express';
import { JobName, MAX_JOB_DATA_BYTES, parseJobData } from '../src/queue/jobs.ts';
import type { SweepQueue } from '../src/queue/sweep-queue.ts';
import { sendError } from './errors.ts';

/** 24-hour UTC times, as on the overview, instead of the browser's local 12-hour clock. */
const UTC = { timeZone: 'UTC', timeZoneName: 'short', hourCycle: 'h23' } as const;
const time = { hour: '2-digit', minute: '2-digit', second: '2-digit' } as const;
export const BULL_BOARD_DATE_FORMATS = {
  short: { ...time, ...UTC },
  common: { month: 'short', day: 'numeric', ...time, ...UTC },
  full: { year: 'numeric', month: 'short', day: 'numeric', ...time, ...UTC },
} as const;

/**
 * The Content-Security-Policy of Bull Board's pages. Scripts only from our own origin (its UI's
 * bundles; no inline script: its config is a JSON data block, and no eval). Styles need
 * 'unsafe-inline': its loading screen is inline styles, and its job-data editor (CodeMirror)
 * writes generated <style> elements at run time (checked in Chromium: with hashes of the
 * template's styles only, opening a job reports violations). It asks Google Fonts for IBM Plex
 * (allowed, from there only; without Internet access the page falls back to the system's
 * fonts). No framing, no form posting elsewhere, `<base>` only on our own origin (it sets one).
 */
export const BULL_BOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline' https://fonts.googleapis.com",
  "font-src 'self' https://fonts.gstatic.com",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * Bull Board for both queues: runs (with their ticks and the retention job) in one, their
 * partition jobs in the other, so a run is not buried among its partitions. It has no auth of
 * its own: the app mounts it behind Basic auth and the same-origin check, which cover its write
 * actions too. Its base path must be the full path the browser sees, or its page hangs on
 * "Loading". `overviewPath` is where its header links back to.
 *
 * Its "add job" is checked first: only a job the workers would run is added (a tick or
 * retention job in the runs' queue, a partition job in the partitions' queue, with valid data);
 * anything else is a 400 saying why. A `run` is only ever made by a tick, with its partitions.
 */
export function bullBoardRouter(sq: SweepQueue, mountPath: string, overviewPath: string): Router {
  const serverAdapter = new ExpressAdapter().setBasePath(mountPath);
  createBullBoard({
    queues: [
      new BullMQAdapter(sq.queue, {
        displayName: 'Runs',
        description:
          'One run job per sweep (its partition jobs are its children), ticks, retention',
      }),
      new BullMQAdapter(sq.partitions, {
        displayName: 'Partition jobs',
        description: 'Children of the runs: one job per partition per run, plus continuations',
      }),
    ],
    serverAdapter,
    options: {
      uiConfig: {
        boardTitle: 'audit-sweeper',
        miscLinks: [{ text: 'Back to the overview', url: overviewPath }],
        dateFormats: BULL_BOARD_DATE_FORMATS,
        // Keep runs above their partitions in the menu, in the order given here.
        sortQueues: false,
      },
    },
  });
  serverAdapter.setErrorHandler(bullBoardErrorAnswer);
  const router = Router();
  router.use((_req: Request, res: Response, next) => {
    res.set('Content-Security-Policy', BULL_BOARD_CSP);
    next();
  });
  router.post(
    '/api/queues/:queueName/add',
    express.json({ limit: MAX_JOB_DATA_BYTES * 2 }),
    (req: Request, res: Response, next) => {
      const { name, data } = (req.body ?? {}) as { name?: unknown; data?: unknown };
      if (name === JobName.run) {
        sendError(res, 400, 'a run is made by a tick: add a tick job to start one');
        return;
      }
      const queueName = String(req.params.queueName);
      const parsed = parseJobData(queueName, typeof name === 'string' ? name : '', data);
      if (!parsed.ok) {
        sendError(res, 400, parsed.reason);
        return;
      }
      next();
    },
  );
  router.use(serverAdapter.getRouter());
  return router;
}

/**
 * Bull Board answers every error of its API with a 500. Its own (an unknown queue or job) keep
 * their status, and a retry that lost a race (another click, or a worker, moved the job on
 * between Bull Board reading its state and retrying it) is a 409. The rest go on, thrown, to
 * the dashboard's error handler, so Redis away or failing over is a 503 (retry later) logged
 * once per outage, as everywhere else on the dashboard.
 */
export function bullBoardErrorAnswer(err: Error & { statusCode?: HTTPStatus }) {
  if (err.statusCode && err.statusCode < 500) return bullBoardErrorHandler(err);
  const moved = /^Job (\S+) is not in the (\w+) state/.exec(err.message);
  if (moved)
    return {
      status: 409 as const,
      body: {
        error: {
          message: `job ${moved[1]} is no longer ${moved[2]}: it moved on meanwhile; refresh`,
        },
      },
    };
  throw err;
}
