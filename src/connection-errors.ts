/**
 * Connection errors this process has seen, by store. Kept here, not in a metrics registry,
 * because the connections are made before (and outlive) any registry: the metrics read the tally
 * at scrape time (audit_sweeper_connection_errors_total).
 */
export type Store = 'redis' | 'postgres';

const seen: Record<Store, number> = { redis: 0, postgres: 0 };

export function countConnectionError(store: Store): void {
  seen[store] += 1;
}

export const connectionErrors = (): Readonly<Record<Store, number>> => ({ ...seen });
