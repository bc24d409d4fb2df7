import { type ParseArgsConfig, parseArgs } from 'node:util';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;
export type OptionValues = Record<string, string | boolean | undefined>;

/**
 * The one option parser of every verb: strict, no positionals. A bad option throws an
 * ERR_PARSE_ARGS_* error, which main turns into exit code 2, like a bad setting.
 */
export function parseOptions(args: string[], spec: OptionSpec): OptionValues {
  return parseArgs({ args, options: spec, allowPositionals: false, strict: true })
    .values as OptionValues;
}

/** A usage error found after parsing (a bad value): exit code 2 with its message. */
export class UsageError extends Error {
  override name = 'UsageError';
}
