import { type FleetControl, fleetState, readWorkerStates } from '../control/fleet-state.ts';
import { readProductPause } from '../pause.ts';
import type { SweepQueue } from '../queue/sweep-queue.ts';
import type { RedisClient } from '../redis-client.ts';

/** Running, paced, throttled (by what) or paused (by whom), as the workers last reported. */
export async function readFleetControl(sq: SweepQueue, redis: RedisClient): Promise<FleetControl> {
  const [pause, { workers, waitedSeconds }] = await Promise.all([
    readProductPause(sq, redis),
    readWorkerStates(redis, sq),
  ]);
  return fleetState(pause, workers, waitedSeconds);
}
