import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, until } from './private-servers.ts';

/**
 * A private Prometheus and Alertmanager (Debian's prometheus and prometheus-alertmanager), each
 * on a free loopback port with its data in a temporary folder, and a webhook receiver that
 * records what Alertmanager sends. Short intervals, so alerts move in seconds.
 */

export type Server = {
  url: string;
  output: () => string;
  stop: () => Promise<void>;
};

async function startServer(
  name: string,
  command: string,
  args: (dir: string, listen: string) => string[],
  files: Record<string, unknown>,
  ready: string,
): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), `audit-sweeper-${name}-`));
  for (const [file, content] of Object.entries(files))
    writeFileSync(join(dir, file), typeof content === 'string' ? content : stringify(content));
  const port = await freePort();
  const listen = `127.0.0.1:${port}`;
  const child: ChildProcess = spawn(command, args(dir, listen), {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const url = `http://${listen}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await until(`${name} on ${listen}`, 30_000, async () => {
      if (child.exitCode !== null) throw new Error(`${name} exited: ${output.slice(-2000)}`);
      return (await fetch(`${url}${ready}`)).ok;
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, output: () => output, stop };
}

export function startAlertmanager(webhookUrl: string): Promise<Server> {
  const config = {
    route: {
      receiver: 'test',
      group_by: ['alertname'],
      group_wait: '1s',
      group_interval: '1s',
      repeat_interval: '1h',
    },
    receivers: [{ name: 'test', webhook_configs: [{ url: webhookUrl, send_resolved: true }] }],
  };
  return startServer(
    'alertmanager',
    'prometheus-alertmanager',
    (dir, listen) => [
      `--config.file=${join(dir, 'alertmanager.yml')}`,
      `--storage.path=${join(dir, 'data')}`,
      `--web.listen-address=${listen}`,
      // No gossip: a private instance needs no cluster, and must not take port 9094.
      '--cluster.listen-address=',
    ],
    { 'alertmanager.yml': config },
    '/-/ready',
  );
}

export function startPrometheus(o: {
  rules: unknown;
  scrapeConfigs: unknown[];
  alertmanager: string;
}): Promise<Server> {
  const config = {
    global: { scrape_interval: '1s', evaluation_interval: '1s', scrape_timeout: '1s' },
    rule_files: ['rules.yml'],
    alerting: {
      alertmanagers: [{ static_configs: [{ targets: [new URL(o.alertmanager).host] }] }],
    },
    scrape_configs: o.scrapeConfigs,
  };
  return startServer(
    'prometheus',
    'prometheus',
    (dir, listen) => [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=${listen}`,
      '--rules.alert.resend-delay=1s',
    ],
    { 'prometheus.yml': config, 'rules.yml': o.rules },
    '/-/ready',
  );
}

/** Prometheus's HTTP API: the data of one answer. */
export async function prometheusApi<T>(server: Server, path: string): Promise<T> {
  const res = await fetch(`${server.url}${path}`);
  const body = (await res.json()) as { status: string; data: T; error?: string };
  if (body.status !== 'success') throw new Error(`${path}: ${body.error}`);
  return body.data;
}

export type WebhookAlert = {
  status: 'firing' | 'resolved';
  labels: Record<string, string>;
  annotations: Record<string, string>;
};

/** What Alertmanager's webhook sends, every notification as it arrived. */
export async function startWebhookReceiver() {
  const received: WebhookAlert[] = [];
  const server = createServer(async (req: IncomingMessage, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const notification = JSON.parse(body) as { alerts: WebhookAlert[] };
    received.push(...notification.alerts);
    res.writeHead(200).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
