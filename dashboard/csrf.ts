import type { NextFunction, Request, Response } from 'express';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Browsers attach cached Basic credentials to cross-site requests too, so a page elsewhere could
 * make an operator's browser start sweeps or retry, clean and add jobs in Bull Board. Every
 * state-changing request must therefore come from our own origin. Browsers say where a request
 * comes from (Sec-Fetch-Site, and Origin on every non-GET request); clients that send neither
 * header (curl, scripts, Prometheus) are not browsers and cannot be tricked into this.
 *
 * Our origin is the one the Host header names, or `publicOrigin` (DASHBOARD_PUBLIC_URL's): a
 * reverse proxy that rewrites Host (to the pod's or service's name) leaves the browser's Origin
 * naming the public address, which would otherwise never match.
 */
export function sameOriginOnly(publicOrigin?: string) {
  const ours = publicOrigin?.toLowerCase();
  return (req: Request, res: Response, next: NextFunction) => {
    if (SAFE_METHODS.has(req.method)) {
      next();
      return;
    }
    const reason = crossOriginReason(req, ours);
    if (reason) {
      res.status(403).json({ error: { message: `cross-origin request refused: ${reason}` } });
      return;
    }
    next();
  };
}

function crossOriginReason(req: Request, publicOrigin: string | undefined): string | undefined {
  const site = req.get('sec-fetch-site');
  // `same-site` is refused too: a sibling subdomain is a different application.
  if (site === 'cross-site' || site === 'same-site') return `Sec-Fetch-Site is ${site}`;
  const origin = req.get('origin');
  if (origin === undefined) return undefined;
  if (publicOrigin !== undefined && origin.toLowerCase() === publicOrigin) return undefined;
  const host = req.get('host');
  if (!host || hostOf(origin) !== host.toLowerCase())
    return publicOrigin === undefined
      ? 'Origin does not match Host (behind a proxy that rewrites Host, set DASHBOARD_PUBLIC_URL)'
      : 'Origin is neither DASHBOARD_PUBLIC_URL nor the Host';
  return undefined;
}

/** `host[:port]` of an Origin header as the Host header would spell it; `null` matches nothing. */
function hostOf(origin: string): string | undefined {
  try {
    return new URL(origin).host.toLowerCase();
  } catch {
    return undefined;
  }
}
