import type { RunSummary } from '../src/queue/jobs.ts';
import { count, esc, time } from './html.ts';

type Size = { width: number; height: number; testid: string; cls: string; xTicks: number };
/** Two drawings of one chart, one shown per screen width (CSS), so text stays legible. */
const WIDE: Size = { width: 880, height: 260, testid: 'run-chart', cls: 'wide', xTicks: 5 };
const NARROW: Size = {
  width: 360,
  height: 240,
  testid: 'run-chart-narrow',
  cls: 'narrow',
  xTicks: 2,
};
const PAD = { left: 64, right: 18, top: 26, bottom: 44 };
const FONT = 12;
/** Rough width of a label in the chart's units: 12 px system-ui digits are about 7 wide. */
const textWidth = (text: string) => text.length * 7 + 6;

/**
 * Rows finalized per run over time, as inline SVG bar charts drawn on the server: one bar per
 * run at its finishing time, red when a partition failed. Both axes say their unit; value
 * labels and time ticks are only drawn where they cannot overlap. Needs no script.
 */
export function renderRunChart(runs: RunSummary[]): string {
  if (runs.length === 0) {
    return `<p class="empty" data-testid="chart-empty">No runs yet: the chart appears after the first sweep.</p>`;
  }
  return draw(runs, WIDE) + draw(runs, NARROW);
}

function draw(runs: RunSummary[], size: Size): string {
  const { width: WIDTH, height: HEIGHT } = size;
  const title = 'Rows finalized per run over time';
  const sorted = [...runs].sort((a, b) => Date.parse(a.finishedAt) - Date.parse(b.finishedAt));
  const times = sorted.map((r) => Date.parse(r.finishedAt));
  const first = times[0] ?? 0;
  const last = times.at(-1) ?? first;
  const top = niceCeiling(Math.max(...sorted.map((r) => r.finalized)));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const barW = Math.max(2, Math.min(24, plotW / sorted.length / 1.6));
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
  // Value labels only when every label fits between its neighbours.
  const xs = times.map(x);
  const labels = sorted.map((r) => count(r.finalized));
  const gaps = xs.slice(1).map((v, i) => v - (xs[i] ?? 0));
  const widest = Math.max(...labels.map(textWidth));
  const showValues = gaps.every((g) => g >= widest);
  const bars = sorted
    .map((run, i) => {
      const h = Math.max(run.finalized > 0 ? 1 : 0, plotH - (y(run.finalized) - PAD.top));
      const cls = run.failedPartitions.length ? 'bar failed' : 'bar';
      const label = `${run.runId}: ${count(run.finalized)} rows finalized, finished ${time(run.finishedAt)}`;
      const value = showValues
        ? `<text class="bar-value" x="${xs[i]}" y="${PAD.top + plotH - h - 4}" text-anchor="middle">${labels[i]}</text>`
        : '';
      return `<rect class="${cls}" data-run-id="${esc(run.runId)}" x="${(xs[i] ?? 0) - barW / 2}" y="${PAD.top + plotH - h}" width="${barW}" height="${h}"><title>${esc(label)}</title></rect>${value}`;
    })
    .join('');
  return `<svg class="chart ${size.cls}" data-testid="${size.testid}" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${title}" font-size="${FONT}">
<title>${title}</title>${grid}<line class="axis-line" x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${y(0)}" y2="${y(0)}"/>${bars}${xAxis(first, last, size, plotW)}
<text class="axis unit" x="${PAD.left - 6}" y="${PAD.top - 10}" text-anchor="end">rows</text>
<text class="axis unit" x="${WIDTH - PAD.right}" y="${HEIGHT - 6}" text-anchor="end">run finished (UTC)</text></svg>`;
}

/** Evenly spaced time ticks, as many as fit without touching; HH:MM:SS, with the date when the span crosses days. */
function xAxis(first: number, last: number, size: Size, plotW: number): string {
  const sameDay =
    new Date(first).toISOString().slice(0, 10) === new Date(last).toISOString().slice(0, 10);
  const fmt = (t: number) => {
    const iso = new Date(t).toISOString();
    return sameDay ? iso.slice(11, 19) : `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
  };
  const w = textWidth(fmt(first));
  const fit = Math.max(1, Math.min(size.xTicks, Math.floor(plotW / (w * 1.5))));
  const ticks =
    last === first || fit === 1
      ? [first]
      : Array.from({ length: fit }, (_, i) => first + ((last - first) * i) / (fit - 1));
  const yText = size.height - PAD.bottom + 18;
  return ticks
    .map((t, i) => {
      const px =
        last === first ? PAD.left + plotW / 2 : PAD.left + ((t - first) / (last - first)) * plotW;
      const anchor =
        ticks.length === 1
          ? 'middle'
          : i === 0
            ? 'start'
            : i === ticks.length - 1
              ? 'end'
              : 'middle';
      return `<line class="tick" x1="${px}" x2="${px}" y1="${size.height - PAD.bottom}" y2="${size.height - PAD.bottom + 4}"/><text class="axis" x="${px}" y="${yText}" text-anchor="${anchor}">${fmt(t)}</text>`;
    })
    .join('');
}

/** 1, 2 or 5 times a power of ten, at least the value (and at least 1). */
function niceCeiling(value: number): number {
  if (value <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 5, 10].find((m) => m * power >= value) ?? 10;
  return step * power;
}
