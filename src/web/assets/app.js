// queuectl dashboard: live updates. The pages work without this script;
// it only refreshes what they show. Every 3 s (paused while the tab is
// hidden) it fetches the page's JSON endpoint (<body data-poll>) and writes
// the new values as text (textContent, never HTML). After each successful
// poll, <body data-updated> is the poll's ISO time (tests wait on it).
//
// Hooks, written by the server's renderers (src/web/pages):
//   [data-live="field"]  text from the JSON field (a dotted path), formatted
//                        by data-live-format (see `formats`);
//   table[data-live-list="key"][data-live-key="field"][data-live-row="attr"]:
//                        each row tr[data-<attr>] is refreshed from the item
//                        of JSON array `key` whose `field` matches; a row
//                        whose item is gone is marked data-gone;
//   the overview (data-page="overview") is refreshed from /api/overview and
//   /api/workers: totals, queue rows, lag, the hour's stats and chart.
'use strict';

// A button with data-confirm="question" posts only once the question is
// answered yes (the Content Security Policy forbids inline handlers; without
// this script the button posts at once). A form submitted by Enter clicks
// its button, so the question is asked then too.
document.addEventListener('click', (event) => {
  const button = event.target instanceof Element ? event.target.closest('button[data-confirm]') : null;
  if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
});

(function () {
  const PERIOD_MS = 3000;
  const NONE = '\u2014';
  const body = document.body;
  const source = body.dataset.poll;
  if (!source) return;

  // ---- formats: the same text the server renders (src/web/pages/parts.rs) ----

  function pad(n) {
    return String(n).padStart(2, '0');
  }

  // A duration in its two largest units: "45s", "1m12s", "2h03m", "3d04h".
  function elapsed(totalSeconds) {
    const s = Math.max(0, Math.trunc(totalSeconds));
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm' + pad(s % 60) + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h' + pad(Math.floor((s % 3600) / 60)) + 'm';
    return Math.floor(s / 86400) + 'd' + pad(Math.floor((s % 86400) / 3600)) + 'h';
  }

  // Milliseconds under a second, else `elapsed`.
  function took(ms) {
    if (Math.abs(ms) < 1000) return Math.max(0, Math.trunc(ms)) + 'ms';
    return elapsed(ms / 1000);
  }

  // "2026-01-15 13:05:10 UTC": to the second, in UTC.
  function at(iso) {
    const ms = Date.parse(iso);
    if (Number.isNaN(ms)) return String(iso);
    const text = new Date(Math.round(ms / 1000) * 1000).toISOString();
    return text.slice(0, 10) + ' ' + text.slice(11, 19) + ' UTC';
  }

  const formats = {
    text: (v) => (v === null || v === undefined ? NONE : String(v)),
    state: (v, el) => {
      if (v !== null && v !== undefined) el.dataset.state = String(v);
      return formats.text(v);
    },
    time: (v, el) => {
      if (v === null || v === undefined) {
        el.removeAttribute('datetime');
        return NONE;
      }
      el.setAttribute('datetime', String(v));
      return at(v);
    },
    ms: (v) => (typeof v === 'number' ? took(v) : NONE),
    seconds: (v) => (typeof v === 'number' ? elapsed(v) : NONE),
    ago: (v) => (typeof v === 'number' ? elapsed(v) + ' ago' : NONE),
    // A worker's liveness (live, silent, dead), coloured by its attribute.
    liveness: (v, el) => {
      if (v !== null && v !== undefined) el.dataset.liveness = String(v);
      return formats.text(v);
    },
    yesno: (v) => (v ? 'yes' : 'no'),
    // An attempt's outcome; none yet: running.
    outcome: (v, el) => {
      const text = v === null || v === undefined ? 'running' : String(v);
      el.dataset.outcome = text;
      return text;
    },
    // The first line in the cell, all of it in its title.
    firstline: (v, el) => {
      if (v === null || v === undefined || v === '') {
        el.removeAttribute('title');
        return '';
      }
      el.title = String(v);
      return String(v).split(/\r?\n/)[0];
    },
  };

  function field(item, path) {
    return path.split('.').reduce((v, key) => (v === null || v === undefined ? v : v[key]), item);
  }

  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  function fill(el, value) {
    const format = formats[el.dataset.liveFormat] || formats.text;
    setText(el, format(value, el));
  }

  // ---- pages whose JSON mirrors their tables and fields ----

  function updateFields(root) {
    for (const el of document.querySelectorAll('main [data-live]')) {
      if (el.closest('table[data-live-list]')) continue;
      const value = field(root, el.dataset.live);
      if (value !== undefined) fill(el, value);
    }
    // A job's action forms: hidden once its state is none they apply to.
    if (root && typeof root.state === 'string') {
      for (const form of document.querySelectorAll('main > .actions form[data-states]')) {
        form.hidden = !form.dataset.states.split(' ').includes(root.state);
      }
    }
  }

  function updateLists(root) {
    for (const table of document.querySelectorAll('table[data-live-list]')) {
      const list = Array.isArray(root) ? root : field(root, table.dataset.liveList);
      if (!Array.isArray(list) || !table.tBodies[0]) continue;
      const key = table.dataset.liveKey;
      const attr = 'data-' + table.dataset.liveRow;
      const items = new Map(list.map((item) => [String(field(item, key)), item]));
      for (const row of table.tBodies[0].rows) {
        const item = items.get(row.getAttribute(attr));
        if (item === undefined) {
          row.dataset.gone = '';
          continue;
        }
        delete row.dataset.gone;
        items.delete(row.getAttribute(attr));
        for (const el of row.querySelectorAll('[data-live]')) fill(el, field(item, el.dataset.live));
      }
      noteNewRows(table, items.size);
    }
  }

  // Rows the server did not render are not drawn here: a note says how
  // many there are and links to the page again.
  function noteNewRows(table, count) {
    const box = table.closest('.scroll') || table;
    let note = box.nextElementSibling;
    if (!note || !note.hasAttribute('data-live-new')) {
      if (count === 0) return;
      note = document.createElement('p');
      note.className = 'note';
      note.setAttribute('data-live-new', '');
      box.after(note);
    }
    note.replaceChildren();
    if (count === 0) return;
    note.append(count + (count === 1 ? ' new row: ' : ' new rows: '));
    const link = document.createElement('a');
    link.href = location.pathname + location.search;
    link.textContent = 'show them';
    note.append(link);
  }

  // ---- the overview ----

  function niceMax(max) {
    for (let step = 1; ; step *= 10) {
      for (const m of [1, 2, 5]) if (step * m >= max) return step * m;
    }
  }

  function drawChart(svg, hour) {
    const groups = svg.querySelectorAll('g[data-minute]');
    if (groups.length !== hour.length) return;
    const top = Number(svg.dataset.plotTop);
    const base = Number(svg.dataset.plotBase);
    const max = niceMax(Math.max(0, ...hour.map((b) => b.succeeded + b.failed)));
    const height = (n) => ((base - top) * n) / max;
    const coord = (v) => String(Math.round(v * 100) / 100);
    hour.forEach((bucket, i) => {
      const g = groups[i];
      const ok = height(bucket.succeeded);
      const bad = height(bucket.failed);
      const okBar = g.querySelector('[data-series="succeeded"]');
      const badBar = g.querySelector('[data-series="failed"]');
      okBar.setAttribute('y', coord(base - ok));
      okBar.setAttribute('height', coord(ok));
      badBar.setAttribute('y', coord(base - ok - bad));
      badBar.setAttribute('height', coord(bad));
      const title = g.querySelector('title');
      if (title) {
        setText(title, at(bucket.start) + ': ' + bucket.succeeded + ' succeeded, ' + bucket.failed + ' failed');
      }
    });
    const label = svg.querySelector('[data-axis="max"]');
    if (label) setText(label, String(max));
  }

  function rowOf(tbody, attr, value) {
    for (const row of tbody.rows) if (row.getAttribute(attr) === value) return row;
    return null;
  }

  // A queue the page did not list yet: a row like the others.
  function newQueueRow(table, queue) {
    const row = document.createElement('tr');
    row.setAttribute('data-queue', queue);
    const name = document.createElement('th');
    name.scope = 'row';
    const link = document.createElement('a');
    link.href = '/jobs?queue=' + encodeURIComponent(queue);
    link.textContent = queue;
    name.append(link);
    row.append(name);
    for (const th of table.querySelectorAll('thead th[data-col]')) {
      const td = document.createElement('td');
      td.className = 'num';
      td.setAttribute('data-count', th.dataset.col);
      row.append(td);
    }
    const lag = document.createElement('td');
    lag.className = 'num';
    lag.setAttribute('data-lag', queue);
    row.append(lag);
    table.tBodies[0].append(row);
    return row;
  }

  function updateOverview(overview, workers) {
    const totals = {};
    const perQueue = new Map();
    for (const c of overview.counts) {
      totals[c.state] = (totals[c.state] || 0) + c.jobs;
      if (!perQueue.has(c.queue)) perQueue.set(c.queue, {});
      perQueue.get(c.queue)[c.state] = c.jobs;
    }
    for (const el of document.querySelectorAll('.cards [data-count]')) {
      const what = el.dataset.count;
      if (what === 'workers') {
        if (Array.isArray(workers)) setText(el, String(liveOnly(workers).length));
      } else {
        setText(el, String(totals[what] || 0));
      }
    }
    const table = document.querySelector('table[data-table="queues"]');
    if (table && table.tBodies[0]) {
      const tbody = table.tBodies[0];
      for (const queue of perQueue.keys()) {
        if (!rowOf(tbody, 'data-queue', queue)) newQueueRow(table, queue);
      }
      const lag = new Map(overview.lag.map((l) => [l.queue, l.seconds]));
      const paused = new Set(overview.paused || []);
      for (const row of tbody.rows) {
        const queue = row.getAttribute('data-queue');
        const counts = perQueue.get(queue) || {};
        for (const td of row.querySelectorAll('td[data-count]')) {
          setText(td, String(counts[td.dataset.count] || 0));
        }
        const lagCell = row.querySelector('td[data-lag]');
        if (lagCell) setText(lagCell, lagText(lag.get(queue) || 0, paused.has(queue)));
      }
    }
    const hour = overview.last_hour || [];
    const failed = hour.reduce((n, b) => n + b.failed, 0);
    const ended = hour.reduce((n, b) => n + b.succeeded + b.failed, 0);
    const stats = {
      'failure-rate': ended === 0 ? NONE : ((failed * 100) / ended).toFixed(1) + '%',
      ended: String(ended),
      p50: formats.ms(overview.duration_p50_ms),
      p95: formats.ms(overview.duration_p95_ms),
    };
    for (const el of document.querySelectorAll('[data-stat]')) {
      if (el.dataset.stat in stats) setText(el, stats[el.dataset.stat]);
    }
    const svg = document.querySelector('svg[data-chart="last-hour"]');
    if (svg) drawChart(svg, hour);
    if (Array.isArray(workers)) drawLiveWorkers(liveOnly(workers));
  }

  // The workers that still work (a dead or silent one is on /workers).
  function liveOnly(workers) {
    return workers.filter((w) => w.liveness === 'live');
  }

  function jobLink(id) {
    const link = document.createElement('a');
    link.href = '/jobs/' + encodeURIComponent(id);
    link.textContent = id;
    return link;
  }

  // The overview's list of live workers, as the server renders it.
  function drawLiveWorkers(live) {
    const list = document.querySelector('ul[data-list="live-workers"]');
    if (!list) return;
    const items = live.map((w) => {
      const li = document.createElement('li');
      li.setAttribute('data-worker', w.name);
      const name = document.createElement('a');
      name.href = '/workers';
      name.textContent = w.name;
      const jobs = document.createElement('span');
      jobs.className = 'jobs';
      if (w.jobs.length === 0) jobs.append(NONE);
      w.jobs.forEach((id, i) => {
        if (i > 0) jobs.append(' ');
        jobs.append(jobLink(id));
      });
      li.append(name, ' ', jobs);
      return li;
    });
    list.replaceChildren(...items);
    const empty = document.querySelector('[data-empty="live-workers"]');
    if (empty) empty.hidden = live.length > 0;
  }

  // A queue's lag; a paused queue's says so (its lag grows on purpose).
  function lagText(seconds, paused) {
    return (paused ? 'paused ' : '') + elapsed(seconds);
  }

  // ---- polling ----

  async function getJson(url) {
    const response = await fetch(url, {
      headers: { Accept: 'application/json' },
      credentials: 'same-origin',
      cache: 'no-store',
    });
    if (!response.ok) throw new Error('HTTP ' + response.status + ' from ' + url);
    return response.json();
  }

  function workersOf(json) {
    return Array.isArray(json) ? json : json && Array.isArray(json.workers) ? json.workers : null;
  }

  async function poll() {
    const started = new Date();
    if (body.dataset.page === 'overview') {
      const needWorkers = document.querySelector('[data-count="workers"]') !== null;
      const [overview, workers] = await Promise.all([
        getJson(source),
        needWorkers ? getJson('/api/workers') : Promise.resolve(null),
      ]);
      updateOverview(overview, workersOf(workers));
    } else {
      const json = await getJson(source);
      updateFields(json);
      updateLists(json);
    }
    return started;
  }

  function status(text, state) {
    body.dataset.liveState = state;
    const el = document.querySelector('[data-live-status]');
    if (el) setText(el, text);
  }

  let timer = null;
  let polling = false;

  async function tick() {
    timer = null;
    if (document.hidden || polling) return; // resumed by visibilitychange
    polling = true;
    try {
      const started = await poll();
      body.dataset.updated = started.toISOString();
      status('updated ' + at(started.toISOString()), 'ok');
    } catch (error) {
      status('not updated: ' + error.message, 'error');
    } finally {
      polling = false;
    }
    if (!document.hidden && timer === null) timer = setTimeout(tick, PERIOD_MS);
  }

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && timer === null && !polling) tick();
  });

  timer = setTimeout(tick, PERIOD_MS);
})();
