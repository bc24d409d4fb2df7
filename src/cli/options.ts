import { type ParseArgsConfig, parseArgs } from 'node:util';

/** Parses a verb's options; a bad option is a usage error (exit 2), like a bad setting. */
export function parseOptions<T extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: T,
) {
  return parseArgs({ args, options, allowPositionals: false, strict: true }).values;
}
