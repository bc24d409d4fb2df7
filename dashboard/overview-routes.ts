import { readFileSync } from 'node:fs';
import { type Request, type Response, Router } from 'express';
import { type OverviewSettings, type OverviewSources, readOverview } from '../src/read/overview.ts';
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

/** The overview page at the root, its JSON at /api/overview, and the page's two assets. */
export function overviewRouter(
  deps: OverviewSources & {
    settings: OverviewSettings;
    base: string;
  },
): Router {
  const router = Router();
  const read = () => readOverview(deps, deps.settings, RUNS_SHOWN);
  router.get('/', async (_req: Request, res: Response) => {
    const overview = await read();
    res
      .set('Content-Security-Policy', PAGE_CSP)
      .set('Cache-Control', 'no-store')
      .type('html')
      .send(renderOverviewPage(deps.base, overview));
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
