import type { NextFunction, Request, Response } from 'express';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Browsers attach cached Basic credentials to cross-site requests too, so a page elsewhere could
 * make an operator's browser start sweeps or retry, clean and add jobs in Bull Board. Every
 * state-changing request must therefore come from our own origin. Browsers say where a request
 * comes from (Sec-Fetch-Site, and Origin on every non-GET request); clients that send neither
 * header (curl, scripts, Prometheus) are not browsers and cannot be tricked into this.
 */
export function sameOriginOnly(req: Request, res: Response, next: NextFunction) {
  if (SAFE_METHODS.has(req.method)) {
    next();
    return;
  }
  const reason = crossOriginReason(req);
  if (reason) {
    res.status(403).json({ error: { message: `cross-origin request refused: ${reason}` } });
    return;
  }
  next();
}

function crossOriginReason(req: Request): string | undefined {
  const site = req.get('sec-fetch-site');
  // `same-site` is refused too: a sibling subdomain is a different application.
  if (site === 'cross-site' || site === 'same-site') return `Sec-Fetch-Site is ${site}`;
  const origin = req.get('origin');
  if (origin === undefined) return undefined;
  const host = req.get('host');
  if (!host || hostOf(origin) !== host.toLowerCase()) return 'Origin does not match Host';
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
