/* models.js - the Models tab of modeld's web page (issue 11 §5).
 *
 * Flow: when the tab is shown (and on Refresh), GET /api/models lists every model of the
 * registry, whatever its family; each gets a card at once, filled in as its details arrive:
 *   - GET /api/models/{name}: the versions with their states (ACTIVE, CANARY, STANDBY, READY,
 *     FAILED...) and per-version requests and p99 latency (stats), the manifest's description
 *     and test metrics; each CANARY / STANDBY / READY version's lineage (a retrained one says
 *     from which dataset and parent) and metrics beside the active's (?version=v);
 *   - predict models only: GET /api/{model}/drift (the worst level and, folded, the features'
 *     PSI / KS) and GET /api/{model}/history?limit=1000, drawn as a history chart: predictions
 *     per time bucket (columns) and their mean score (a line of points), 24 buckets ending now
 *     whose width is the smallest of 1 min .. 1 day that covers the oldest prediction fetched.
 * Actions follow the key's role, which the page learns by asking GET /api/admin/metrics (200:
 * admin): Activate or Canary 10 % on a version that is not serving, Promote and End canary
 * while a canary runs, and Rollback (POST /api/models/{name}/versions/{v}/activate,
 * .../versions/{v}/canary {percent}, .../promote, .../rollback); after one the card is
 * reloaded. Other keys see the state without buttons.
 * Uses app.js's $(), api(), describeError(), mkEl() and showTabMessage(), and charts.js's MdCharts.
 */
'use strict';

(function () {
  const mp = { loaded: false, loading: false, admin: false };
  const fmt = (v, d) => window.MdCharts.fmt(v, d);
  const WIDTHS = [60e3, 5 * 60e3, 15 * 60e3, 60 * 60e3, 6 * 3600e3, 24 * 3600e3];
  const BUCKETS = 24;
  const CANARY_PERCENT = 10; // the share of requests a canary started from this page gets
  /* The prediction field that is the model's "score" in the history chart, by preference. */
  const SCORE_KEYS = ['probability', 'leak_probability', 'score', 'value', 'predicted_total'];

  const el = mkEl; // app.js

  function message(kind, title, detail) {
    showTabMessage('models-messages', kind, title, detail);
  }

  /* The server's own message for a failed read (app.js's describeError speaks of uploads). */
  function serverSays(r) {
    const e = (r.body && r.body.error) || {};
    return e.message || (r.status ? `HTTP ${r.status}` : 'the server cannot be reached');
  }

  function stateBadge(state) {
    const b = el('span', 'state state-' + (state || 'UNKNOWN'), state || 'UNKNOWN');
    b.dataset.state = state || '';
    return b;
  }

  /* ------------------------------------------------------------------ loading ------------- */

  async function load() {
    if (mp.loading) return;
    mp.loading = true;
    message();
    const [list, adm] = await Promise.all([api('/api/models'), api('/api/admin/metrics')]);
    mp.loading = false;
    if (!list.ok) {
      const generic = list.status === 0 || list.status === 401;
      const [t, d] = generic ? describeError(list, 'model list') : ['The model list is unavailable', serverSays(list)];
      message('error', t, d);
      return;
    }
    mp.loaded = true;
    mp.admin = adm.ok;
    $('models-role').textContent = mp.admin ? 'Admin key: actions enabled.'
      : 'Activate, promote and rollback need an admin key.';
    const box = $('models-list');
    box.replaceChildren();
    const models = list.body.models || [];
    models.sort((a, b) => (a.family === 'predict' ? 0 : 1) - (b.family === 'predict' ? 0 : 1) || a.name.localeCompare(b.name));
    for (const m of models) {
      const card = el('article', 'model-card');
      card.dataset.model = m.name;
      box.append(card);
      renderCard(card, m, null);
      fillCard(card, m);
    }
    if (!models.length) box.append(el('p', 'muted', 'The registry has no models.'));
  }

  async function fillCard(card, m) {
    card.dataset.loaded = 'false';
    const r = await api('/api/models/' + encodeURIComponent(m.name));
    const detail = r.ok ? r.body.model : m;
    renderCard(card, detail, r.ok ? null : ['Details unavailable', serverSays(r)]);
    if (r.ok) await renderOthers(card, detail);
    if (((detail.manifest || {}).postprocessing || {}).task && detail.active_version) {
      const [drift, hist] = await Promise.all([
        api('/api/' + encodeURIComponent(m.name) + '/drift'),
        api('/api/' + encodeURIComponent(m.name) + '/history?limit=1000'),
      ]);
      renderDrift(card, drift);
      renderHistory(card, hist);
    }
    card.dataset.loaded = 'true';
  }

  /* ------------------------------------------------------------------ one card ------------ */

  function renderCard(card, m, err) {
    card.replaceChildren();
    const head = el('div', 'model-head');
    head.append(el('h3', '', m.name), el('span', 'badge', m.family), el('span', 'muted', m.runtime || ''),
      el('span', 'spacer'), stateBadge(m.state));
    const drift = el('span', 'drift', '');
    drift.hidden = true;
    head.append(drift);
    card.append(head);
    const man = m.manifest || {};
    if (man.description) card.append(el('div', 'muted small-note', man.description));
    const sub = el('div', 'small-note');
    sub.textContent = `active ${m.active_version || '—'}` +
      (m.canary_version ? ` · canary ${m.canary_version} at ${fmt(m.canary_percent)} %` : '');
    card.append(sub);
    if (err) card.append(el('div', 'msg error', err.join(': ')));
    card.append(versionsTable(m));
    const metrics = man.metrics || {};
    const keys = Object.keys(metrics).filter((k) => typeof metrics[k] === 'number');
    if (keys.length) {
      const box = el('div', 'model-metrics');
      box.append(el('span', 'muted', 'Test metrics:'));
      for (const k of keys.slice(0, 10)) {
        const c = el('span', 'metric-chip', `${k} ${fmt(metrics[k])}`);
        c.dataset.metric = k;
        box.append(c);
      }
      card.append(box);
    }
    if (mp.admin && m.active_version) {
      const acts = el('div', 'model-actions');
      if (m.canary_version) {
        acts.append(actionButton(m, 'Promote canary', 'promote', 'POST', '/promote'));
        acts.append(actionButton(m, 'End canary', 'end-canary', 'POST',
          `/versions/${encodeURIComponent(m.canary_version)}/canary`, { percent: 0 }));
      }
      acts.append(actionButton(m, 'Rollback', 'rollback', 'POST', '/rollback'));
      card.append(acts);
    }
    const drw = el('div', 'drift-wrap');
    const hw = el('div', 'history-wrap');
    card.append(el('div', 'others-wrap'), drw, hw);
  }

  /* The versions that could take over (CANARY, STANDBY, READY: a retrained one is CANARY or
   * STANDBY) against the active one: their lineage (manifest.training: trained_from,
   * parent_version, trained_at) and the test metrics both have, from
   * GET /api/models/{name}?version=v. */
  async function renderOthers(card, m) {
    const act = (m.manifest || {}).metrics || {};
    const vs = (m.versions || []).filter((v) => v.version !== m.active_version &&
      ['CANARY', 'STANDBY', 'READY'].includes(v.state));
    if (!vs.length) return;
    const answers = await Promise.all(vs.map((v) => api('/api/models/' + encodeURIComponent(m.name) +
      '?version=' + encodeURIComponent(v.version))));
    const wrap = card.querySelector('.others-wrap');
    wrap.append(el('div', 'field-label', `Compared with the active version ${m.active_version}`));
    vs.forEach((v, i) => {
      const line = el('div', 'small-note other-version');
      line.dataset.version = v.version;
      line.append(el('b', '', v.version + ' '), stateBadge(v.state));
      const man = answers[i].ok ? answers[i].body.model.manifest || {} : {};
      const t = man.training || {};
      if (t.trained_from) {
        line.append(el('span', 'muted', ` retrained from ${t.trained_from}` + (t.parent_version ? ` (parent ${t.parent_version})` : '') +
          (t.trained_at ? ` at ${t.trained_at}` : '')));
      }
      const met = man.metrics || {};
      const keys = Object.keys(met).filter((k) => typeof met[k] === 'number' && typeof act[k] === 'number' &&
        !/samples|origins|threshold|rate_test/.test(k)).slice(0, 4);
      for (const k of keys) {
        const c = el('span', 'metric-chip', `${k} ${fmt(met[k])} (active ${fmt(act[k])})`);
        c.dataset.metric = k;
        c.dataset.value = String(met[k]);
        line.append(' ', c);
      }
      if (!answers[i].ok) line.append(el('span', 'muted', ' ' + serverSays(answers[i])));
      wrap.append(line);
    });
  }

  function versionsTable(m) {
    const t = el('table', 'data-table versions');
    const head = el('tr');
    for (const h of ['version', 'state', 'requests', 'failures', 'p99', '']) head.append(el('th', '', h));
    t.append(el('thead'));
    t.tHead.append(head);
    const tb = el('tbody');
    const stats = m.stats || {};
    for (const v of m.versions || []) {
      const s = stats[v.version] || {};
      const fails = Object.values(s.failures || {}).reduce((a, b) => a + b, 0);
      const tr = el('tr');
      tr.dataset.version = v.version;
      const st = el('td');
      st.append(stateBadge(v.state));
      if (v.error || v.reason) st.title = v.error || v.reason;
      const lat = s.latency_seconds ? s.latency_seconds.p99 : undefined;
      tr.append(el('td', '', v.version), st, el('td', '', s.requests === undefined ? '—' : String(s.requests)),
        el('td', '', s.requests === undefined ? '—' : String(fails)),
        el('td', '', lat === undefined ? '—' : fmt(lat * 1000) + ' ms'));
      const act = el('td');
      if (mp.admin && v.state !== 'ACTIVE' && v.state !== 'CANARY' && v.state !== 'LOADING' && v.state !== 'VALIDATING') {
        act.append(actionButton(m, 'Activate', 'activate', 'POST', `/versions/${encodeURIComponent(v.version)}/activate`));
        if (!m.canary_version) {
          act.append(' ', actionButton(m, `Canary ${CANARY_PERCENT} %`, 'canary', 'POST',
            `/versions/${encodeURIComponent(v.version)}/canary`, { percent: CANARY_PERCENT }));
        }
      }
      tr.append(act);
      tb.append(tr);
    }
    t.append(tb);
    return t;
  }

  function actionButton(m, label, name, method, tail, json) {
    const b = el('button', 'secondary', label);
    b.type = 'button';
    b.dataset.action = name;
    b.addEventListener('click', async () => {
      b.disabled = true;
      const r = await api('/api/models/' + encodeURIComponent(m.name) + tail, { method, json: json || {} });
      if (!r.ok) {
        message('error', `${m.name}: ${label} refused`, serverSays(r));
        b.disabled = false;
        return;
      }
      message('info', `${m.name}: ${label} done`, '');
      const card = document.querySelector(`.model-card[data-model="${CSS.escape(m.name)}"]`);
      if (card) fillCard(card, m);
    });
    return b;
  }

  /* ------------------------------------------------------------------ drift, history ------ */

  function renderDrift(card, r) {
    const badge = card.querySelector('.drift');
    const wrap = card.querySelector('.drift-wrap');
    if (!r.ok) {
      wrap.append(el('div', 'muted small-note', 'Drift: ' + serverSays(r)));
      return;
    }
    const d = r.body;
    badge.hidden = false;
    badge.className = 'drift drift-' + d.status;
    badge.dataset.level = d.status;
    badge.textContent = 'drift: ' + d.status.replace('_', ' ');
    badge.title = `${d.rows} logged rows compared with the training data`;
    const feats = Object.entries(d.features || {}).sort((a, b) => (b[1].psi || 0) - (a[1].psi || 0));
    if (!feats.length) return;
    const det = el('details', 'drift-detail');
    det.append(el('summary', '', `Drift per feature (${d.rows} rows; PSI < 0.1 none, < 0.25 warn, else alert)`));
    const t = el('table', 'data-table');
    const head = el('tr');
    for (const h of ['feature', 'PSI', 'KS', 'missing', 'level']) head.append(el('th', '', h));
    t.append(head);
    for (const [name, f] of feats) {
      const tr = el('tr');
      const lv = el('td');
      lv.append(el('span', 'drift drift-' + f.level, f.level));
      tr.append(el('td', '', name), el('td', '', fmt(f.psi)), el('td', '', f.ks === null ? '—' : fmt(f.ks)),
        el('td', '', fmt(f.missing)), lv);
      t.append(tr);
    }
    det.append(t);
    wrap.append(det);
  }

  function scoreOf(p) {
    if (!p) return null;
    for (const k of SCORE_KEYS) if (typeof p[k] === 'number') return { key: k, v: p[k] };
    if (Array.isArray(p.forecast) && p.forecast.length) return { key: 'forecast day 1', v: p.forecast[0].forecast };
    return null;
  }

  /* Items (newest first) into BUCKETS buckets ending now. */
  function buckets(items, now) {
    const oldest = Math.min(...items.map((i) => i.time_ms));
    const w = WIDTHS.find((x) => (BUCKETS - 1) * x >= now - oldest) || WIDTHS[WIDTHS.length - 1];
    const end = Math.floor(now / w) * w + w;
    const out = [];
    for (let i = 0; i < BUCKETS; i++) out.push({ t0: end - (BUCKETS - i) * w, t1: end - (BUCKETS - i - 1) * w, count: 0, sum: 0, n: 0 });
    let key = null;
    for (const it of items) {
      const i = Math.floor((it.time_ms - out[0].t0) / w);
      if (i < 0 || i >= BUCKETS) continue;
      out[i].count++;
      const s = scoreOf(((it.outputs || {}).prediction));
      if (s) { out[i].sum += s.v; out[i].n++; key = key || s.key; }
    }
    return { w, key, list: out.map((b) => ({ t0: b.t0, t1: b.t1, count: b.count, mean: b.n ? b.sum / b.n : null })) };
  }

  function renderHistory(card, r) {
    const wrap = card.querySelector('.history-wrap');
    wrap.replaceChildren();
    if (!r.ok) {
      wrap.append(el('div', 'muted small-note', 'History: ' + serverSays(r)));
      return;
    }
    const items = r.body.items || [];
    const title = el('div', 'field-label', 'History');
    wrap.append(title);
    if (!items.length) {
      wrap.append(el('div', 'muted small-note history-empty', 'No logged predictions yet.'));
      return;
    }
    const b = buckets(items, Date.now());
    const w = b.w >= 3600e3 ? `${b.w / 3600e3} h` : `${b.w / 60e3} min`;
    const withFeedback = items.filter((i) => i.actual !== null && i.actual !== undefined).length;
    title.textContent = `History: ${items.length}${r.body.next_offset !== null ? '+' : ''} predictions per ${w}` +
      (b.key ? `, mean ${b.key} (line)` : '') + (withFeedback ? ` · ${withFeedback} with feedback` : '');
    const dayFmt = b.w >= 6 * 3600e3 ? (t) => new Date(t).toISOString().slice(5, 10) : undefined;
    wrap.append(window.MdCharts.history(b.list, { fx: dayFmt, title: 'predictions over time' }));
  }

  /* ------------------------------------------------------------------ wiring -------------- */

  document.addEventListener('modeld:tab', (ev) => {
    if (ev.detail === 'models') load();
  });

  document.addEventListener('DOMContentLoaded', () => {
    $('models-refresh').addEventListener('click', load);
    $('api-key').addEventListener('change', () => {
      if (!$('tab-models').hidden) load();
    });
  });
})();
