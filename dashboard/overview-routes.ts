import { type Request, type Response, Router } from 'express';
import type { Redis } from 'ioredis';
import type { Pool } from '../src/db/pool.ts';
import type { SweepQueue } from '../src/queue/sweep-queue.ts';
import { readOverview } from './overview-data.ts';
import { renderOverviewPage } from './overview-page.ts';
import { OVERVIEW_SCRIPT } from './overview-script.ts';
import { OVERVIEW_STYLE } from './overview-style.ts';

/**
 * Only our own script and stylesheet run on the page, and no other site may frame it (a framed
 * "Sweep now" button could be clicked through an overlay).
 */
const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** The overview page at the root, its JSON at /api/overview, and the page's two assets. */
export function overviewRouter(deps: {
  pool: Pool;
  sq: SweepQueue;
  redis: Redis;
  base: string;
}): Router {
  const router = Router();
  router.get('/', async (_req: Request, res: Response) => {
    const overview = await readOverview(deps);
    res
      .set('Content-Security-Policy', PAGE_CSP)
      .set('Cache-Control', 'no-store')
      .type('html')
      .send(renderOverviewPage(deps.base, overview));
  });
  router.get('/api/overview', async (_req: Request, res: Response) => {
    res.set('Cache-Control', 'no-store').json(await readOverview(deps));
  });
  router.get('/assets/overview.js', (_req: Request, res: Response) => {
    res.type('js').send(OVERVIEW_SCRIPT);
  });
  router.get('/assets/overview.css', (_req: Request, res: Response) => {
    res.type('css').send(OVERVIEW_STYLE);
  });
  return router;
}
