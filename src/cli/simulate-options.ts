import { parseBoundedDuration, TIMER_MAX_MS } from '../duration.ts';
import { parseWholeNumber } from '../numbers.ts';
import { type OptionValues, parseOptions } from './options.ts';

/** simulate's options and their checks, apart from the traffic so that main loads them cheaply. */

export const SIMULATE_OPTIONS = {
  rate: { type: 'string' },
  'crash-ratio': { type: 'string' },
  duration: { type: 'string' },
  seed: { type: 'string' },
} as const;

const DEFAULT_RATE = 20;
const DEFAULT_CRASH_RATIO = 0.05;
const MAX_RATE = 10_000;

const DECIMAL = /^(\d+(\.\d*)?|\.\d+)$/;

export type SimulateOptions = {
  rate: number;
  crashRatio: number;
  durationMs?: number;
  seed?: number;
};

/** Parses and checks the options; returns a one-line message for the first bad one. */
export function parseSimulateOptions(args: string[]): SimulateOptions | string {
  try {
    return checkSimulateOptions(parseOptions(args, SIMULATE_OPTIONS));
  } catch (err) {
    // Any parse error (unknown option, missing value, stray argument) is a usage error.
    return (err as Error).message.replace(/\s*\n\s*/g, ' ');
  }
}

/** Checks parsed option values; returns a one-line message for the first bad one. */
export function checkSimulateOptions(given: OptionValues): SimulateOptions | string {
  const values = given as Record<string, string | undefined>;
  const options: SimulateOptions = { rate: DEFAULT_RATE, crashRatio: DEFAULT_CRASH_RATIO };
  if (values.rate !== undefined) {
    const rate = DECIMAL.test(values.rate) ? Number(values.rate) : Number.NaN;
    if (!(rate > 0 && rate <= MAX_RATE)) {
      return `invalid --rate ${JSON.stringify(values.rate)}: expected operations per second, a number above 0 and at most ${MAX_RATE}`;
    }
    options.rate = rate;
  }
  const ratio = values['crash-ratio'];
  if (ratio !== undefined) {
    const crashRatio = DECIMAL.test(ratio) ? Number(ratio) : Number.NaN;
    if (!(crashRatio >= 0 && crashRatio <= 1)) {
      return `invalid --crash-ratio ${JSON.stringify(ratio)}: expected a fraction from 0 to 1, like 0.05`;
    }
    options.crashRatio = crashRatio;
  }
  if (values.duration !== undefined) {
    // One timer ends the run: longer than a timer holds, it would end at once.
    const parsed = parseBoundedDuration(values.duration, 1, TIMER_MAX_MS);
    if ('error' in parsed) {
      return `invalid --duration ${JSON.stringify(values.duration)}: ${parsed.error}`;
    }
    options.durationMs = parsed.ms;
  }
  if (values.seed !== undefined) {
    const seed = parseWholeNumber(values.seed, 0, 0xffffffff);
    if (seed === undefined) {
      return `invalid --seed ${JSON.stringify(values.seed)}: expected a whole number from 0 to ${0xffffffff}`;
    }
    options.seed = seed;
  }
  return options;
}
