// latch's dashboard: reads the state from /api/v1/stream (server-sent
// events, read with fetch so that the token can go in a header) and calls
// the admin API for drains and weights. Everything shown is set as text,
// never as HTML: a target's description cannot inject markup.
'use strict';

const STREAM = '/api/v1/stream';
const HISTORY_SECONDS = 300;
const COLORS = ['#0969da', '#cf222e', '#1a7f37', '#9a6700', '#8250df', '#bf3989', '#1b7c83', '#6e7781'];

const $ = (sel) => document.querySelector(sel);
const rateHistory = new Map(); // "group\0target" -> [[unix seconds, rate], ...]
const rows = new Map();    // "group\0target" -> the row's cells and controls
const groupEls = new Map(); // group name -> its section
let last = null;

// The token lives in sessionStorage: it goes with the tab, is never sent
// on its own (no cookie), and only in the Authorization header of calls
// this page makes.
function token() { return sessionStorage.getItem('latch-token') || ''; }

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function notice(text, kind) {
  const n = $('#notice');
  n.textContent = text;
  n.className = kind || '';
}

function fmt(v, digits) {
  return v === null || v === undefined ? '–' : v.toFixed(digits);
}

function ago(iso) {
  if (!iso) return '';
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 90) return Math.round(s) + ' s ago';
  if (s < 5400) return Math.round(s / 60) + ' min ago';
  return Math.round(s / 3600) + ' h ago';
}

function until(iso) {
  if (!iso) return '';
  const s = (Date.parse(iso) - Date.now()) / 1000;
  return s <= 0 ? 'passed' : 'in ' + Math.round(s) + ' s';
}

// ---- the stream ----

let current = null; // the stream being read, to abort when the token changes

async function connect() {
  if (current) current.abort();
  const ctrl = new AbortController();
  current = ctrl;
  const headers = { Accept: 'text/event-stream' };
  if (token()) headers.Authorization = 'Bearer ' + token();
  try {
    const resp = await fetch(STREAM, { headers, cache: 'no-store', credentials: 'omit', signal: ctrl.signal });
    if (!resp.ok) {
      setConn(false, 'refused: ' + (await errorOf(resp)));
      return retry(5000);
    }
    setConn(true, 'live');
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const data = event.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
        if (data) onState(JSON.parse(data));
      }
    }
    setConn(false, 'ended');
  } catch (e) {
    if (ctrl.signal.aborted) return; // a newer stream took over
    setConn(false, 'disconnected');
  }
  retry(2000);
}

let retrying = null;
function retry(ms) {
  clearTimeout(retrying);
  retrying = setTimeout(connect, ms);
}

function setConn(up, text) {
  const c = $('#conn');
  c.className = 'conn ' + (up ? 'up' : 'down');
  c.textContent = text;
}

async function errorOf(resp) {
  try {
    const body = await resp.json();
    if (body && body.error) return body.error;
  } catch (e) { /* not JSON */ }
  return resp.status + ' ' + resp.statusText;
}

// ---- rendering ----

function onState(m) {
  last = m;
  $('#updated').textContent = 'state ' + m.version + ', ' + new Date(m.time).toLocaleTimeString();
  renderListeners(m.listeners);
  renderCluster(m.cluster);
  const now = Date.parse(m.time) / 1000;
  const live = new Set();
  for (const g of m.groups) {
    const sec = groupSection(g);
    const tbody = sec.querySelector('tbody');
    g.targets.forEach((t, i) => {
      const k = g.name + '\0' + t.id;
      live.add(k);
      let r = rows.get(k);
      if (!r) {
        r = newRow(g.name, t.id);
        rows.set(k, r);
      }
      if (tbody.children[i] !== r.tr) tbody.insertBefore(r.tr, tbody.children[i] || null);
      fillRow(r, t, m.metrics);
      if (m.cause === 'tick' && m.metrics) {
        const h = rateHistory.get(k) || [];
        h.push([now, t.rate || 0]);
        while (h.length && h[0][0] < now - HISTORY_SECONDS) h.shift();
        rateHistory.set(k, h);
      }
    });
    drawChart(sec, g, now);
  }
  for (const [k, r] of rows) {
    if (!live.has(k)) { r.tr.remove(); rows.delete(k); rateHistory.delete(k); }
  }
  const names = new Set(m.groups.map((g) => g.name));
  for (const [name, sec] of groupEls) {
    if (!names.has(name)) { sec.remove(); groupEls.delete(name); }
  }
}

// renderCluster shows cluster mode's line: this node among the others,
// etcd's state (while it is away, writes are refused), and the targets
// whose health the nodes see otherwise.
function renderCluster(c) {
  const el = $('#cluster');
  if (!c) { el.hidden = true; return; }
  el.hidden = false;
  let text = 'Cluster: node ' + c.node + ' of ' + c.nodes.length + ' (' + c.nodes.join(', ') + '), state revision ' + c.revision + '. ';
  if (c.etcd_up) {
    text += 'etcd answers.';
    el.className = '';
  } else {
    text += 'etcd cannot be reached' + (c.etcd_down_since ? ' since ' + new Date(c.etcd_down_since).toLocaleTimeString() : '') +
      ': this node serves the state it last applied, and refuses changes until etcd returns.';
    el.className = 'away';
  }
  const dis = [];
  for (const [g, ts] of Object.entries(c.disagree || {})) {
    for (const [id, byNode] of Object.entries(ts)) {
      dis.push(g + '/' + id + ' (' + Object.entries(byNode).map(([n, s]) => n + ': ' + s).join(', ') + ')');
    }
  }
  if (dis.length) text += ' The nodes disagree on ' + dis.join('; ') + '.';
  el.textContent = text;
}

function renderListeners(ls) {
  const tbody = $('#listeners tbody');
  tbody.replaceChildren(...ls.map((l) => el('tr', {},
    el('td', {}, l.name), el('td', { class: 'id' }, l.addr), el('td', {}, l.protocol || ''),
    el('td', {}, l.default || ''), el('td', { class: 'num' }, String(l.rules)))));
}

function groupSection(g) {
  let sec = groupEls.get(g.name);
  if (!sec) {
    const head = el('tr', {}, ...['Target', 'Health', 'Weight', 'Effective', 'In flight', 'Req/s', 'Errors/s',
      'p50 ms', 'p99 ms', 'Sessions', 'Drain', 'Controls'].map((h) => el('th', {}, h)));
    sec = el('section', { class: 'group', 'data-group': g.name },
      el('h2', {}, 'Target group ' + g.name, el('small', {})),
      el('table', { class: 'targets' }, el('thead', {}, head), el('tbody', {})),
      svg('svg', { class: 'chart', role: 'img' }),
      el('div', { class: 'legend' }));
    sec.querySelector('svg').setAttribute('aria-label', 'requests a second per target, last 5 minutes');
    $('#groups').append(sec);
    groupEls.set(g.name, sec);
  }
  const info = [g.algorithm, g.stickiness ? 'sticky: ' + g.stickiness : 'not sticky'].filter(Boolean).join(', ');
  sec.querySelector('h2 small').textContent = info;
  return sec;
}

function newRow(group, id) {
  const c = {};
  const td = (name, cls) => (c[name] = el('td', cls ? { class: cls } : {}));
  const tr = el('tr', { 'data-target': id },
    td('id', 'id'), td('health'), td('weight', 'num'), td('eff', 'num'), td('inflight', 'num'),
    td('rate', 'num'), td('errors', 'num'), td('p50', 'num'), td('p99', 'num'), td('sessions', 'num'),
    td('drain', 'drain-col'), td('controls', 'controls'));
  c.id.textContent = id;
  c.state = el('span', { class: 'state' });
  c.reason = el('span', { class: 'reason' });
  c.health.append(c.state, c.reason);

  const weight = el('input', { type: 'number', min: '1', max: '1000', class: 'weight', 'aria-label': 'weight of ' + id });
  const setWeight = el('button', { type: 'button', class: 'set-weight' }, 'Set');
  const mode = el('select', { class: 'mode', 'aria-label': 'drain mode' },
    el('option', { value: 'keep_sessions' }, 'keep sessions'), el('option', { value: 'immediate' }, 'immediate'));
  const idle = el('input', { type: 'text', class: 'idle', placeholder: 'idle 60s', title: 'keep sessions: complete once no session came for this long', 'aria-label': 'idle window' });
  const deadline = el('input', { type: 'text', class: 'deadline', placeholder: 'deadline', title: 'keep sessions: the sessions left move at this time from now (e.g. 10m); empty: none', 'aria-label': 'deadline' });
  const drain = el('button', { type: 'button', class: 'drain-btn' }, 'Drain');
  const undrain = el('button', { type: 'button', class: 'undrain-btn' }, 'Undrain');
  c.controls.append(el('span', { class: 'ctl' }, weight, setWeight), el('span', { class: 'ctl' }, mode, idle, deadline, drain, undrain));
  c.buttons = [setWeight, drain, undrain];
  c.weightInput = weight;

  const path = '/api/v1/target-groups/' + encodeURIComponent(group) + '/targets/' + encodeURIComponent(id);
  setWeight.addEventListener('click', () => {
    const w = Number(weight.value);
    if (!Number.isInteger(w) || w < 1 || w > 1000) return notice('weight of ' + id + ': a whole number from 1 to 1000', 'error');
    write('PUT', path + '/weight', { weight: w }, 'weight of ' + id + ' set to ' + w);
  });
  drain.addEventListener('click', () => {
    const body = { mode: mode.value };
    if (mode.value === 'keep_sessions' && idle.value.trim()) body.idle = idle.value.trim();
    if (mode.value === 'keep_sessions' && deadline.value.trim()) body.deadline = deadline.value.trim();
    write('POST', path + '/drain', body, id + ': drain started (' + mode.value + ')');
  });
  undrain.addEventListener('click', () => write('DELETE', path + '/drain', null, id + ' undrained'));
  return { tr, ...c };
}

function fillRow(r, t, metrics) {
  r.state.textContent = t.state;
  r.state.className = 'state ' + t.state;
  r.reason.textContent = t.reason || '';
  r.health.title = t.description || t.reason || t.state;
  r.tr.dataset.state = t.state;
  r.tr.dataset.reason = t.reason || '';
  r.weight.textContent = String(t.weight);
  if (document.activeElement !== r.weightInput && !r.weightInput.value) r.weightInput.placeholder = String(t.weight);
  r.eff.textContent = String(t.effective_weight);
  r.eff.title = 'the weight new requests follow now (lower during slow start or anomaly mitigation)';
  r.inflight.textContent = String(t.inflight);
  r.rate.textContent = metrics ? fmt(t.rate, 1) : '–';
  r.errors.textContent = metrics ? fmt(t.error_rate, 1) : '–';
  r.p50.textContent = fmt(t.p50_ms, 1);
  r.p99.textContent = fmt(t.p99_ms, 1);
  r.sessions.textContent = String(t.sessions);
  r.sessions.title = t.last_session ? 'last sticky request ' + ago(t.last_session) : 'no sticky request yet';
  fillDrain(r, t);
  const hasToken = token() !== '';
  for (const b of r.buttons) {
    b.disabled = !hasToken;
    b.title = hasToken ? '' : 'enter the admin token first';
  }
}

function fillDrain(r, t) {
  const d = t.drain;
  r.drain.replaceChildren();
  r.tr.dataset.drain = d ? (d.complete ? 'complete' : 'draining') : '';
  if (!d) return;
  const parts = [d.mode.replace('_', ' ')];
  if (d.complete) {
    parts.push('complete' + (d.completed_at ? ' ' + ago(d.completed_at) : ''));
  } else {
    if (d.mode === 'keep_sessions') parts.push(d.sessions_left + ' sessions left', 'idle ' + d.idle_seconds + ' s');
    if (d.deadline) parts.push('deadline ' + until(d.deadline));
  }
  if (d.last_seen) parts.push('last seen ' + ago(d.last_seen));
  r.drain.append(el('span', { class: 'drain' + (d.complete ? ' complete' : '') }, parts.join(', ')));
  r.drain.title = 'draining since ' + new Date(d.since).toLocaleTimeString();
}

// drawChart draws each target's requests a second over the last five
// minutes, one line per target, so that load piling onto one shows.
function drawChart(sec, g, now) {
  const chart = sec.querySelector('svg');
  // Drawn at the size it shows, so that the text is not stretched.
  const W = Math.max(300, chart.clientWidth || 800), H = 180, L = 40, B = 18, T = 8;
  chart.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  let top = 1;
  for (const t of g.targets) {
    for (const [, v] of rateHistory.get(g.name + '\0' + t.id) || []) top = Math.max(top, v);
  }
  top = niceCeil(top);
  const x = (s) => L + (W - L - 4) * (1 - (now - s) / HISTORY_SECONDS);
  const y = (v) => T + (H - T - B) * (1 - v / top);
  const parts = [];
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    parts.push(svg('line', { class: 'grid', x1: L, x2: W, y1: y(v), y2: y(v) }));
    const label = svg('text', { class: 'axis', x: L - 4, y: y(v) + 4, 'text-anchor': 'end' });
    label.textContent = v >= 10 ? v.toFixed(0) : v.toFixed(1);
    parts.push(label);
  }
  for (const m of [5, 4, 3, 2, 1, 0]) {
    const anchor = m === 5 ? 'start' : m === 0 ? 'end' : 'middle';
    const label = svg('text', { class: 'axis', x: x(now - m * 60), y: H - 4, 'text-anchor': anchor });
    label.textContent = m === 0 ? 'now' : '-' + m + ' min';
    parts.push(label);
  }
  const legend = [];
  g.targets.forEach((t, i) => {
    const color = COLORS[i % COLORS.length];
    const h = rateHistory.get(g.name + '\0' + t.id) || [];
    if (h.length > 1) {
      parts.push(svg('polyline', { stroke: color, points: h.map(([s, v]) => x(s).toFixed(1) + ',' + y(v).toFixed(1)).join(' ') }));
    }
    const swatch = el('i', {});
    swatch.style.background = color;
    legend.push(el('span', {}, swatch, t.id));
  });
  chart.replaceChildren(...parts);
  sec.querySelector('.legend').replaceChildren(...legend);
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// ---- writes ----

async function write(method, path, body, done) {
  const t = token();
  if (!t) return notice('enter the admin token first', 'error');
  const init = { method, cache: 'no-store', credentials: 'omit', headers: { Authorization: 'Bearer ' + t } };
  if (body) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  try {
    const resp = await fetch(path, init);
    if (!resp.ok) return notice(method + ' ' + path + ': ' + (await errorOf(resp)), 'error');
    notice(done, 'ok');
  } catch (e) {
    notice(method + ' ' + path + ': ' + e.message, 'error');
  }
}

// ---- the token ----

function tokenChanged() {
  if (last) onState(last);
  retry(0); // the stream again, with the token (reads may need it)
}

$('#token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const v = $('#token').value.trim();
  if (!v) return notice('the token field is empty', 'error');
  sessionStorage.setItem('latch-token', v);
  $('#token').value = '';
  $('#token').placeholder = 'token set for this tab';
  notice('token set for this tab', 'ok');
  tokenChanged();
});
$('#token-forget').addEventListener('click', () => {
  sessionStorage.removeItem('latch-token');
  $('#token').placeholder = 'needed to drain or set a weight';
  notice('token forgotten', 'ok');
  tokenChanged();
});
if (token()) $('#token').placeholder = 'token set for this tab';

connect();
