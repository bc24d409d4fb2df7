import { type Config, ConfigError, loadConfig } from '../config.ts';
import { installLastResort } from '../last-resort.ts';
import { createLogger } from '../log.ts';
import { RedisSetupError } from '../redis-client.ts';
import { scrubSecrets } from '../secrets.ts';
import { VERSION } from '../version.ts';
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
  /** One line per option, for --help (test/cli.test.ts checks that none is missing). */
  optionHelp: Record<string, string>;
  load: () => Promise<{ run: (config: Config, options: OptionValues) => Promise<number> }>;
};

const VERBS: Record<string, Verb> = {
  migrate: {
    summary:
      'create the database if needed and apply pending migrations (safe to run from every pod)',
    usage: 'audit-sweeper migrate',
    options: {},
    optionHelp: {},
    load: () => import('./migrate.ts'),
  },
  worker: {
    summary: 'run a sweep worker (scale by running more); serves /healthz, /readyz, /metrics',
    usage: 'audit-sweeper worker',
    options: {},
    optionHelp: {},
    load: () => import('./worker.ts'),
  },
  start: {
    summary: 'migrate, then run a worker and the dashboard in one process (one machine; npm start)',
    usage: 'audit-sweeper start',
    options: {},
    optionHelp: {},
    load: () => import('./start.ts'),
  },
  sweep: {
    summary: 'ask the workers for a sweep now; --wait prints its result, --json as JSON',
    usage: 'audit-sweeper sweep [--wait [--timeout 5m] | --dry-run] [--json]',
    options: {
      wait: { type: 'boolean', default: false },
      'dry-run': { type: 'boolean', default: false },
      timeout: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    optionHelp: {
      wait: 'wait for the run to finish and print its totals (exit 1 if a partition failed)',
      'dry-run':
        'write nothing: print how many entries a sweep now would time out, per partition, and the oldest',
      timeout: 'with --wait: give up after this long, exit 3 (default 5m; e.g. 30s, 2h)',
      json: 'print JSON instead of text',
    },
    load: () => import('./sweep.ts'),
  },
  status: {
    summary:
      'show the backlog, oldest incomplete entry, schedules and last runs; --json for one JSON object',
    usage: 'audit-sweeper status [--json] [--runs N]',
    options: { json: { type: 'boolean', default: false }, runs: { type: 'string', default: '10' } },
    optionHelp: {
      json: 'print one JSON object instead of text',
      runs: 'how many of the last runs to show, 1 to 500 (default 10)',
    },
    load: () => import('./status.ts'),
  },
  pause: {
    summary:
      'pause every worker before its next chunk (runs keep their place); --for ends it by itself',
    usage: 'audit-sweeper pause [--for 30m] [--reason TEXT]',
    options: { for: { type: 'string' }, reason: { type: 'string' } },
    optionHelp: {
      for: 'end the pause by itself after this long (e.g. 30m, 4h); default: until resume',
      reason: 'why, shown to other operators in status and the dashboard',
    },
    load: () => import('./pause.ts'),
  },
  resume: {
    summary: 'end a pause: paused sweeps go on from where they stopped',
    usage: 'audit-sweeper resume',
    options: {},
    optionHelp: {},
    load: () => import('./resume.ts'),
  },
  dashboard: {
    summary:
      'serve the operator dashboard, Bull Board, the audit-log API and /metrics (Basic auth)',
    usage: 'audit-sweeper dashboard',
    options: {},
    optionHelp: {},
    load: () => import('./dashboard.ts'),
  },
  simulate: {
    summary:
      'write demo audit traffic (init, then complete); a fraction never completes, as if crashed',
    usage: 'audit-sweeper simulate [--rate 20] [--crash-ratio 0.05] [--duration 30s] [--seed N]',
    options: SIMULATE_OPTIONS,
    optionHelp: {
      rate: 'operations started per second, up to 10000 (default 20)',
      'crash-ratio': 'fraction 0..1 of operations never completed (default 0.05)',
      duration: 'how long to run, e.g. 30s or 5m (default: until SIGINT/SIGTERM)',
      seed: 'a whole number: the same traffic every time (default random)',
    },
    load: () => import('./simulate.ts'),
  },
};

/** `--name <value>` or `--name`, then what it does. */
function optionLines(verb: Verb): string[] {
  return Object.entries(verb.options).map(([name, spec]) => {
    const flag = `--${name}${spec.type === 'string' ? ' <value>' : ''}`;
    return `      ${flag.padEnd(22)} ${verb.optionHelp[name] ?? ''}`;
  });
}

function help(): string {
  const width = Math.max(...Object.keys(VERBS).map((v) => v.length));
  const lines = Object.entries(VERBS).flatMap(([name, v]) => [
    `  ${name.padEnd(width)}  ${v.summary}`,
    ...optionLines(v),
  ]);
  return [
    `audit-sweeper ${VERSION}: finalizes audit-log entries whose completion was lost, and serves the log.`,
    '',
    'Usage: audit-sweeper <command> [options]',
    '       audit-sweeper --version | --help',
    '',
    'Commands and their options:',
    ...lines,
    '',
    'Settings come from environment variables (see README.md); a bad one exits with code 2.',
    'Logs are JSON lines on stdout; `npx pino-pretty` makes them readable.',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [verbName, ...rest] = argv;
  if (!verbName || verbName === '--help' || verbName === '-h' || verbName === 'help') {
    console.log(help());
    return verbName ? 0 : 2;
  }
  if (verbName === '--version' || verbName === '-V' || verbName === 'version') {
    console.log(VERSION);
    return 0;
  }
  const verb = VERBS[verbName];
  if (!verb) {
    console.error(`unknown command "${verbName}"; run audit-sweeper --help`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    const options = optionLines(verb);
    console.log(
      [`Usage: ${verb.usage}`, '', verb.summary, ...(options.length ? ['', ...options] : [])].join(
        '\n',
      ),
    );
    return 0;
  }
  const options = parseOptions(rest, verb.options);
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      // The message never holds a secret (ConfigError hides them); scrubbing is a second guard.
      console.error(scrubSecrets(err.message));
      return 2;
    }
    throw err;
  }
  // Before anything connects: a rejection nobody awaited must not end a worker while Redis or
  // PostgreSQL is away (src/last-resort.ts).
  installLastResort(createLogger(config.LOG_LEVEL, 'process'));
  const module = await verb.load();
  return module.run(config, options);
}

/**
 * A command that has finished ends its process when nothing is left open. Should something stay
 * open (a timer or socket a library keeps), a pod would hang in Terminating until its grace
 * period ran out and it was killed: after this long, say what is open and exit anyway.
 */
const LINGER_MS = 5_000;

function exitWhenDone(): void {
  setTimeout(() => {
    const open = process.getActiveResourcesInfo().filter((r) => r !== 'Timeout');
    console.error(
      `audit-sweeper: finished, but still running ${LINGER_MS / 1000} s later (open: ${open.join(', ') || 'timers'}); exiting`,
    );
    process.exit();
  }, LINGER_MS).unref();
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    exitWhenDone();
  },
  (err) => {
    // A bad option or argument is a usage error, like a bad setting; so is a REDIS_URL whose
    // scheme does not fit what answers there (a cluster node, a replica, an unknown master).
    if (
      err instanceof UsageError ||
      err instanceof RedisSetupError ||
      (typeof err?.code === 'string' && err.code.startsWith('ERR_PARSE_ARGS_'))
    ) {
      console.error(scrubSecrets(err.message));
      process.exitCode = 2;
    } else {
      // An error's message may quote a connection URL: never print its password.
      console.error(scrubSecrets(err instanceof Error ? err.message : String(err)));
      process.exitCode = 1;
    }
    exitWhenDone();
  },
);
