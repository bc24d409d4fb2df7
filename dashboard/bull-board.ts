import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Router } from 'express';
import type { SweepQueue } from '../src/queue/sweep-queue.ts';

/**
 * Bull Board for every queue the product uses (there is one). It has no auth of its own: the
 * app mounts it behind Basic auth and the same-origin check, which cover its write actions too.
 * Its base path must be the full path the browser sees, or its page hangs on "Loading".
 */
export function bullBoardRouter(sq: SweepQueue, mountPath: string): Router {
  const serverAdapter = new ExpressAdapter().setBasePath(mountPath);
  createBullBoard({
    queues: [new BullMQAdapter(sq.queue)],
    serverAdapter,
    options: { uiConfig: { boardTitle: 'audit-sweeper' } },
  });
  return serverAdapter.getRouter();
}
