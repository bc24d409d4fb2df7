import { readFileSync } from 'node:fs';
import { type Request, type Response, Router } from 'express';
import type { Logger } from '../src/log.ts';
import {
  type OverviewSettings,
  type OverviewSources,
  outageKind,
  readOverview,
} from '../src/read/overview.ts';
import { roleOf } from './auth.ts';
import { renderOverviewPage } from './overview-page.ts';

/**
 * Only our own script and stylesheet run on the page, and no other site may frame it (a framed
 * "Sweep now" button could be clicked through an overlay).
 */
const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** How many finished runs the overview shows (table and chart). */
export const RUNS_SHOWN = 50;

/** The page's script and stylesheet: real files beside this module (the build copies them). */
const asset = (name: string) => readFileSync(new URL(`./assets/${name}`, import.meta.url), 'utf8');
const ASSETS = { js: asset('overview.js'), css: asset('overview.css') };

/**
 * The overview page at the root, its JSON at /api/overview, and the page's two assets. The read
 * never fails as a whole: with Redis or PostgreSQL away the page renders the other side.
 */
export function overviewRouter(
  deps: OverviewSources & {
    settings: OverviewSettings;
    logger: Logger;
    base: string;
  },
): Router {
  const router = Router();
  // Each open page refreshes every 5 s: an outage is logged when it starts (or changes kind) and
  // when it ends, not on every read.
  const outage: Partial<Record<'redis' | 'postgres', string>> = {};
  const NAMES = { redis: 'Redis', postgres: 'PostgreSQL' };
  const sources: OverviewSources = {
    ...deps,
    onSourceError: (source, err) => {
      const kind = outageKind(err);
      if (outage[source] === kind) return;
      outage[source] = kind;
      deps.logger.warn({ err, source }, `overview: ${NAMES[source]} does not answer`);
    },
  };
  const read = async () => {
    const o = await readOverview(
      sources,
      { settings: deps.settings, reader: 'this dashboard' },
      RUNS_SHOWN,
    );
    for (const source of ['redis', 'postgres'] as const)
      if (outage[source] && !o.unavailable[source]) {
        delete outage[source];
        deps.logger.info({ source }, `overview: ${NAMES[source]} answers again`);
      }
    return o;
  };
  router.get('/', async (_req: Request, res: Response) => {
    const overview = await read();
    res
      .set('Content-Security-Policy', PAGE_CSP)
      .set('Cache-Control', 'no-store')
      .type('html')
      .send(renderOverviewPage(deps.base, overview, roleOf(res)));
  });
  router.get('/api/overview', async (_req: Request, res: Response) => {
    res.set('Cache-Control', 'no-store').json(await read());
  });
  router.get('/assets/overview.js', (_req: Request, res: Response) => {
    res.type('js').send(ASSETS.js);
  });
  router.get('/assets/overview.css', (_req: Request, res: Response) => {
    res.type('css').send(ASSETS.css);
  });
  return router;
}
