import type { Logger } from '../src/log.ts';

/** Failures older than this are forgotten. */
const WINDOW_MS = 15 * 60_000;
/** The longest a client is made to wait after its last failure. */
const MAX_WAIT_MS = 60_000;
/** Free failures per client address, then 1 s, 2 s, 4 s ... up to MAX_WAIT_MS. */
const FREE_PER_ADDRESS = 5;
/** Free failures per user name from all addresses together (a guess spread over many). */
const FREE_PER_USER = 20;
/** A user who logged in from an address within this long is not held back there by its user's count. */
const KNOWN_FOR_MS = 24 * 3_600_000;
/** Entries kept per map: a flood of addresses or names cannot grow memory without bound. */
const MAX_ENTRIES = 10_000;

type Failures = { count: number; last: number };

/**
 * The back-off after failed logins, in this process's memory (several dashboards behind a load
 * balancer each keep their own, which multiplies the attempts an attacker gets by their number).
 *
 * Counted twice: per client address (one attacker's guesses) and per user name (guesses spread
 * over many addresses). Past the free failures, each one doubles how long that address, or
 * that user, must wait after its last failure (1 s up to a minute); an attempt before then gets
 * 429 with Retry-After, without its credentials being checked, so the back-off cannot be used
 * to test a guess. A lockout is what an attacker would want from this, so:
 * - the per-address count only holds back the address that failed;
 * - the per-user count does not hold back an address from which that user has logged in within
 *   a day (the operator's own browser, Prometheus): guessing the operator's password from
 *   elsewhere slows down the guesses, not the operator;
 * - every wait is short (at most a minute after the last failure), and a success clears its
 *   address's count.
 * The client address is the TCP peer, or X-Forwarded-For through DASHBOARD_TRUSTED_PROXIES:
 * behind a proxy that is not declared, every client shares the proxy's address.
 */
export class LoginThrottle {
  private readonly byAddress = new Map<string, Failures>();
  private readonly byUser = new Map<string, Failures>();
  private readonly known = new Map<string, number>();
  private readonly held = new Set<string>();

  constructor(
    /** The configured user names: any other name is counted as one. */
    private readonly users: string[],
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** How long this attempt must wait (0: check its credentials now). */
  waitMs(user: string, address: string): number {
    const now = this.now();
    const byAddress = waitOf(this.byAddress.get(address), FREE_PER_ADDRESS, now);
    const knownHere = now - (this.known.get(knownKey(this.userKey(user), address)) ?? -Infinity);
    const byUser =
      knownHere < KNOWN_FOR_MS
        ? 0
        : waitOf(this.byUser.get(this.userKey(user)), FREE_PER_USER, now);
    return Math.max(byAddress, byUser);
  }

  failed(user: string, address: string): void {
    const now = this.now();
    const name = this.userKey(user);
    const a = bump(this.byAddress, address, now);
    const u = bump(this.byUser, name, now);
    if (a.count === FREE_PER_ADDRESS)
      this.holding(`address ${address}`, { address, failures: a.count });
    if (u.count === FREE_PER_USER) this.holding(`user ${name}`, { user: name, failures: u.count });
  }

  succeeded(user: string, address: string): void {
    this.byAddress.delete(address);
    this.held.delete(`address ${address}`);
    remember(this.known, knownKey(this.userKey(user), address), this.now());
  }

  private userKey(user: string): string {
    return this.users.includes(user) ? user : '(another name)';
  }

  /** Logged once per streak: an attack is one warning, not one per guess. */
  private holding(key: string, fields: Record<string, unknown>) {
    if (this.held.has(key)) return;
    if (this.held.size >= MAX_ENTRIES) this.held.clear();
    this.held.add(key);
    this.logger.warn(
      { ...fields, windowMinutes: WINDOW_MS / 60_000 },
      'failed dashboard logins: backing off (429 with Retry-After, up to a minute after each failure)',
    );
  }
}

const knownKey = (user: string, address: string) => `${user}\n${address}`;

/** 0 while within the free failures or once the window has passed; else 2^(extra) s, capped. */
function waitOf(f: Failures | undefined, free: number, now: number): number {
  if (!f || f.count < free || now - f.last > WINDOW_MS) return 0;
  const wait = Math.min(MAX_WAIT_MS, 1_000 * 2 ** (f.count - free));
  return Math.max(0, f.last + wait - now);
}

function bump(map: Map<string, Failures>, key: string, now: number): Failures {
  const before = map.get(key);
  const f = { count: before && now - before.last <= WINDOW_MS ? before.count + 1 : 1, last: now };
  remember(map, key, f);
  return f;
}

/** Set, as the newest entry; the oldest go once the map is full. */
function remember<T>(map: Map<string, T>, key: string, value: T) {
  map.delete(key);
  map.set(key, value);
  for (const oldest of map.keys()) {
    if (map.size <= MAX_ENTRIES) break;
    map.delete(oldest);
  }
}
