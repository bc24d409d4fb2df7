import type { RunSummary } from '../src/queue/jobs.ts';
import { count, esc, time } from './html.ts';

const WIDTH = 880;
const HEIGHT = 240;
const PAD = { left: 56, right: 16, top: 16, bottom: 40 };

/**
 * Rows finalized per run over time, as an inline SVG bar chart drawn on the server: one bar per
 * run at its finishing time, red when a partition failed. Needs no script and no library.
 */
export function renderRunChart(runs: RunSummary[]): string {
  const title = 'Rows finalized per run over time';
  if (runs.length === 0) {
    return `<p class="empty" data-testid="chart-empty">No runs yet: the chart appears after the first sweep.</p>`;
  }
  const sorted = [...runs].sort((a, b) => Date.parse(a.finishedAt) - Date.parse(b.finishedAt));
  const times = sorted.map((r) => Date.parse(r.finishedAt));
  const first = times[0] ?? 0;
  const last = times.at(-1) ?? first;
  const top = niceCeiling(Math.max(...sorted.map((r) => r.finalized)));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const barW = Math.max(3, Math.min(24, plotW / sorted.length / 1.6));
  const x = (t: number) =>
    PAD.left +
    barW / 2 +
    (last === first ? plotW / 2 : ((t - first) / (last - first)) * (plotW - barW));
  const y = (v: number) => PAD.top + plotH - (v / top) * plotH;

  const grid = [0, top / 2, top]
    .map(
      (v) =>
        `<line class="grid" x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${y(v)}" y2="${y(v)}"/>` +
        `<text class="axis" x="${PAD.left - 6}" y="${y(v) + 4}" text-anchor="end">${count(v)}</text>`,
    )
    .join('');
  const bars = sorted
    .map((run, i) => {
      const h = Math.max(run.finalized > 0 ? 1 : 0, plotH - (y(run.finalized) - PAD.top));
      const cls = run.failedPartitions.length ? 'bar failed' : 'bar';
      const label = `${run.runId}: ${count(run.finalized)} rows finalized, finished ${time(run.finishedAt)}`;
      const value =
        sorted.length <= 24
          ? `<text class="value" x="${x(times[i] ?? 0)}" y="${PAD.top + plotH - h - 4}" text-anchor="middle">${count(run.finalized)}</text>`
          : '';
      return `<rect class="${cls}" data-run-id="${esc(run.runId)}" x="${x(times[i] ?? 0) - barW / 2}" y="${PAD.top + plotH - h}" width="${barW}" height="${h}"><title>${esc(label)}</title></rect>${value}`;
    })
    .join('');
  const xLabels =
    `<text class="axis" x="${PAD.left}" y="${HEIGHT - 12}">${esc(time(sorted[0]?.finishedAt ?? null))}</text>` +
    (sorted.length > 1
      ? `<text class="axis" x="${WIDTH - PAD.right}" y="${HEIGHT - 12}" text-anchor="end">${esc(time(sorted.at(-1)?.finishedAt ?? null))}</text>`
      : '');
  return `<svg class="chart" data-testid="run-chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${title}">
<title>${title}</title>${grid}<line class="axis-line" x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${y(0)}" y2="${y(0)}"/>${bars}${xLabels}</svg>`;
}

/** 1, 2 or 5 times a power of ten, at least the value (and at least 1). */
function niceCeiling(value: number): number {
  if (value <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 5, 10].find((m) => m * power >= value) ?? 10;
  return step * power;
}
