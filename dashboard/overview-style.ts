/** The overview page's stylesheet, served as /assets/overview.css (see overview-script.ts). */
export const OVERVIEW_STYLE = `
:root { --fg: #1f2430; --muted: #667085; --line: #e4e7ec; --bg: #f6f7f9; --card: #fff;
  --accent: #2e5bff; --good: #12805c; --warn: #b54708; --bad: #c0262d; --stale: #f79009; --flight: #98a2b3; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: baseline; gap: 2rem; padding: .8rem 1.5rem; background: #101828; color: #fff; }
header h1 { margin: 0; font-size: 1.15rem; }
nav a { color: #d0d5dd; margin-right: 1.2rem; text-decoration: none; }
nav a[aria-current] { color: #fff; font-weight: 600; }
main, .sweep-now { max-width: 1100px; margin: 0 auto; padding: 0 1.5rem; }
.sweep-now { display: flex; flex-wrap: wrap; align-items: center; gap: .6rem 1rem; padding-top: 1.2rem; }
.sweep-now .hint { color: var(--muted); }
#sweep-now { font: inherit; font-weight: 600; color: #fff; background: var(--accent); border: 0; border-radius: 6px; padding: .55rem 1.2rem; cursor: pointer; }
#sweep-now:disabled { opacity: .6; cursor: wait; }
#sweep-status { flex-basis: 100%; min-height: 1.5em; display: flex; align-items: center; gap: 1rem; }
#sweep-status.busy { color: var(--accent); } #sweep-status.good { color: var(--good); } #sweep-status.bad { color: var(--bad); }
#sweep-status progress { width: 14rem; }
h2 { font-size: 1rem; margin: 1.6rem 0 .6rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); gap: 1rem; margin-top: 1rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .9rem 1rem; }
.card .label { color: var(--muted); font-size: .8rem; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 1.7rem; font-weight: 650; margin: .2rem 0; overflow-wrap: anywhere; }
.card.warn .value { color: var(--warn); } .card.ok .value { color: var(--good); }
.card .note { color: var(--muted); font-size: .85rem; }
table { width: 100%; border-collapse: collapse; background: var(--card); border: 1px solid var(--line); border-radius: 8px; }
th, td { text-align: left; padding: .4rem .7rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: .8rem; color: var(--muted); font-weight: 600; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.good { color: var(--good); } .bad { color: var(--bad); }
.empty, .footnote { color: var(--muted); }
svg.chart { width: 100%; height: auto; background: var(--card); border: 1px solid var(--line); border-radius: 8px; }
.chart .bar { fill: var(--accent); } .chart .bar.failed { fill: var(--bad); }
.chart .grid { stroke: var(--line); } .chart .axis-line { stroke: var(--muted); }
.chart text { font-size: 11px; fill: var(--muted); } .chart .value { fill: var(--fg); }
svg.meter { width: 160px; height: 10px; background: var(--bg); }
.meter .stale { fill: var(--stale); } .meter .in-flight { fill: var(--flight); }
`;
