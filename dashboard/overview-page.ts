import { describeWaited } from '../src/control/describe.ts';
import { humanDuration } from '../src/duration.ts';
import { describeWorker } from '../src/fleet/control-state.ts';
import { describeDrift } from '../src/fleet/drift.ts';
import { HEARTBEAT_TTL_MS, type WorkerHeartbeat } from '../src/fleet/heartbeat.ts';
import { type FleetSettings, showSetting } from '../src/fleet/settings.ts';
import type { RunSummary } from '../src/queue/jobs.ts';
import type { PartitionBacklog } from '../src/read/backlog.ts';
import { behindAfterMs } from '../src/read/health.ts';
import type { Overview } from '../src/read/overview.ts';
import { describeTimePartitions } from '../src/read/time-partitions.ts';
import type { Role } from './auth.ts';
import { count, esc, time } from './html.ts';
import { renderRunChart } from './run-chart.ts';

/** Up to this many partitions are listed one by one; beyond it, only those with a backlog. */
const ALL_PARTITIONS_UP_TO = 64;
const RUNS_IN_TABLE = 20;

/**
 * The overview, rendered on the server. The page's script re-fetches this same page to refresh
 * the #overview section, so there is one renderer and no client-side templates. Every part
 * renders from what its source gave: with Redis or PostgreSQL away, the rest still shows.
 * The reader's page has no action (its login would get 403 for each) and says so.
 */
export function renderOverviewPage(base: string, o: Overview, role: Role): string {
  return `<!doctype html>
<html lang="en" data-base="${esc(base)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>audit-sweeper: overview</title>
<link rel="stylesheet" href="${esc(base)}/assets/overview.css">
<script src="${esc(base)}/assets/overview.js" defer></script>
</head>
<body>
<header>
  <h1>audit-sweeper</h1>
  <nav>
    <a href="${esc(base)}/" aria-current="page">Overview</a>
    ${role === 'operator' ? `<a href="${esc(base)}/queues" data-testid="bull-board-link">Bull Board</a>` : ''}
    <a href="${esc(base)}/metrics">Metrics</a>
    <a href="${esc(base)}/api/overview">Overview JSON</a>
  </nav>
</header>
<div id="refresh-status" data-testid="refresh-status" role="alert" hidden></div>
${role === 'operator' ? renderActions(o) : READ_ONLY}
${renderMain(o, role)}
</body>
</html>`;
}

function renderActions(o: Overview): string {
  return `<section class="sweep-now">
  <button type="button" id="sweep-now" data-testid="sweep-now">Sweep now</button>
  <span class="hint">Times out every entry left incomplete for longer than ${esc(humanDuration(o.staleAfterMs))}. Pressing again during a sweep joins it.</span>
  <div id="sweep-status" data-testid="sweep-status" role="status" aria-live="polite"></div>
  <button type="button" id="dry-run" data-testid="dry-run">Dry run</button>
  <span class="hint">Counts what a sweep now would time out, per partition. Writes nothing.</span>
  <div id="dry-run-status" data-testid="dry-run-status" role="status" aria-live="polite"></div>
</section>
<section class="sweep-now pause-controls">
  <label>Pause for <select id="pause-for" data-testid="pause-for"><option value="15m">15 min</option><option value="1h">1 h</option><option value="4h">4 h</option><option value="">until resumed</option></select></label>
  <input id="pause-reason" data-testid="pause-reason" type="text" maxlength="500" placeholder="reason (shown to other operators)">
  <button type="button" id="pause" data-testid="pause">Pause</button>
  <button type="button" id="resume" data-testid="resume">Resume</button>
  <div id="pause-status" data-testid="pause-status" role="status" aria-live="polite"></div>
</section>`;
}

const READ_ONLY = `<p class="banner" data-testid="read-only">Signed in with the reader login: read-only. Sweep now, Pause, Resume, retrying a partition and Bull Board need the operator login.</p>`;

function renderMain(o: Overview, role: Role): string {
  return `<main id="overview" data-generated-at="${esc(o.generatedAt)}">
${renderHealth(o)}
${renderOutages(o)}
${renderFailures(o, role)}
${renderDrift(o)}
${renderCards(o)}
${renderSettings(o)}
<section>
  <h2>Workers</h2>
  ${renderWorkers(o)}
</section>
<section>
  <h2>Rows finalized per run</h2>
  ${renderRunChart(o.recentRuns)}
</section>
<section>
  <h2>Last runs</h2>
  ${renderRuns(o.recentRuns.slice(0, RUNS_IN_TABLE))}
  ${renderRetention(o)}
</section>
<section>
  <h2>Backlog per partition</h2>
  ${o.partitions ? renderPartitions(o.partitions) : '<p class="empty">Unknown: PostgreSQL does not answer.</p>'}
</section>
<p class="footnote">Updated ${esc(time(o.generatedAt))}; refreshes every few seconds.</p>
</main>`;
}

const STATE_WORDS = { healthy: 'Healthy', degraded: 'Degraded', down: 'Down' } as const;

function renderHealth(o: Overview): string {
  const { state, reasons } = o.health;
  const list = reasons.length
    ? `<ul>${reasons.map((r) => `<li data-code="${esc(r.code)}">${esc(r.message)}</li>`).join('')}</ul>`
    : '<span class="why">workers are alive, schedules on time, nothing failing or falling behind</span>';
  return `<section class="health ${state}" data-testid="health" data-state="${state}" role="status">
<strong data-testid="health-state">${STATE_WORDS[state]}</strong>${list}</section>`;
}

function renderOutages(o: Overview): string {
  const banners: string[] = [];
  if (o.unavailable.redis)
    banners.push(
      `<div class="banner bad" data-testid="outage-redis"><strong>Redis is unreachable</strong> (${esc(o.unavailable.redis)}). Shown from PostgreSQL only: the backlog, per partition, and the run history. The workers, the schedules and the run under way are unknown until it answers.</div>`,
    );
  if (o.unavailable.postgres)
    banners.push(
      `<div class="banner bad" data-testid="outage-postgres"><strong>PostgreSQL is unreachable</strong> (${esc(o.unavailable.postgres)}). Shown from Redis only: the workers, the schedules and the runs Redis remembers. The backlog is unknown until it answers.</div>`,
    );
  return banners.join('\n');
}

function renderFailures(o: Overview, role: Role): string {
  return o.failingPartitions
    .map(
      (
        f,
      ) => `<div class="banner bad alert" data-testid="failing-partition" data-partition="${f.partition}">
<div><strong>Partition ${f.partition} of ${f.partitions} is failing</strong> (last failed ${esc(time(f.failedAt))}, ${f.failedRuns > 1 ? `${f.failedRuns} runs in a row` : 'in its last run'}, run <code>${esc(f.runId)}</code>): <span class="error">${esc(f.error)}</span>. Until it succeeds it gets one attempt per run, so it does not hold up the other partitions.</div>
${role === 'operator' ? `<button type="button" class="retry" data-testid="retry-partition" data-partition="${f.partition}">Retry partition ${f.partition} now</button>\n<span class="retry-status" role="status"></span>` : ''}</div>`,
    )
    .join('\n');
}

function renderDrift(o: Overview): string {
  if (o.drift.length === 0) return '';
  const items = o.drift.map(
    (d) => `<li data-setting="${esc(d.setting)}">${esc(describeDrift(d))}</li>`,
  );
  return `<div class="banner warn" data-testid="settings-drift"><strong>Settings differ between processes.</strong> The counts below use ${esc(sourceText(o))}.<ul>${items.join('')}</ul></div>`;
}

function renderCards(o: Overview): string {
  const b = o.backlog;
  const next = o.schedulers?.find((s) => s.id === 'sweep')?.nextRunAt ?? null;
  const unknown = 'PostgreSQL does not answer';
  const runCard = o.schedulers
    ? card(
        'Sweep under way',
        'current-run',
        o.currentRunId ?? 'none',
        next ? `next scheduled sweep ${time(next)}` : 'no schedule yet: start a worker',
      )
    : card('Sweep under way', 'current-run', 'unknown', 'Redis does not answer');
  if (!b)
    return `<section class="cards">${card('Stale backlog', 'stale', 'unknown', unknown)}${card('In flight', 'in-flight', 'unknown', unknown)}${card('Oldest incomplete entry', 'oldest', 'unknown', unknown)}${controlCard(o)}${runCard}</section>`;
  return `<section class="cards">
  ${card('Stale backlog', 'stale', count(b.stale), `incomplete for longer than ${humanDuration(o.staleAfterMs)}: waiting for the sweeper`, staleTone(o))}
  ${card('In flight', 'in-flight', count(b.inFlight), 'incomplete, younger than the cutoff: operations under way')}
  ${card('Oldest incomplete entry', 'oldest', b.oldestStarted ? humanDuration(b.oldestAgeMs) : 'none', b.oldestStarted ? `started ${time(b.oldestStarted)}` : 'nothing is incomplete')}
  ${headroomCard(o)}
  ${timePartitionsCard(o)}
  ${controlCard(o)}
  ${runCard}
</section>`;
}

/** The longest real operation of the last hour beside the cutoff (STALE_AFTER). */
function headroomCard(o: Overview): string {
  const h = o.headroom;
  if (!h || h.maxMs === null)
    return card(
      'Longest operation',
      'headroom',
      'none',
      `no operation completed in the last ${humanDuration(h?.windowMs ?? 3_600_000)}`,
    );
  const close = o.health.reasons.some((r) => r.code === 'cutoff_headroom');
  return card(
    'Longest operation',
    'headroom',
    humanDuration(h.maxMs),
    `of the last ${humanDuration(h.windowMs)} (p99 ${humanDuration(h.p99Ms ?? 0)}), against a cutoff of ${humanDuration(o.staleAfterMs)}`,
    close ? 'warn' : 'ok',
  );
}

/** The audit log's layout; on time partitions, how far ahead they reach and what retention keeps. */
function timePartitionsCard(o: Overview): string {
  const t = o.timePartitions;
  if (t?.layout !== 'partitioned') return '';
  const { summary, heldBack } = describeTimePartitions(t);
  const warn = o.health.reasons.some(
    (r) => r.code === 'default_partition_rows' || r.code === 'time_partitions_running_out',
  );
  return card(
    'Time partitions',
    'time-partitions',
    count(t.count),
    [summary, ...heldBack].join('. '),
    warn || heldBack.length ? 'warn' : 'ok',
  );
}

/** Running, paced, throttled or paused (issue 12's control state); unknown without Redis. */
const controlCard = (o: Overview) =>
  card(
    'Sweeper',
    'control-state',
    o.control?.state ?? 'unknown',
    controlNote(o),
    o.control?.state === 'running' ? 'ok' : 'warn',
  );

/**
 * A stale backlog is normal for up to one sweep interval after rows pass the cutoff: coloured
 * only once the oldest stale row has waited longer than two intervals (warn), and red once it
 * is older than the health limit (2 x STALE_AFTER + SWEEP_EVERY).
 */
function staleTone(o: Overview): string {
  const b = o.backlog;
  if (!b || b.stale === 0) return 'ok';
  if (b.oldestAgeMs > behindAfterMs(o.settings)) return 'bad';
  if (b.oldestAgeMs > o.settings.STALE_AFTER + 2 * o.settings.SWEEP_EVERY) return 'warn';
  return '';
}

/** Who paused and why, or what holds the workers back, with the measured value and the limit. */
function controlNote(o: Overview): string {
  const c = o.control;
  if (!c) return 'unknown: Redis does not answer';
  if (c.pause)
    return `by ${c.pause.by}${c.pause.reason ? `: ${c.pause.reason}` : ''}; ${c.pause.until ? `until ${time(c.pause.until)}` : 'until resumed'}`;
  // The adaptive throttle's reason and the streams against their cap, whatever else holds.
  const fleet = [
    ...(c.adaptive ? [c.adaptive.reason] : []),
    `streams ${c.streams.inUse} of ${c.streams.cap ?? 'no cap'}`,
  ].join('; ');
  const held = c.workers.map(describeWorker);
  if (held.length) return `${[...new Set(held)].join('; ')}; ${fleet}`;
  const l = c.limits;
  return `${fleet}; limits: pacing ${l.maxRowsPerSecond === null ? 'off' : `${l.maxRowsPerSecond} rows/s`}, replica lag ${l.maxReplicaLagMs === null ? 'off' : humanDuration(l.maxReplicaLagMs)}, active backends ${l.maxActiveBackends ?? 'off'}`;
}

function card(label: string, id: string, value: string, note: string, tone = ''): string {
  return `<div class="card ${tone}"><div class="label">${esc(label)}</div><div class="value" data-testid="${id}">${esc(value)}</div><div class="note">${esc(note)}</div></div>`;
}

function sourceText(o: Overview): string {
  const n = o.workers?.length ?? 0;
  if (o.settingsSource === 'workers')
    return n === 1
      ? 'the settings the live worker runs with'
      : `the settings the ${n} live workers run with`;
  if (o.settingsSource === 'last-worker')
    return 'the settings of the last worker seen (its heartbeat, or the last run it recorded): no live worker reports now';
  return "this dashboard's own settings (no worker has reported its settings)";
}

function renderSettings(o: Overview): string {
  const s = o.settings;
  const shown: (keyof FleetSettings)[] = [
    'STALE_AFTER',
    'SWEEP_EVERY',
    'SWEEP_PARTITIONS',
    'RETENTION',
  ];
  return `<p class="settings" data-testid="settings-source" data-source="${o.settingsSource}">Counting with ${shown
    .map((k) => `<code>${k}=${esc(showSetting(k, s[k]))}</code>`)
    .join(' ')}: ${esc(sourceText(o))}.</p>`;
}

function renderWorkers(o: Overview): string {
  if (!o.workers) return '<p class="empty">Unknown: Redis does not answer.</p>';
  const note = `<p class="footnote">A worker that stops heartbeating drops off within ${humanDuration(HEARTBEAT_TTL_MS)}.${o.bullmqWorkers === null ? '' : ` BullMQ sees ${o.bullmqWorkers} worker connection${o.bullmqWorkers === 1 ? '' : 's'}.`}</p>`;
  if (o.workers.length === 0)
    return `<p class="empty bad" data-testid="no-workers">No live worker: nothing will sweep. Start one with <code>audit-sweeper worker</code>.</p>${note}`;
  const now = Date.parse(o.generatedAt);
  const rows = o.workers.map(
    (w) => `<tr data-testid="worker" data-worker-id="${esc(w.id)}">
<td data-label="Host">${esc(w.host)}</td><td class="num" data-label="PID">${esc(w.pid)}</td><td data-label="Version">${esc(w.version)}</td>
<td class="num" data-label="Concurrency">${esc(w.concurrency)}</td><td class="num" data-label="Jobs in hand" title="${esc(w.jobs.map((j) => `${j.name} ${j.id}`).join(', '))}">${esc(w.jobsInHand)}</td>
<td data-label="Started">${esc(time(w.startedAt))}</td><td data-label="Last heartbeat">${esc(ago(now, w.lastHeartbeat))}</td>
<td data-label="Settings">${esc(workerSettings(w))}</td></tr>`,
  );
  return `<table class="stack" data-testid="workers"><thead><tr><th>Host</th><th class="num">PID</th><th>Version</th><th class="num">Concurrency</th><th class="num">Jobs in hand</th><th>Started</th><th>Last heartbeat</th><th>Settings</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table>${note}`;
}

const workerSettings = (w: WorkerHeartbeat) =>
  `STALE_AFTER=${showSetting('STALE_AFTER', w.settings.STALE_AFTER)} SWEEP_EVERY=${showSetting('SWEEP_EVERY', w.settings.SWEEP_EVERY)} SWEEP_PARTITIONS=${w.settings.SWEEP_PARTITIONS}`;

function ago(now: number, iso: string): string {
  const ms = Math.max(0, now - Date.parse(iso));
  return ms < 1_000 ? 'just now' : `${humanDuration(ms)} ago`;
}

function renderRuns(runs: RunSummary[]): string {
  if (runs.length === 0) return '<p class="empty">No finished runs yet.</p>';
  const rows = runs
    .map((r) => {
      const failed = r.failedPartitions.length
        ? `<span class="bad">${r.failedPartitions.map((f) => `partition ${f.partition}: ${esc(f.error)}`).join('<br>')}</span>`
        : '<span class="good">none</span>';
      const skipped = r.skippedPartitions.length ? r.skippedPartitions.join(', ') : 'none';
      const trigger = r.only ? `${r.trigger} (partition ${r.only.join(', ')})` : r.trigger;
      return `<tr data-run-id="${esc(r.runId)}">
<td data-label="Finished">${esc(time(r.finishedAt))}</td><td data-label="Run"><code>${esc(r.runId)}</code></td><td data-label="Trigger">${esc(trigger)}</td>
<td class="num" data-label="Rows finalized" data-testid="run-finalized">${count(r.finalized)}</td><td class="num" data-label="Duration">${esc(humanDuration(r.durationMs))}${r.waitedMs ? `<div class="note" data-testid="run-waited">${esc(describeWaited(r.waitedMs))}</div>` : ''}</td>
<td class="num" data-label="Chunks">${count(r.chunks)}</td><td data-label="Skipped (locked)">${esc(skipped)}</td><td data-label="Failed partitions">${failed}</td></tr>`;
    })
    .join('\n');
  return `<table class="stack" data-testid="runs"><thead><tr><th>Finished</th><th>Run</th><th>Trigger</th><th class="num">Rows finalized</th><th class="num">Duration</th><th class="num">Chunks</th><th>Skipped (locked)</th><th>Failed partitions</th></tr></thead>
<tbody>${rows}</tbody></table>`;
}

function renderRetention(o: Overview): string {
  const r = o.lastRetention;
  if (o.settings.RETENTION === null) return '<p class="footnote">Retention is off.</p>';
  if (!r) return '<p class="footnote">No retention run recorded yet (it runs hourly).</p>';
  return `<p class="footnote" data-testid="last-retention">Last retention run ${esc(time(r.finishedAt))}: ${count(r.status.deleted)} rows older than ${esc(humanDuration(r.status.retentionMs))} deleted in ${esc(humanDuration(r.status.durationMs))}${r.status.error ? `, FAILED: ${esc(r.status.error)}` : ''}.</p>`;
}

function renderPartitions(partitions: PartitionBacklog[]): string {
  const shown =
    partitions.length <= ALL_PARTITIONS_UP_TO
      ? partitions
      : partitions.filter((p) => p.stale + p.inFlight > 0);
  const hidden = partitions.length - shown.length;
  const max = Math.max(1, ...shown.map((p) => p.stale + p.inFlight));
  const rows = shown
    .map(
      (p) => `<tr data-partition="${p.partition}"><td class="num">${p.partition}</td>
<td class="ids"><code>${esc(p.low.slice(0, 8))}…${esc(p.high.slice(0, 8))}</code></td>
<td class="num" data-testid="partition-stale">${count(p.stale)}</td><td class="num">${count(p.inFlight)}</td>
<td class="meter-cell">${meter(p, max)}</td></tr>`,
    )
    .join('\n');
  return `<table data-testid="partitions"><thead><tr><th class="num">Partition</th><th class="ids">Ids</th><th class="num">Stale</th><th class="num">In flight</th><th class="meter-cell"></th></tr></thead>
<tbody>${rows}</tbody></table>${hidden ? `<p class="footnote">${hidden} other partitions have nothing incomplete.</p>` : ''}`;
}

/** A stacked bar as SVG attributes: the page's CSP allows no inline style. */
function meter(p: PartitionBacklog, max: number): string {
  const stale = (100 * p.stale) / max;
  const inFlight = (100 * p.inFlight) / max;
  return `<svg class="meter" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true"><rect class="stale" width="${stale}" height="10"/><rect class="in-flight" x="${stale}" width="${inFlight}" height="10"/></svg>`;
}
