// The dashboard: one self-contained HTML page (vanilla JS, inline SVG charts), served at `/` by the
// API worker. Kept as strings in a TS module so esbuild and wrangler bundle it with no loader config.
// The page polls the API with the token from the URL fragment (#token=…, then sessionStorage) or its
// form; with PUBLIC_READS it needs none. Plotted points carry data-step and data-value (the numbers
// as the API sent them), grouped under <g data-series="…"> in <svg data-chart="…">, for tests.
//
// The script and style are inline, allowed by their hashes in the content-security-policy
// (workers/api/dashboard.ts): no inline event handlers, no style attributes, no eval. Written with
// String.raw and without backticks or "${" so that the text below is the text served.

export const DASHBOARD_STYLE = String.raw`
:root{--fg:#1d2330;--mute:#6b7385;--line:#e3e6ee;--bg:#f6f7fb;--card:#fff;--acc:#2f6fde;--ok:#1d9a5b;--bad:#d2453b;--warn:#c98a12;--tgt:#8e44ad;font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);background:var(--bg)}
body{margin:0}
header{display:flex;gap:16px;align-items:center;padding:10px 18px;background:#1d2330;color:#fff;flex-wrap:wrap}
header h1{font-size:17px;margin:0;font-weight:600}
header form{margin-left:auto;display:flex;gap:6px}
input,button{font:inherit;padding:4px 8px;border-radius:4px;border:1px solid #8790a6}
button{background:var(--acc);color:#fff;border-color:var(--acc);cursor:pointer}
button.ghost{background:transparent;border-color:#8790a6}
#error{display:none;margin:10px 18px 0;padding:8px 12px;border-radius:6px;background:#fdecea;color:#8a1f17;border:1px solid #f3b7b1}
#error.on{display:block}
main{display:grid;grid-template-columns:minmax(300px,380px) 1fr;gap:14px;padding:14px 18px}
@media(max-width:900px){main{grid-template-columns:1fr}}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px;min-width:0;overflow-x:auto}
#runs{font-size:12px}
h2{font-size:13px;text-transform:uppercase;letter-spacing:.04em;color:var(--mute);margin:0 0 8px}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:4px 6px;border-bottom:1px solid var(--line);white-space:nowrap}
th{font-weight:600;color:var(--mute);font-size:12px}
#runs tbody tr{cursor:pointer}
#runs tbody tr:hover{background:#eef2fb}
#runs tbody tr.sel{background:#dfe8fb}
.st{display:inline-block;padding:0 6px;border-radius:9px;font-size:12px;background:#e8eaf0}
.st-training{background:#dcebff;color:#174ea6}.st-completed{background:#daf3e5;color:#145c37}
.st-failed{background:#fde0dd;color:#8a1f17}.st-cancelled{background:#f3ecd9;color:#6e5410}
#head{display:flex;flex-wrap:wrap;gap:6px 22px;align-items:baseline}
#head .k{color:var(--mute);font-size:12px;margin-right:4px}
#head .big{font-size:18px;font-weight:600}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(290px,1fr));gap:14px;margin-top:14px}
.wide{margin-top:14px}
svg{width:100%;height:auto;display:block}
svg text{font-size:10px;fill:var(--mute)}
.ax{stroke:var(--line)}
.s-loss{stroke:var(--bad)}.s-train-accuracy{stroke:var(--acc)}.s-test-accuracy{stroke:var(--ok)}.s-target-accuracy{stroke:var(--tgt)}.s-throughput{stroke:var(--warn)}
circle.s-loss{fill:var(--bad)}circle.s-train-accuracy{fill:var(--acc)}circle.s-test-accuracy{fill:var(--ok)}circle.s-target-accuracy{fill:var(--tgt)}circle.s-throughput{fill:var(--warn)}
polyline{fill:none;stroke-width:1.5}
.legend{font-size:12px;color:var(--mute)}.legend b{font-weight:600}
.l-train{color:var(--acc)}.l-test{color:var(--ok)}.l-target{color:var(--tgt)}
pre{margin:0;font-size:12px;overflow:auto;max-height:420px}
.mute{color:var(--mute)}
.no{color:var(--bad)}
`;

export const DASHBOARD_SCRIPT = String.raw`
'use strict';
(function () {
  var KEY = 'edgetrain-token';
  var POLL_MS = 1500;
  var RECENT = 20;
  var NS = 'http://www.w3.org/2000/svg';
  var FINAL = { completed: 1, failed: 1, cancelled: 1 };
  var $ = function (id) { return document.getElementById(id); };

  // The token: from #token=… (moved to sessionStorage and out of the address bar), or the form. A
  // link opened in an open tab changes only the fragment (no reload): 'hashchange' takes it the same way.
  function tokenFromHash() {
    var m = /(?:^#|&)token=([^&]*)/.exec(location.hash), t = '';
    if (!m) return null;
    try { t = decodeURIComponent(m[1]); } catch (e) { t = m[1]; }
    try { sessionStorage.setItem(KEY, t); } catch (e) { /* storage off: keep it in memory */ }
    history.replaceState(null, '', location.pathname + location.search);
    return t;
  }
  var token = tokenFromHash() || (function () { try { return sessionStorage.getItem(KEY); } catch (e) { return null; } })() || '';

  var S = { runs: [], runId: null, picked: false, status: null, steps: [], evals: [], since: -1, timer: 0, gen: 0, lastRuns: 0, drawn: '' };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svgEl(tag, attrs) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, String(attrs[k]));
    return e;
  }
  function fmt(v, d) { return v === null || v === undefined || !isFinite(v) ? '–' : Number(v).toFixed(d); }
  function pct(v) { return v === null || v === undefined ? '–' : (100 * v).toFixed(2) + ' %'; }
  function dur(s) {
    if (s === null || s === undefined || !isFinite(s)) return '–';
    s = Math.max(0, Math.round(s));
    var h = Math.floor(s / 3600), mi = Math.floor((s % 3600) / 60), se = s % 60;
    return (h ? h + ' h ' : '') + (h || mi ? mi + ' min ' : '') + se + ' s';
  }
  function ago(t) { return dur((Date.now() - t) / 1000) + ' ago'; }
  function when(t) { return new Date(t).toLocaleString(); }

  function showError(msg) { var b = $('error'); b.textContent = msg || ''; b.className = msg ? 'on' : ''; }

  function ApiError(status, msg) { this.status = status; this.message = msg; }
  function api(path) {
    if (/[^!-~]/.test(token)) return Promise.reject(new ApiError(400, 'the token has spaces or characters outside printable ASCII: paste it again'));
    var headers = token ? { authorization: 'Bearer ' + token } : {};
    return fetch(path, { headers: headers, cache: 'no-store' }).then(function (r) {
      return r.text().then(function (text) {
        var body = null;
        try { body = JSON.parse(text); } catch (e) { /* not JSON */ }
        if (!r.ok) throw new ApiError(r.status, (body && body.error) || text.slice(0, 200) || r.statusText);
        return body;
      });
    }, function (e) { throw new ApiError(0, String(e && e.message || e)); });
  }
  function explain(e) {
    if (!(e instanceof ApiError)) return 'Dashboard error: ' + String(e && e.message || e);
    if (e.status === 0) return 'Cannot reach the API (' + e.message + '); retrying.';
    if (e.status === 401) return 'This API needs a token (401): enter the API token or a run\u2019s worker token above, or open the page as /#token=\u2026. ' + e.message;
    if (e.status === 403) return 'The token was refused (403): ' + e.message + '. Enter another token above.';
    return 'The API answered ' + e.status + ': ' + e.message;
  }

  // A worker token (etw.<runId>.<expiry>.<mac>) reads its own run only, not the run list.
  function tokenRun() { var p = token.split('.'); return p.length === 4 && p[0] === 'etw' ? p[1] : null; }

  function loadRuns() {
    var own = tokenRun();
    if (own) return api('/v1/runs/' + encodeURIComponent(own)).then(function (s) {
      return [{ runId: s.runId, state: s.state, createdAt: s.createdAt, preset: s.config.train.model.preset, head: s.config.train.model.head }];
    });
    return api('/v1/runs').then(function (b) { return b.runs; });
  }

  function renderRuns() {
    var tb = $('runs').tBodies[0];
    tb.textContent = '';
    if (!S.runs.length) { var tr0 = el('tr'); tr0.appendChild(el('td', { colspan: '2', class: 'mute' }, 'no runs yet')); tb.appendChild(tr0); }
    S.runs.forEach(function (r) {
      var tr = el('tr', { 'data-run': r.runId });
      if (r.runId === S.runId) tr.className = 'sel';
      var td0 = el('td', null, r.runId);
      td0.appendChild(el('div', { class: 'mute', title: when(r.createdAt) }, r.preset + '/' + r.head + ' · ' + when(r.createdAt)));
      tr.appendChild(td0);
      var td = el('td'); td.appendChild(el('span', { class: 'st st-' + r.state }, r.state)); tr.appendChild(td);
      tr.addEventListener('click', function () { select(r.runId, true); });
      tb.appendChild(tr);
    });
  }

  function select(id, picked, polling) {
    if (picked) S.picked = true;
    if (id === S.runId) return;
    S.runId = id; S.status = null; S.steps = []; S.evals = []; S.since = -1; S.gen++; S.drawn = '';
    renderRuns(); renderRun();
    if (!polling) schedule(0);
  }

  // ---- charts ----
  var MAX_DOTS = 1000;
  var W = 420, H = 190, PAD = { l: 44, r: 10, t: 10, b: 24 };
  function chart(id, series, opts) {
    var svg = $(id);
    svg.textContent = '';
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    var x0 = opts.x0, x1 = x0 + 1, lo = Infinity, hi = -Infinity;
    series.forEach(function (s) { s.points.forEach(function (p) { if (p.x > x1) x1 = p.x; if (p.y < lo) lo = p.y; if (p.y > hi) hi = p.y; }); });
    var pad = isFinite(lo) ? (hi - lo) * 0.06 || Math.abs(hi) * 0.06 || 1 : 0;
    var y0 = opts.y0 !== undefined ? opts.y0 : isFinite(lo) ? lo - pad : 0;
    var y1 = opts.y1 !== undefined ? opts.y1 : isFinite(hi) ? hi + pad : 1;
    if (!(y1 > y0)) y1 = y0 + 1;
    var pw = W - PAD.l - PAD.r, ph = H - PAD.t - PAD.b;
    var sx = function (x) { return PAD.l + ((x - x0) / (x1 - x0)) * pw; };
    var sy = function (y) { return PAD.t + ph - ((y - y0) / (y1 - y0)) * ph; };
    for (var i = 0; i <= 4; i++) {
      var yv = y0 + ((y1 - y0) * i) / 4, yy = sy(yv);
      svg.appendChild(svgEl('line', { x1: PAD.l, x2: W - PAD.r, y1: yy, y2: yy, class: 'ax' }));
      var t = svgEl('text', { x: PAD.l - 4, y: yy + 3, 'text-anchor': 'end' }); t.textContent = opts.pct ? Math.round(yv * 100) + '%' : yv.toPrecision(3); svg.appendChild(t);
    }
    var xt = svgEl('text', { x: W - PAD.r, y: H - 6, 'text-anchor': 'end' }); xt.textContent = 'step ' + x1 + (opts.total ? ' of ' + opts.total : ''); svg.appendChild(xt);
    var xt0 = svgEl('text', { x: PAD.l, y: H - 6 }); xt0.textContent = String(x0); svg.appendChild(xt0);
    series.forEach(function (s) {
      var g = svgEl('g', { 'data-series': s.name });
      if (s.points.length > 1) g.appendChild(svgEl('polyline', { class: 's-' + s.name, points: s.points.map(function (p) { return sx(p.x).toFixed(1) + ',' + sy(p.y).toFixed(1); }).join(' ') }));
      // Every point is in the line; at most ~MAX_DOTS of them (evenly spaced, the last always) get a
      // marker element carrying its exact step and value.
      var every = Math.ceil(s.points.length / MAX_DOTS);
      s.points.forEach(function (p, i) {
        if (i % every && i !== s.points.length - 1) return;
        var c = svgEl('circle', { cx: sx(p.x).toFixed(1), cy: sy(p.y).toFixed(1), r: s.r || 1.6, class: 's-' + s.name, 'data-step': p.x, 'data-value': String(p.y) });
        if (p.epoch !== undefined) c.setAttribute('data-epoch', String(p.epoch));
        var tt = svgEl('title', {}); tt.textContent = s.name + ' @ step ' + p.x + ': ' + p.y; c.appendChild(tt);
        g.appendChild(c);
      });
      svg.appendChild(g);
    });
  }

  function renderCharts() {
    var st = S.status, total = st ? st.totalSteps : 0;
    var key = S.runId + ':' + total + ':' + S.since + ':' + S.evals.length + ':' + (st && st.imagesPerSecond);
    if (key === S.drawn) return;
    S.drawn = key;
    var loss = S.steps.map(function (s) { return { x: s.step, y: s.loss }; });
    var targetEvals = S.evals.filter(function (e) { return typeof e.targetAccuracy === 'number'; });
    chart('chart-loss', [{ name: 'loss', points: loss }], { x0: 0, total: total });
    chart('chart-accuracy', [
      { name: 'train-accuracy', points: S.steps.map(function (s) { return { x: s.step, y: s.accuracy }; }) },
      { name: 'test-accuracy', r: 3.5, points: S.evals.map(function (e) { return { x: e.step, y: e.accuracy, epoch: e.epoch }; }) },
      // Runs with a target domain: its test split, evaluated beside the source's each epoch.
      { name: 'target-accuracy', r: 3.5, points: targetEvals.map(function (e) { return { x: e.step, y: e.targetAccuracy, epoch: e.epoch }; }) },
    ], { x0: 0, total: total, y0: 0, y1: 1, pct: true });
    chart('chart-throughput', [{ name: 'throughput', points: S.steps.filter(function (s) { return s.stepMs > 0; }).map(function (s) { return { x: s.step, y: (s.images * 1000) / s.stepMs }; }) }], { x0: 0, total: total, y0: 0 });
    var last = S.steps[S.steps.length - 1];
    $('loss-now').textContent = last ? fmt(last.loss, 4) + ' at step ' + last.step : '–';
    var ev = S.evals[S.evals.length - 1];
    $('acc-now').textContent = last ? pct(last.accuracy) : '–';
    $('test-now').textContent = ev ? pct(ev.accuracy) + ' (epoch ' + ev.epoch + ')' : '–';
    var tv = targetEvals[targetEvals.length - 1];
    $('target-legend').hidden = !(st && st.config.targetDataset);
    $('target-now').textContent = tv ? pct(tv.targetAccuracy) + ' (epoch ' + tv.epoch + ')' : '–';
    $('tp-now').textContent = st && st.imagesPerSecond !== null ? fmt(st.imagesPerSecond, 1) + ' images/s' : '–';
  }

  function renderRun() {
    var st = S.status;
    $('run-title').textContent = S.runId ? 'Run ' + S.runId : 'No run selected';
    var h = $('head'); h.textContent = '';
    function kv(k, v, big) { var s = el('span'); s.appendChild(el('span', { class: 'k' }, k)); var b = el('span', big ? { class: 'big' } : null, v); s.appendChild(b); h.appendChild(s); return b; }
    if (st) {
      var sb = el('span', { class: 'st st-' + st.state, id: 'state' }, st.state); var s0 = el('span'); s0.appendChild(sb); h.appendChild(s0);
      kv('epoch', Math.min(st.epoch + (FINAL[st.state] ? 0 : 1), st.epochs) + ' / ' + st.epochs, true);
      kv(st.config.cluster.diloco && st.config.cluster.diloco.innerSteps > 0 ? 'round' : 'step', st.step + ' / ' + st.totalSteps, true);
      kv('phase', st.phase);
      kv('ETA', FINAL[st.state] ? '–' : dur(st.etaSeconds));
      kv('images/s', fmt(st.imagesPerSecond, 1)).id = 'ips';
      kv('workers', String(st.activeWorkers));
      kv('loss', fmt(st.loss, 4));
      kv('test acc.', pct(st.testAccuracy));
      if (st.config.targetDataset) kv('target acc.', pct(st.targetAccuracy));
      // DANN: the domain classifier over the last epoch (near ln 2 and 50 % when the features align).
      if (st.config.train.model.dann) kv('domain', 'loss ' + fmt(st.domainLoss, 4) + ' · acc. ' + pct(st.domainAccuracy)).id = 'domain';
      if (st.error) h.appendChild(el('span', { class: 'no' }, st.error));
      $('config').textContent = JSON.stringify(st.config, null, 2);
    } else {
      $('config').textContent = '';
    }
    renderWorkers();
    renderCharts();
  }

  function renderWorkers() {
    var tb = $('workers').tBodies[0];
    tb.textContent = '';
    var recent = new Map();
    S.steps.slice(-RECENT).forEach(function (s) {
      if (s.workers) Object.keys(s.workers).forEach(function (w) { recent.set(w, (recent.get(w) || 0) + s.workers[w]); });
    });
    var list = S.status ? S.status.workers.slice() : [];
    recent.forEach(function (n, w) { if (!list.some(function (x) { return x.worker === w; })) list.push({ worker: w, active: false, accepted: 0, rejected: 0, lastSeen: 0 }); });
    if (!list.length) { var tr0 = el('tr'); tr0.appendChild(el('td', { colspan: '7', class: 'mute' }, 'no workers yet')); tb.appendChild(tr0); }
    list.forEach(function (w) {
      var tr = el('tr', { 'data-worker': w.worker });
      tr.appendChild(el('td', null, w.worker));
      tr.appendChild(el('td', null, w.active ? 'yes' : 'no'));
      tr.appendChild(el('td', { 'data-accepted': String(w.accepted) }, String(w.accepted)));
      tr.appendChild(el('td', null, String(w.rejected)));
      tr.appendChild(el('td', { class: w.excluded ? 'no' : 'mute' }, w.excluded || '–'));
      tr.appendChild(el('td', null, w.lastSeen ? ago(w.lastSeen) : '–'));
      var n = recent.get(w.worker) || 0;
      tr.appendChild(el('td', { 'data-recent': String(n) }, String(n)));
      tb.appendChild(tr);
    });
  }

  // ---- polling ----
  function schedule(ms) { clearTimeout(S.timer); S.timer = setTimeout(poll, ms); }

  function poll() {
    var gen = S.gen, now = Date.now(), again = POLL_MS;
    var runsDue = !S.runId || now - S.lastRuns > 5000;
    var p = runsDue ? loadRuns().then(function (runs) {
      S.lastRuns = now; S.runs = runs;
      if (runs.length && (!S.runId || (!S.picked && runs[0].runId !== S.runId))) { select(runs[0].runId, false, true); gen = S.gen; }
      renderRuns();
    }) : Promise.resolve();
    p.then(function () {
      var id = S.runId;
      if (!id) return;
      return Promise.all([api('/v1/runs/' + encodeURIComponent(id)), api('/v1/runs/' + encodeURIComponent(id) + '/metrics?since=' + S.since)]).then(function (r) {
        if (gen !== S.gen) return;
        var st = r[0], mt = r[1];
        S.status = st;
        mt.steps.forEach(function (s) { if (s.step > S.since) { S.steps.push(s); S.since = s.step; } });
        S.evals = mt.evals;
        if (mt.steps.length >= 10000) again = 0;
        else if (FINAL[st.state]) again = 5000;
        S.runs.forEach(function (x) { if (x.runId === st.runId) x.state = st.state; });
        renderRuns(); renderRun();
      });
    }).then(function () { showError(''); }, function (e) { showError(explain(e)); again = Math.max(again, 3000); })
      .then(function () { schedule(again); });
  }

  /** A new token: the run list and the selection start over with it. */
  function useToken(t) {
    token = t;
    S.lastRuns = 0; S.runId = null; S.picked = false; S.gen++;
    schedule(0);
  }
  $('token-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var t = $('token').value.trim();
    $('token').value = '';
    try { if (t) sessionStorage.setItem(KEY, t); else sessionStorage.removeItem(KEY); } catch (x) { /* memory only */ }
    useToken(t);
  });
  window.addEventListener('hashchange', function () {
    var t = tokenFromHash();
    if (t !== null) useToken(t);
  });
  $('forget').addEventListener('click', function () {
    token = '';
    try { sessionStorage.removeItem(KEY); } catch (x) { /* memory only */ }
    S.lastRuns = 0; schedule(0);
  });
  renderRun();
  poll();
})();
`;

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>edgetrain</title>
<link rel="icon" href="data:,">
<style>${DASHBOARD_STYLE}</style>
</head>
<body>
<header>
<h1>edgetrain</h1><span id="run-title">No run selected</span>
<form id="token-form" autocomplete="off"><input id="token" type="password" placeholder="API or worker token" aria-label="token"><button>Use token</button><button type="button" id="forget" class="ghost">Forget</button></form>
</header>
<div id="error" role="alert"></div>
<main>
<section><h2>Runs</h2><table id="runs"><thead><tr><th>run · model · created</th><th>state</th></tr></thead><tbody></tbody></table></section>
<div>
<section><div id="head"></div></section>
<div class="grid">
<section><h2>Loss</h2><div class="legend">train loss per step: <b id="loss-now">–</b></div><svg id="chart-loss" data-chart="loss" role="img" aria-label="training loss per step"></svg></section>
<section><h2>Accuracy</h2><div class="legend"><span class="l-train">train per step: <b id="acc-now">–</b></span> · <span class="l-test">test per epoch: <b id="test-now">–</b></span><span class="l-target" id="target-legend" hidden> · target per epoch: <b id="target-now">–</b></span></div><svg id="chart-accuracy" data-chart="accuracy" role="img" aria-label="train and test accuracy"></svg></section>
<section><h2>Throughput</h2><div class="legend">now: <b id="tp-now">–</b>; per step: batch / step time</div><svg id="chart-throughput" data-chart="throughput" role="img" aria-label="images per second per step"></svg></section>
</div>
<section class="wide"><h2>Workers</h2><table id="workers"><thead><tr><th>worker</th><th>active</th><th>accepted</th><th>rejected</th><th>excluded</th><th>last seen</th><th title="shards of the last 20 steps counted from this worker">recent shards</th></tr></thead><tbody></tbody></table></section>
<section class="wide"><h2>Config</h2><pre id="config"></pre></section>
</div>
</main>
<script>${DASHBOARD_SCRIPT}</script>
</body>
</html>
`;
