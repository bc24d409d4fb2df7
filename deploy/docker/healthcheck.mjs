// Container health check: exits 0 when GET http://127.0.0.1:<port><path> answers 2xx, else 1.
// The port is the first argument, else HEALTHCHECK_PORT, else WORKER_METRICS_PORT, else 9464, so
// one image serves both roles: a dashboard container sets HEALTHCHECK_PORT to its DASHBOARD_PORT.
// The path is HEALTHCHECK_PATH, else /healthz. Plain node, no dependencies.
const port =
  process.argv[2] || process.env.HEALTHCHECK_PORT || process.env.WORKER_METRICS_PORT || '9464';
const path = process.env.HEALTHCHECK_PATH || '/healthz';
const url = `http://127.0.0.1:${port}${path}`;

try {
  const response = await fetch(url, { signal: AbortSignal.timeout(4_000) });
  if (!response.ok) {
    console.error(`unhealthy: ${url} answered ${response.status}`);
    process.exit(1);
  }
  process.exit(0);
} catch (err) {
  const cause = err?.cause?.code || err?.cause?.message;
  console.error(`unhealthy: ${url}: ${err?.message ?? err}${cause ? ` (${cause})` : ''}`);
  process.exit(1);
}
