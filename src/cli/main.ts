import { type Config, ConfigError, loadConfig } from '../config.ts';
import { RedisSetupError } from '../redis-client.ts';
import { type OptionSpec, type OptionValues, parseOptions, UsageError } from './options.ts';
import { SIMULATE_OPTIONS } from './simulate-options.ts';

/**
 * One entry per verb: its options, and its module, loaded only when the verb is used. Every
 * verb's options are parsed here, the same way, before its module runs.
 */
type Verb = {
  summary: string;
  usage: string;
  options: OptionSpec;
  load: () => Promise<{ run: (config: Config, options: OptionValues) => Promise<number> }>;
};

const VERBS: Record<string, Verb> = {
  migrate: {
    summary:
      'create the database if needed and apply pending migrations (safe to run from every pod)',
    usage: 'audit-sweeper migrate',
    options: {},
    load: () => import('./migrate.ts'),
  },
  worker: {
    summary: 'run a sweep worker (scale by running more); serves /healthz, /readyz, /metrics',
    usage: 'audit-sweeper worker',
    options: {},
    load: () => import('./worker.ts'),
  },
  start: {
    summary: 'migrate, then run a worker and the dashboard in one process (one machine; npm start)',
    usage: 'audit-sweeper start',
    options: {},
    load: () => import('./start.ts'),
  },
  sweep: {
    summary: 'ask the workers for a sweep now; --wait prints its result, --json as JSON',
    usage: 'audit-sweeper sweep [--wait] [--json]',
    options: {
      wait: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    load: () => import('./sweep.ts'),
  },
  status: {
    summary:
      'show the backlog, oldest incomplete entry, schedules and last runs; --json for one JSON object',
    usage: 'audit-sweeper status [--json] [--runs N]',
    options: { json: { type: 'boolean', default: false }, runs: { type: 'string', default: '10' } },
    load: () => import('./status.ts'),
  },
  dashboard: {
    summary:
      'serve the operator dashboard, Bull Board, the audit-log API and /metrics (Basic auth)',
    usage: 'audit-sweeper dashboard',
    options: {},
    load: () => import('./dashboard.ts'),
  },
  simulate: {
    summary:
      'write demo audit traffic (init, then complete); a fraction never completes, as if crashed',
    usage: 'audit-sweeper simulate [--rate 20] [--crash-ratio 0.05] [--duration 30s] [--seed N]',
    options: SIMULATE_OPTIONS,
    load: () => import('./simulate.ts'),
  },
};

function help(): string {
  const width = Math.max(...Object.keys(VERBS).map((v) => v.length));
  const lines = Object.entries(VERBS).map(([name, v]) => `  ${name.padEnd(width)}  ${v.summary}`);
  return [
    'audit-sweeper: finalizes audit-log entries whose completion was lost, and serves the log.',
    '',
    'Usage: audit-sweeper <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Settings come from environment variables (see README.md); a bad one exits with code 2.',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [verbName, ...rest] = argv;
  if (!verbName || verbName === '--help' || verbName === '-h' || verbName === 'help') {
    console.log(help());
    return verbName ? 0 : 2;
  }
  const verb = VERBS[verbName];
  if (!verb) {
    console.error(`unknown command "${verbName}"; run audit-sweeper --help`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`Usage: ${verb.usage}\n\n${verb.summary}`);
    return 0;
  }
  const options = parseOptions(rest, verb.options);
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
  const module = await verb.load();
  return module.run(config, options);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    // A bad option or argument is a usage error, like a bad setting; so is a REDIS_URL whose
    // scheme does not fit what answers there (a cluster node, a replica, an unknown master).
    if (
      err instanceof UsageError ||
      err instanceof RedisSetupError ||
      (typeof err?.code === 'string' && err.code.startsWith('ERR_PARSE_ARGS_'))
    ) {
      console.error(err.message);
      process.exitCode = 2;
      return;
    }
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  },
);
