import { describeWaited } from '../src/control/describe.ts';
import { describeWorker } from '../src/control/fleet-state.ts';
import { humanDuration } from '../src/duration.ts';
import type { RunSummary } from '../src/queue/jobs.ts';
import type { PartitionBacklog } from '../src/read/backlog.ts';
import type { Overview } from '../src/read/overview.ts';
import { count, esc, time } from './html.ts';
import { renderRunChart } from './run-chart.ts';

/** Up to this many partitions are listed one by one; beyond it, only those with a backlog. */
const ALL_PARTITIONS_UP_TO = 64;
const RUNS_IN_TABLE = 20;

/**
 * The overview, rendered on the server. The page's script re-fetches this same page to refresh
 * the #overview section, so there is one renderer and no client-side templates.
 */
export function renderOverviewPage(base: string, o: Overview): string {
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
    <a href="${esc(base)}/queues" data-testid="bull-board-link">Bull Board</a>
    <a href="${esc(base)}/metrics">Metrics</a>
    <a href="${esc(base)}/api/overview">Overview JSON</a>
  </nav>
</header>
<section class="sweep-now">
  <button type="button" id="sweep-now" data-testid="sweep-now">Sweep now</button>
  <span class="hint">Times out every entry left incomplete for longer than ${esc(humanDuration(o.staleAfterMs))}. Pressing again during a sweep joins it.</span>
  <div id="sweep-status" data-testid="sweep-status" role="status" aria-live="polite"></div>
</section>
<section class="sweep-now pause-controls">
  <label>Pause for <select id="pause-for" data-testid="pause-for"><option value="15m">15 min</option><option value="1h">1 h</option><option value="4h">4 h</option><option value="">until resumed</option></select></label>
  <input id="pause-reason" data-testid="pause-reason" type="text" maxlength="500" placeholder="reason (shown to other operators)">
  <button type="button" id="pause" data-testid="pause">Pause</button>
  <button type="button" id="resume" data-testid="resume">Resume</button>
  <div id="pause-status" data-testid="pause-status" role="status" aria-live="polite"></div>
</section>
${renderMain(o)}
</body>
</html>`;
}

function renderMain(o: Overview): string {
  const b = o.backlog;
  const next = o.schedulers.find((s) => s.id === 'sweep')?.nextRunAt ?? null;
  return `<main id="overview" data-generated-at="${esc(o.generatedAt)}">
<section class="cards">
  ${card('Stale backlog', 'stale', count(b.stale), `incomplete for longer than ${humanDuration(o.staleAfterMs)}: waiting for the sweeper`, b.stale > 0 ? 'warn' : 'ok')}
  ${card('In flight', 'in-flight', count(b.inFlight), 'incomplete, younger than the cutoff: operations under way')}
  ${card('Oldest incomplete entry', 'oldest', b.oldestStarted ? humanDuration(b.oldestAgeMs) : 'none', b.oldestStarted ? `started ${time(b.oldestStarted)}` : 'nothing is incomplete')}
  ${card('Sweeper', 'control-state', o.control.state, controlNote(o), o.control.state === 'running' ? 'ok' : 'warn')}
  ${card('Sweep under way', 'current-run', o.currentRunId ?? 'none', next ? `next scheduled sweep ${time(next)}` : 'no schedule yet: start a worker')}
</section>
<section>
  <h2>Rows finalized per run</h2>
  ${renderRunChart(o.recentRuns)}
</section>
<section>
  <h2>Last runs</h2>
  ${renderRuns(o.recentRuns.slice(0, RUNS_IN_TABLE))}
</section>
<section>
  <h2>Backlog per partition</h2>
  ${renderPartitions(o.partitions)}
</section>
<p class="footnote">Updated ${esc(time(o.generatedAt))}; refreshes every few seconds.</p>
</main>`;
}

/** Who paused and why, or what holds the workers back, with the measured value and the limit. */
function controlNote(o: Overview): string {
  const c = o.control;
  if (c.pause)
    return `by ${c.pause.by}${c.pause.reason ? `: ${c.pause.reason}` : ''}; ${c.pause.until ? `until ${time(c.pause.until)}` : 'until resumed'}`;
  const held = c.workers.map(describeWorker);
  if (held.length) return [...new Set(held)].join('; ');
  const l = c.limits;
  return `limits: pacing ${l.maxRowsPerSecond === null ? 'off' : `${l.maxRowsPerSecond} rows/s`}, replica lag ${l.maxReplicaLagMs === null ? 'off' : humanDuration(l.maxReplicaLagMs)}, active backends ${l.maxActiveBackends ?? 'off'}`;
}

function card(label: string, id: string, value: string, note: string, tone = ''): string {
  return `<div class="card ${tone}"><div class="label">${esc(label)}</div><div class="value" data-testid="${id}">${esc(value)}</div><div class="note">${esc(note)}</div></div>`;
}

function renderRuns(runs: RunSummary[]): string {
  if (runs.length === 0) return '<p class="empty">No finished runs yet.</p>';
  const rows = runs
    .map((r) => {
      const failed = r.failedPartitions.length
        ? `<span class="bad">${r.failedPartitions.map((f) => `partition ${f.partition}: ${esc(f.error)}`).join('<br>')}</span>`
        : '<span class="good">none</span>';
      const skipped = r.skippedPartitions.length ? r.skippedPartitions.join(', ') : '';
      return `<tr data-run-id="${esc(r.runId)}">
<td>${esc(time(r.finishedAt))}</td><td><code>${esc(r.runId)}</code></td><td>${esc(r.trigger)}</td>
<td class="num" data-testid="run-finalized">${count(r.finalized)}</td><td class="num">${esc(humanDuration(r.durationMs))}${r.waitedMs ? `<div class="note" data-testid="run-waited">${esc(describeWaited(r.waitedMs))}</div>` : ''}</td>
<td class="num">${count(r.chunks)}</td><td>${esc(skipped)}</td><td>${failed}</td></tr>`;
    })
    .join('\n');
  return `<table data-testid="runs"><thead><tr><th>Finished</th><th>Run</th><th>Trigger</th><th class="num">Rows finalized</th><th class="num">Duration</th><th class="num">Chunks</th><th>Skipped (locked)</th><th>Failed partitions</th></tr></thead>
<tbody>${rows}</tbody></table>`;
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
<td><code>${esc(p.low.slice(0, 8))}…${esc(p.high.slice(0, 8))}</code></td>
<td class="num" data-testid="partition-stale">${count(p.stale)}</td><td class="num">${count(p.inFlight)}</td>
<td>${meter(p, max)}</td></tr>`,
    )
    .join('\n');
  return `<table data-testid="partitions"><thead><tr><th class="num">Partition</th><th>Ids</th><th class="num">Stale</th><th class="num">In flight</th><th></th></tr></thead>
<tbody>${rows}</tbody></table>${hidden ? `<p class="footnote">${hidden} other partitions have nothing incomplete.</p>` : ''}`;
}

/** A stacked bar as SVG attributes: the page's CSP allows no inline style. */
function meter(p: PartitionBacklog, max: number): string {
  const stale = (100 * p.stale) / max;
  const inFlight = (100 * p.inFlight) / max;
  return `<svg class="meter" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true"><rect class="stale" width="${stale}" height="10"/><rect class="in-flight" x="${stale}" width="${inFlight}" height="10"/></svg>`;
}
