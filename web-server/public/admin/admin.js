// The /admin dashboard: log in (the web server keeps the master's token in
// an HttpOnly cookie; this script never sees it), then poll
// /admin/api/cluster every POLL_MS and draw the servers, rooms and three
// small live charts (uPlot, served from /vendor/, no CDN). Actions are JSON
// POSTs to /admin/api/action, run by the master and recorded in its log
// with the logged-in user.

import uPlot from '../vendor/uplot/uPlot.esm.js';

const POLL_MS = 2000;
// Points kept per chart series (2 minutes at POLL_MS).
const HISTORY = 60;
const COLORS = ['#2f6fde', '#1f8a4c', '#c73a3a', '#b07a00', '#7a3fc7', '#0f8a8a', '#d0508a', '#555'];

const $ = (id) => document.getElementById(id);
let timer = null;
// Chart state: the server ids of the current charts and their data.
let charts = null;

async function api(path, body) {
  const init = body === undefined
    ? { credentials: 'same-origin' }
    : {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      };
  const resp = await fetch(`/admin/api/${path}`, init);
  let data = {};
  try { data = await resp.json(); } catch { /* empty answer */ }
  if (resp.status === 401) {
    showLogin(data.error || 'Log in again.');
    throw new Error('not logged in');
  }
  if (!resp.ok) throw new Error(data.error || `${resp.status} ${resp.statusText}`);
  return data;
}

function showLogin(problem) {
  clearTimeout(timer);
  $('dashboard').hidden = true;
  $('login').hidden = false;
  const err = $('login-error');
  err.hidden = !problem;
  err.textContent = problem || '';
}

async function onLogin(event) {
  event.preventDefault();
  const user = $('user').value.trim();
  const password = $('password').value;
  try {
    await api('login', { user, password });
  } catch (e) {
    if (e.message !== 'not logged in') showLogin(e.message);
    return;
  }
  $('password').value = '';
  $('login').hidden = true;
  $('dashboard').hidden = false;
  poll();
}

const fmt = {
  uptime(s) {
    if (!s) return '–';
    if (s < 120) return `${s}s`;
    if (s < 7200) return `${Math.floor(s / 60)}m`;
    return `${Math.floor(s / 3600)}h`;
  },
  rate: (v) => (v == null ? '–' : v < 10 ? v.toFixed(1) : Math.round(v).toString()),
  count: (v) => (v == null ? '–' : Math.round(v).toString()),
  ms: (v) => (v == null ? '–' : `${v < 1 ? v.toFixed(2) : Math.round(v)} ms`),
  mib: (b) => (b ? `${(b / 1048576).toFixed(1)} MiB` : '–'),
  cpu: (p) => `${(p || 0).toFixed(1)}%`,
};

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function button(text, className, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.className = className;
  b.addEventListener('click', onClick);
  return b;
}

function renderServers(servers) {
  const rows = [...servers].sort((a, b) =>
    a.host.localeCompare(b.host) || a.type.localeCompare(b.type) || a.id.localeCompare(b.id));
  const body = $('servers');
  body.replaceChildren(...rows.map((s) => {
    const tr = document.createElement('tr');
    tr.dataset.testid = `server-${s.id}`;
    tr.append(
      cell(s.host), cell(s.type), cell(s.id), cell(s.state, `state-${s.state}`),
      cell(fmt.uptime(s.uptimeSecs)), cell(String(s.restarts)), cell(String(s.connections)),
      cell(fmt.rate(s.requestsPerSec)), cell(fmt.rate(s.pushesPerSec)), cell(fmt.ms(s.p99Ms)),
      cell(fmt.count(s.requestsTotal)), cell(fmt.count(s.pushesTotal)),
      cell(fmt.cpu(s.cpuPercent)), cell(fmt.mib(s.rssBytes)),
    );
    tr.cells[10].dataset.testid = 'requests-total';
    tr.cells[11].dataset.testid = 'pushes-total';
    const actions = cell('');
    if (s.type === 'connector') {
      actions.append(button('drain', 'small danger', () => act('drain', {}, [s.id])));
    }
    tr.append(actions);
    return tr;
  }));
}

function renderRooms(rooms) {
  const body = $('rooms');
  if (!rooms.length) {
    const tr = document.createElement('tr');
    tr.append(cell('no room'));
    body.replaceChildren(tr);
    return;
  }
  body.replaceChildren(...rooms.map((r) => {
    const tr = document.createElement('tr');
    tr.dataset.testid = `room-${r.room}`;
    tr.append(cell(r.server), cell(r.room), cell(String(r.members)));
    const close = cell('');
    close.append(button('close', 'small danger', () => {
      const reason = window.prompt(`Close room ${r.room}: the reason its members are told`,
        'closed by an administrator');
      if (reason !== null) act('close-room', { room: r.room, reason });
    }));
    tr.append(close);
    return tr;
  }));
}

// Three charts, one series per server; rebuilt when the servers change.
function chartFor(el, ids) {
  const width = Math.min(420, Math.max(260, (window.innerWidth - 80) / 3));
  return new uPlot({
    width,
    height: 140,
    legend: { show: true, live: false },
    scales: { x: { time: true } },
    axes: [{ size: 24 }, { size: 40 }],
    series: [{}, ...ids.map((id, i) => ({
      label: id, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true,
    }))],
  }, [[], ...ids.map(() => [])], el);
}

function updateCharts(servers) {
  const ids = servers.map((s) => s.id).sort();
  const key = ids.join(',');
  if (!charts || charts.key !== key) {
    for (const c of charts ? charts.plots : []) c.plot.destroy();
    charts = {
      key,
      ids,
      plots: [
        { plot: chartFor($('chart-requests'), ids), field: 'requestsPerSec', data: null },
        { plot: chartFor($('chart-pushes'), ids), field: 'pushesPerSec', data: null },
        { plot: chartFor($('chart-connections'), ids), field: 'connections', data: null },
      ],
    };
    for (const c of charts.plots) c.data = [[], ...ids.map(() => [])];
  }
  const now = Date.now() / 1000;
  const byId = new Map(servers.map((s) => [s.id, s]));
  for (const c of charts.plots) {
    c.data[0].push(now);
    charts.ids.forEach((id, i) => c.data[i + 1].push(byId.get(id)[c.field] ?? null));
    if (c.data[0].length > HISTORY) for (const series of c.data) series.shift();
    c.plot.setData(c.data);
  }
}

async function poll() {
  clearTimeout(timer);
  try {
    const data = await api('cluster');
    const m = data.master;
    $('master').textContent = `${m.id} · env ${m.env} · up ${fmt.uptime(m.uptimeSecs)} · ${data.servers.length} servers`;
    renderServers(data.servers);
    renderRooms(data.rooms);
    updateCharts(data.servers);
    const problems = $('problems');
    problems.hidden = !data.errors.length;
    problems.textContent = data.errors.join('\n');
  } catch (e) {
    if (e.message === 'not logged in') return;
    const problems = $('problems');
    problems.hidden = false;
    problems.textContent = e.message;
  }
  timer = setTimeout(poll, POLL_MS);
}

async function act(action, args, ids = []) {
  const out = $('action-result');
  out.textContent = `${action}…`;
  try {
    const r = await api('action', { action, args, ids });
    const done = r.done.map((d) => `${d.id} ${JSON.stringify(d.result)}`).join(', ');
    out.textContent = `${action}: ${done || 'nothing it applies to'}`
      + (r.errors.length ? `\nerrors: ${r.errors.join('; ')}` : '');
  } catch (e) {
    if (e.message !== 'not logged in') out.textContent = `${action} failed: ${e.message}`;
  }
  poll();
}

function start() {
  $('login-form').addEventListener('submit', onLogin);
  $('logout').addEventListener('click', async () => {
    await api('logout', {}).catch(() => {});
    showLogin();
  });
  $('broadcast-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const message = $('broadcast-message').value.trim();
    const room = $('broadcast-room').value.trim();
    if (message) act('broadcast', room ? { message, room } : { message });
  });
  $('kick-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const uid = $('kick-uid').value.trim();
    if (uid) act('kick', { uid });
  });
  // Already logged in (the cookie is still valid): straight to the data.
  api('cluster').then(() => {
    $('login').hidden = true;
    $('dashboard').hidden = false;
    poll();
  }).catch(() => showLogin());
}

start();
