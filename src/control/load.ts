import type { Pool } from '../db/pool.ts';
import type { Logger } from '../log.ts';
import { activeBackends } from '../sql/control.ts';
import { cachedReader } from './sampler.ts';

/**
 * The database's load as its active backends other than the sweeper's own (see activeBackends
 * for why this measure). A user that cannot see other sessions' state is told once in the log:
 * the count then covers only what it can see.
 */
export class LoadMonitor {
  private warned = false;
  readonly read: () => Promise<number | null>;

  constructor(
    private readonly pool: Pool,
    private readonly logger: Logger,
    intervalMs: number,
  ) {
    this.read = cachedReader(intervalMs, () => this.measure());
  }

  private async measure(): Promise<number | null> {
    try {
      const { active, hidden } = await activeBackends(this.pool);
      if (hidden > 0 && !this.warned) {
        this.warned = true;
        this.logger.warn(
          { hidden },
          'cannot see the state of some sessions in pg_stat_activity: SWEEP_MAX_ACTIVE_BACKENDS counts only the visible ones (grant pg_monitor to the sweeper user)',
        );
      }
      return active;
    } catch (err) {
      this.logger.warn({ err }, 'could not read the database load; trying again at the next chunk');
      return null;
    }
  }
}
