// @ts-check
/**
 * The overview page's script, served as /assets/overview.js. It refreshes the #overview section
 * from the server-rendered page, and drives "Sweep now": POST /api/sweeps, then polls
 * /api/sweeps/:id until the run is done. The tick id is kept in sessionStorage so that a reload
 * goes on showing the sweep. Plain ES5-style browser JavaScript, type-checked with checkJs.
 */

(() => {
  const base = document.documentElement.getAttribute('data-base') || '';
  const button = /** @type {HTMLButtonElement} */ (document.getElementById('sweep-now'));
  const status = document.getElementById('sweep-status');
  const KEY = 'audit-sweeper.sweep';
  let polling = null;

  const refreshStatus = document.getElementById('refresh-status');
  let refreshError = null;

  function fmt(n) {
    return Number(n).toLocaleString('en-US');
  }

  /** 850 ms, 12.3 s, 4 min 10 s: like the server's humanDuration. */
  function duration(ms) {
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(1).replace(/\.0$/, '')} s`;
    const s = Math.round(ms / 1000);
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  /** While refreshing fails, say so at the top, with the age of what the page shows. */
  function showRefreshState() {
    if (!refreshError) {
      refreshStatus.hidden = true;
      return;
    }
    const shown = document.getElementById('overview')?.getAttribute('data-generated-at');
    const age = shown ? duration(Date.now() - Date.parse(shown)) : 'unknown';
    refreshStatus.hidden = false;
    refreshStatus.textContent = `Cannot refresh (${refreshError}): the figures below are ${age} old and may be out of date.`;
  }

  function show(text, tone, progress) {
    status.textContent = '';
    status.className = tone || '';
    const line = document.createElement('span');
    line.textContent = text;
    status.appendChild(line);
    if (progress) {
      const bar = document.createElement('progress');
      bar.max = progress.partitions;
      bar.value = progress.partitionsDone;
      status.appendChild(bar);
    }
  }

  function describe(s) {
    const joined = s.joined ? ' (joined the run already under way)' : '';
    if (s.tickState === 'failed')
      return [`Sweep request ${s.tickJobId} failed: ${s.tickError}`, 'bad'];
    if (s.pausedBy)
      return [
        `The sweeper is paused (by ${s.pausedBy}): no sweep started. Resume it first.`,
        'bad',
      ];
    if (!s.runId) {
      const who =
        s.tickState === 'active' ? 'a worker is starting the run' : 'waiting for a worker';
      // No worker takes it: say where to look instead of waiting in silence.
      const health = document.querySelector('[data-testid="health"]');
      const state = health?.getAttribute('data-state');
      const hint =
        s.tickState !== 'active' && state && state !== 'healthy'
          ? ` (health is ${state}: see the reasons above)`
          : '';
      return [`Sweep requested (job ${s.tickJobId}): ${who}…${hint}`, 'busy'];
    }
    if (s.summary) {
      const failed = s.summary.failedPartitions.length;
      return [
        'Run ' +
          s.runId +
          ' finished' +
          joined +
          ': ' +
          fmt(s.summary.finalized) +
          ' rows finalized in ' +
          duration(s.summary.durationMs) +
          (failed ? `, ${failed} partition${failed === 1 ? '' : 's'} FAILED` : ''),
        failed ? 'bad' : 'good',
      ];
    }
    if (s.runState === 'failed') return [`Run ${s.runId} failed`, 'bad'];
    if (s.runState === 'removed') return [`Run ${s.runId} has finished`, 'good'];
    const p = s.progress;
    return [
      'Run ' +
        s.runId +
        joined +
        ': ' +
        p.partitionsDone +
        ' of ' +
        p.partitions +
        ' partitions done, ' +
        fmt(p.finalized) +
        ' rows finalized so far' +
        (p.failedPartitions ? `, ${p.failedPartitions} failed` : ''),
      'busy',
    ];
  }

  function refresh() {
    return fetch(`${base}/`, { headers: { accept: 'text/html' }, cache: 'no-store' })
      .then((res) => {
        if (!res.ok) throw new Error(`the dashboard answered HTTP ${res.status}`);
        return res.text();
      })
      .then((html) => {
        const fresh = new DOMParser().parseFromString(html, 'text/html').getElementById('overview');
        const current = document.getElementById('overview');
        if (!fresh) throw new Error('the dashboard sent an unexpected page');
        if (current) current.replaceWith(document.importNode(fresh, true));
        refreshError = null;
        showRefreshState();
      })
      .catch((err) => {
        // The next refresh tries again; meanwhile the banner keeps the age current.
        refreshError = err instanceof TypeError ? 'the dashboard does not answer' : err.message;
        showRefreshState();
      });
  }

  function poll(tickJobId) {
    clearTimeout(polling);
    fetch(`${base}/api/sweeps/${encodeURIComponent(tickJobId)}`, { cache: 'no-store' })
      .then((res) => {
        if (res.status === 404) {
          sessionStorage.removeItem(KEY);
          return null;
        }
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        return res.json();
      })
      .then((s) => {
        if (!s) return;
        const d = describe(s);
        show(d[0], d[1], s.done ? null : s.progress);
        refresh();
        if (s.done) sessionStorage.removeItem(KEY);
        else
          polling = setTimeout(() => {
            poll(tickJobId);
          }, 1000);
      })
      .catch((err) => {
        show(`Could not read the sweep's state (${err.message}); retrying…`, 'bad');
        polling = setTimeout(() => {
          poll(tickJobId);
        }, 3000);
      });
  }

  // The reader's page has no actions: nothing to wire up.
  if (button)
    button.addEventListener('click', () => {
      button.disabled = true;
      show('Requesting a sweep…', 'busy');
      fetch(`${base}/api/sweeps`, { method: 'POST', headers: { accept: 'application/json' } })
        .then((res) =>
          res.json().then((body) => {
            if (!res.ok) throw new Error(body.error?.message || `HTTP ${res.status}`);
            return body;
          }),
        )
        .then((body) => {
          sessionStorage.setItem(KEY, body.tickJobId);
          poll(body.tickJobId);
        })
        .catch((err) => {
          show(`Sweep request failed: ${err.message}`, 'bad');
        })
        .finally(() => {
          button.disabled = false;
        });
    });

  // "Retry partition N now": the alert's button (in the refreshed section, hence delegation).
  document.addEventListener('click', (event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    const retry = /** @type {HTMLButtonElement | null} */ (target.closest('button.retry'));
    if (!retry) return;
    const partition = retry.getAttribute('data-partition');
    const note = retry.parentElement?.querySelector('.retry-status');
    retry.disabled = true;
    fetch(`${base}/api/partitions/${partition}/retry`, {
      method: 'POST',
      headers: { accept: 'application/json' },
    })
      .then((res) =>
        res.json().then((body) => {
          if (!res.ok) throw new Error(body.error?.message || `HTTP ${res.status}`);
          return body;
        }),
      )
      .then((body) => {
        if (note) note.textContent = `Retrying partition ${partition} (run ${body.runId})…`;
        setTimeout(refresh, 1000);
      })
      .catch((err) => {
        if (note) note.textContent = `Retry failed: ${err.message}`;
        retry.disabled = false;
      });
  });

  setInterval(() => {
    if (refreshError) showRefreshState();
  }, 1000);

  // Pause and Resume: same-origin POSTs with the page's own Basic credentials.
  const pauseStatus = document.getElementById('pause-status');
  function control(path, body) {
    if (pauseStatus) pauseStatus.textContent = '…';
    fetch(`${base}${path}`, {
      method: 'POST',
      headers: { accept: 'application/json', 'content-type': 'application/json' },
      body: JSON.stringify(body || {}),
    })
      .then((res) =>
        res.json().then((b) => {
          if (!res.ok) throw new Error(b.error?.message || `HTTP ${res.status}`);
          return b;
        }),
      )
      .then((b) => {
        if (pauseStatus)
          pauseStatus.textContent = b.paused
            ? `Paused${b.paused.until ? ` until ${new Date(b.paused.until).toLocaleString()}` : ' until resumed'}`
            : b.resumed
              ? 'Resumed'
              : 'It was not paused';
        refresh();
      })
      .catch((err) => {
        if (pauseStatus) pauseStatus.textContent = `Failed: ${err.message}`;
      });
  }
  const pauseButton = document.getElementById('pause');
  const resumeButton = document.getElementById('resume');
  if (pauseButton)
    pauseButton.addEventListener('click', () => {
      const forSelect = /** @type {HTMLSelectElement} */ (document.getElementById('pause-for'));
      const reason = /** @type {HTMLInputElement} */ (document.getElementById('pause-reason'));
      control('/api/pause', {
        for: forSelect ? forSelect.value : '',
        reason: reason?.value ? reason.value : undefined,
      });
    });
  if (resumeButton)
    resumeButton.addEventListener('click', () => {
      control('/api/resume');
    });

  // The dry run: what a sweep would time out now, per partition; nothing is written.
  const dryRunButton = document.getElementById('dry-run');
  const dryRunStatus = document.getElementById('dry-run-status');
  if (dryRunButton && dryRunStatus)
    dryRunButton.addEventListener('click', () => {
      dryRunStatus.textContent = 'Counting…';
      fetch(`${base}/api/dry-run`, { cache: 'no-store' })
        .then((res) =>
          res.json().then((body) => {
            if (!res.ok) throw new Error(body?.error?.message || `HTTP ${res.status}`);
            return body;
          }),
        )
        .then((r) => {
          const busiest = r.byPartition
            .filter((p) => p.wouldFinalize > 0)
            .sort((a, b) => b.wouldFinalize - a.wouldFinalize)
            .slice(0, 5)
            .map((p) => `partition ${p.partition}: ${fmt(p.wouldFinalize)}`);
          dryRunStatus.textContent =
            `Dry run: a sweep now would time out ${fmt(r.wouldFinalize)} entries` +
            (r.oldestStarted ? `, the oldest started ${r.oldestStarted}` : '') +
            (busiest.length ? ` (${busiest.join(', ')})` : '') +
            '. Nothing was written.';
        })
        .catch((err) => {
          dryRunStatus.textContent = `Dry run failed: ${err.message}`;
        });
    });

  const pending = button ? sessionStorage.getItem(KEY) : null;
  if (pending) poll(pending);
  setInterval(refresh, 5000);
})();
