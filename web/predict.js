/* predict.js - the Predict tab of modeld's web page (issue 11 §5).
 *
 * Flow: when the tab is first shown, GET /api/models lists the models of family "predict"; a
 * choice loads GET /api/models/{name}, whose manifest drives everything else:
 *   - the form: one field per input_schema column (number / integer inputs with their unit,
 *     range and description, categories as selects, required marks), pre-filled from the
 *     manifest's first validation sample (category indexes turned back into their labels);
 *     the tasks whose request is not one schema row get their own form from their
 *     postprocessing: budget (total, per channel min / max / include, week of year), demand
 *     (history, last date, horizon, interval level, optional weather per forecast day), and
 *     pricing adds its grid options;
 *   - the answer (POST /api/{model}): the prediction's values (probability, band, interval...)
 *     and its reasons as a horizontal bar chart of the TreeSHAP contributions (positive and
 *     negative around zero; anomaly: the robust z of the features out of range), plus the
 *     task's own chart: pricing's price-response curve with the optimum marked, budget's
 *     allocation bars, demand's forecast line with its interval band after the history;
 *   - a 400 is shown next to the field it names (and at the top), the server staying the only
 *     judge of what is valid (the form does not pre-validate);
 *   - for a model that can be retrained (manifest training.label), the observed outcome of the
 *     prediction can be sent back (POST /api/{model}/feedback);
 *   - batch: a pasted or uploaded CSV (header row of column names) or JSON lines become
 *     POST /api/{model}/batch items; the answer is a table, failed rows with their error.
 * Uses app.js's $(), api(), describeError() (for the generic failures), mkEl() and
 * showTabMessage(), and charts.js's MdCharts.
 */
'use strict';

(function () {
  const pr = {
    loaded: false,       // the model list was fetched
    detail: null,        // GET /api/models/{name}'s model of the chosen one
    manifest: null,
    task: null,          // postprocessing.task
    busy: false,
  };

  /* The demand model's request needs ≥ 14 daily values, which the manifest's validation sample
   * (model rows, not requests) cannot give back: an example history (thousand entries a day at
   * Clark/Lake, June 2016, tests/fixtures/predict/expected.json) pre-fills the form. */
  const DEMAND_EXAMPLE = {
    history: [40.0, 43.835, 46.732, 47.98, 47.274, 29.788, 41.129, 37.194, 33.946, 32.18, 32.329, 34.356,
      22.765, 41.721, 45.256, 47.504, 47.915, 46.388, 43.297, 24.399, 35.648],
    last_date: '2016-06-28',
  };
  const PRICING_OPTIONS = [
    { name: 'min_price', label: 'Min price', unit: 'USD', help: 'lowest price of the grid (default half the value)' },
    { name: 'max_price', label: 'Max price', unit: 'USD', help: 'highest price of the grid (default 1.5 × the value)' },
    { name: 'steps', label: 'Grid points', integer: true, help: '2 to 1001 (default 101)' },
    { name: 'unit_cost', label: 'Unit cost', unit: 'USD', help: 'given: the margin is maximised instead of the revenue' },
    { name: 'quantity', label: 'Buyers', help: 'number of prospective buyers (default 1)' },
  ];
  const fmt = (v, d) => window.MdCharts.fmt(v, d);

  const el = mkEl; // app.js

  /* ------------------------------------------------------------------ messages ------------ */

  function message(kind, title, detail) {
    showTabMessage('pred-messages', kind, title, detail);
  }

  /* Title and detail of a failed call: app.js's wording for the generic cases (no server,
   * key, rate limit), else the server's own message, which names the field. */
  function whatFailed(r, action) {
    if (r.status === 0 || r.status === 401 || r.status === 429) return describeError(r, action);
    const e = (r.body && r.body.error) || {};
    const titles = { 400: `The ${action} was refused`, 403: `This API key may not run a ${action}`,
      404: 'No such prediction model', 413: 'Too much data in one request', 503: 'The server is busy',
      504: `The ${action} took too long` };
    return [titles[r.status] || `Server error (${r.status})`, e.message || ''];
  }

  function clearFieldErrors() {
    for (const e of document.querySelectorAll('#pred-form .field-error')) e.remove();
    for (const e of document.querySelectorAll('#pred-form .invalid')) e.classList.remove('invalid');
  }

  /* The form element that a server error's field names: the exact path, else the nearest
   * enclosing one (channels.search.min -> channels.search -> channels). */
  function fieldBox(field) {
    let f = field;
    while (f) {
      const box = document.querySelector(`#pred-form [data-field="${CSS.escape(f)}"]`);
      if (box) return box;
      const dot = f.lastIndexOf('.');
      f = dot > 0 ? f.slice(0, dot) : '';
    }
    return null;
  }

  function showFieldError(err) {
    const box = err.field ? fieldBox(err.field) : null;
    if (!box) return false;
    box.classList.add('invalid');
    const folded = box.closest('details');
    if (folded) folded.open = true; // pricing's grid options are folded by default
    const m = el('div', 'field-error', err.message || 'invalid');
    m.setAttribute('role', 'alert');
    m.dataset.field = err.field;
    box.append(m);
    const input = box.querySelector('input, select, textarea');
    if (input) input.focus();
    return true;
  }

  /* ------------------------------------------------------------------ models -------------- */

  async function loadModels() {
    const sel = $('pred-model');
    const r = await api('/api/models');
    if (!r.ok) {
      sel.replaceChildren(el('option', '', 'No models (see the message)'));
      const [t, d] = whatFailed(r, 'model list');
      message('error', t, d);
      return;
    }
    pr.loaded = true;
    /* Family "predict" also holds models served only through OIP (no postprocessing task):
     * /api/{model} answers 404 for them, so they are left out of the list. */
    const cands = (r.body.models || []).filter((m) => m.family === 'predict' && m.active_version);
    const details = await Promise.all(cands.map((m) => api('/api/models/' + encodeURIComponent(m.name))));
    const models = cands.filter((m, i) => details[i].ok &&
      ((details[i].body.model.manifest || {}).postprocessing || {}).task);
    sel.replaceChildren();
    for (const m of models) {
      const o = el('option', '', m.name);
      o.value = m.name;
      sel.append(o);
    }
    if (!models.length) {
      sel.append(el('option', '', 'No prediction model is active'));
      return;
    }
    const want = sessionStorage.getItem('modeld.predictModel');
    if (want && models.some((m) => m.name === want)) sel.value = want;
    await chooseModel(sel.value);
  }

  async function chooseModel(name) {
    sessionStorage.setItem('modeld.predictModel', name);
    message();
    $('pred-submit').disabled = true;
    $('pred-batch-submit').disabled = true;
    const r = await api('/api/models/' + encodeURIComponent(name));
    if (!r.ok) {
      const [t, d] = whatFailed(r, 'model');
      message('error', t, d);
      return;
    }
    pr.detail = r.body.model;
    pr.manifest = pr.detail.manifest || {};
    pr.task = (pr.manifest.postprocessing || {}).task || 'regression';
    $('pred-desc').textContent = pr.manifest.description || '';
    renderCard();
    buildForm();
    resetResult();
    $('pred-version').textContent = 'version ' + pr.detail.active_version;
    $('pred-submit').disabled = false;
    $('pred-batch-submit').disabled = false;
    $('pred-batch-text').value = '';
  }

  /* The manifest's test metrics in one line under the model choice. */
  function renderCard() {
    const box = $('pred-card');
    box.replaceChildren();
    const m = pr.manifest.metrics || {};
    const keys = Object.keys(m).filter((k) => typeof m[k] === 'number' && !/samples|origins/.test(k)).slice(0, 6);
    if (!keys.length) return;
    box.append(el('span', '', 'Test metrics: '));
    keys.forEach((k, i) => box.append(el('span', 'metric-chip', `${k} ${fmt(m[k])}`), i < keys.length - 1 ? ' ' : ''));
  }

  /* ------------------------------------------------------------------ the form ------------ */

  /* One labelled field. spec: {field, label, unit, help, required, input} (input: an element). */
  function fieldWrap(spec) {
    const wrap = el('div', 'pfield');
    wrap.dataset.field = spec.field;
    const label = el('label');
    label.htmlFor = spec.input.id;
    label.append(el('b', '', spec.label));
    if (spec.required) label.append(el('span', 'req', ' *'));
    if (spec.unit) label.append(el('span', 'muted unit', ' ' + spec.unit));
    wrap.append(label, spec.input);
    if (spec.help) wrap.append(el('div', 'param-help', spec.help));
    return wrap;
  }

  function inputId(name) { return 'pf-' + name.replace(/[^A-Za-z0-9_-]/g, '_'); }

  /* The input of one schema column; value: the default (already decoded), or undefined. */
  function columnInput(col, value) {
    let input;
    if (col.type === 'category') {
      input = el('select', 'input');
      if (!col.required) input.append(el('option', '', '(missing)'));
      if (!col.required) input.options[0].value = '';
      for (const v of col.values || []) {
        const o = el('option', '', v);
        o.value = v;
        input.append(o);
      }
      if (value !== undefined) input.value = value;
    } else {
      input = el('input', 'input');
      input.type = 'number';
      input.step = col.type === 'integer' ? '1' : 'any';
      if (col.minimum !== undefined) input.min = col.minimum;
      if (col.maximum !== undefined) input.max = col.maximum;
      if (value !== undefined && value !== null && !Number.isNaN(value)) input.value = String(value);
    }
    input.id = inputId(col.name);
    input.name = col.name;
    input.dataset.type = col.type;
    return input;
  }

  function rangeText(col) {
    if (col.type === 'category' || (col.minimum === undefined && col.maximum === undefined)) return '';
    return `${col.minimum ?? '−∞'} … ${col.maximum ?? '∞'}`;
  }

  /* The first validation sample's row as {column: value}: categories back to their labels. */
  function sampleRow() {
    const samples = ((pr.manifest.validation || {}).samples) || [];
    const cols = (pr.manifest.input_schema || {}).columns || [];
    const first = samples[0] && Object.values(samples[0].inputs || {})[0];
    const row = Array.isArray(first) && Array.isArray(first[0]) ? first[0] : null;
    const out = {};
    if (!row) return out;
    for (const c of cols) {
      const v = row[c.index];
      if (v === undefined || v === null || Number.isNaN(v)) continue;
      out[c.name] = c.type === 'category' ? (c.values || [])[v] : v;
    }
    return out;
  }

  function buildForm() {
    const form = $('pred-form');
    form.replaceChildren();
    if (pr.task === 'budget_allocation') buildBudgetForm(form);
    else if (pr.task === 'forecast') buildDemandForm(form);
    else buildSchemaForm(form);
  }

  function buildSchemaForm(form) {
    const cols = (pr.manifest.input_schema || {}).columns || [];
    const ex = sampleRow();
    const grid = el('div', 'pfields');
    for (const c of cols) {
      const help = [c.description, rangeText(c)].filter(Boolean).join(' · ');
      grid.append(fieldWrap({ field: c.name, label: c.name, unit: c.unit, help, required: c.required,
        input: columnInput(c, ex[c.name]) }));
    }
    form.append(grid);
    if (pr.task === 'price_response') {
      const det = el('details', 'advanced');
      det.append(el('summary', '', 'Price grid options'));
      const og = el('div', 'pfields');
      for (const o of PRICING_OPTIONS) {
        const input = el('input', 'input');
        input.type = 'number';
        input.step = o.integer ? '1' : 'any';
        input.id = inputId('opt-' + o.name);
        input.dataset.option = o.name;
        og.append(fieldWrap({ field: o.name, label: o.label, unit: o.unit, help: o.help, input }));
      }
      det.append(og);
      form.append(det);
    }
  }

  function numberInput(id, value, attrs = {}) {
    const input = el('input', 'input');
    input.type = 'number';
    input.step = 'any';
    input.id = id;
    for (const [k, v] of Object.entries(attrs)) if (v !== '') input.setAttribute(k, v);
    if (value !== undefined && value !== null) input.value = String(value);
    return input;
  }

  /* Budget: total and week of year from the sample's spends and week_sin / week_cos; one row
   * per channel of postprocessing.channels with an include box and optional min and max. */
  function buildBudgetForm(form) {
    const pp = pr.manifest.postprocessing || {};
    const ex = sampleRow();
    const channels = (pp.channels || []).map((c) => c.name);
    const total = channels.reduce((a, c) => a + (Number(ex[c]) || 0), 0);
    let week = '';
    if (ex.week_sin !== undefined && ex.week_cos !== undefined) {
      week = Math.round((Math.atan2(ex.week_sin, ex.week_cos) / (2 * Math.PI)) * 52);
      if (week <= 0) week += 52;
    }
    const unit = pp.unit ? pp.unit.replace('/week', '') : '';
    const grid = el('div', 'pfields');
    grid.append(fieldWrap({ field: 'total', label: 'total', unit: pp.unit, required: true,
      help: 'budget to allocate across the channels', input: numberInput('pf-total', total ? +total.toFixed(2) : '', { min: 0 }) }));
    grid.append(fieldWrap({ field: 'week_of_year', label: 'week_of_year', unit: '1..52',
      help: 'season of the week (optional)', input: numberInput('pf-week_of_year', week, { step: 1, min: 1, max: 53 }) }));
    grid.append(fieldWrap({ field: 'steps', label: 'steps', help: 'optimiser increments (optional, default 1000)',
      input: numberInput('pf-steps', '', { step: 1, min: 1 }) }));
    form.append(grid);
    const tbl = el('div', 'channels');
    tbl.dataset.field = 'channels';
    const head = el('div', 'channel-row head');
    head.append(el('span', '', 'channel'), el('span', '', 'min ' + unit), el('span', '', 'max ' + unit));
    tbl.append(head);
    for (const c of channels) {
      const row = el('div', 'channel-row');
      row.dataset.field = 'channels.' + c;
      row.dataset.channel = c;
      const lab = el('label', 'toggle');
      const cb = el('input');
      cb.type = 'checkbox';
      cb.checked = true;
      cb.id = inputId('ch-' + c);
      cb.className = 'ch-use';
      lab.append(cb, ' ' + c);
      const mn = numberInput(inputId('ch-' + c + '-min'), '', { min: 0, 'aria-label': c + ' min', class: 'input ch-min' });
      const mx = numberInput(inputId('ch-' + c + '-max'), '', { min: 0, 'aria-label': c + ' max', class: 'input ch-max' });
      row.append(lab, mn, mx);
      tbl.append(row);
    }
    form.append(el('div', 'field-label', 'Channels'), tbl,
      el('p', 'param-help', 'Unticked channels get nothing; min and max are optional bounds of each channel\'s spend.'));
  }

  function buildDemandForm(form) {
    const pp = pr.manifest.postprocessing || {};
    const grid = el('div', 'pfields');
    const hist = el('textarea', 'input mono');
    hist.id = 'pf-history';
    hist.rows = 4;
    hist.value = DEMAND_EXAMPLE.history.join(', ');
    grid.append(fieldWrap({ field: 'history', label: 'history', unit: pp.unit || '', required: true,
      help: 'the last ≥ 14 daily values before the first forecast day, oldest first (commas or spaces)', input: hist }));
    const date = el('input', 'input');
    date.type = 'date';
    date.id = 'pf-last_date';
    date.value = DEMAND_EXAMPLE.last_date;
    grid.append(fieldWrap({ field: 'last_date', label: 'last_date', required: true, help: 'date of the last history value', input: date }));
    grid.append(fieldWrap({ field: 'horizon', label: 'horizon', unit: 'days',
      help: `days to forecast, 1..${pp.max_horizon || 14}`, input: numberInput('pf-horizon', 7, { step: 1, min: 1, max: pp.max_horizon || 14 }) }));
    const level = el('select', 'input');
    level.id = 'pf-level';
    for (const [v, t] of [['0.8', '80 %'], ['0.9', '90 %']]) {
      const o = el('option', '', t);
      o.value = v;
      level.append(o);
    }
    grid.append(fieldWrap({ field: 'level', label: 'level', help: 'prediction interval', input: level }));
    form.append(grid);
    const det = el('details', 'advanced');
    det.dataset.field = 'weather';
    det.append(el('summary', '', 'Weather per forecast day (optional)'), el('div', 'weather-days'));
    form.append(det);
    const redraw = () => buildWeatherRows(det.querySelector('.weather-days'));
    $('pf-horizon').addEventListener('change', redraw);
    date.addEventListener('change', redraw);
    redraw();
  }

  /* The weather columns of demand's schema (temp, percip, weather_snow): one row of inputs per
   * forecast day; values already typed are kept when the days change. */
  const WEATHER = ['temp', 'percip', 'weather_snow'];

  function buildWeatherRows(box) {
    const cols = Object.fromEntries(((pr.manifest.input_schema || {}).columns || []).map((c) => [c.name, c]));
    const h = Math.max(0, Math.min(Number($('pf-horizon').value) || 0, (pr.manifest.postprocessing || {}).max_horizon || 14));
    const last = $('pf-last_date').value;
    const old = {};
    for (const i of box.querySelectorAll('input')) old[i.id] = i.value;
    box.replaceChildren();
    const head = el('div', 'weather-row head');
    head.append(el('span', '', 'day'), ...WEATHER.map((w) => el('span', '', `${w} ${(cols[w] || {}).unit || ''}`)));
    box.append(head);
    for (let d = 1; d <= h; d++) {
      const row = el('div', 'weather-row');
      row.append(el('span', 'muted', last ? addDays(last, d) : 'day ' + d));
      for (const w of WEATHER) {
        const c = cols[w] || {};
        const id = `pf-w${d}-${w}`;
        row.append(numberInput(id, old[id], { min: c.minimum ?? '', max: c.maximum ?? '', 'aria-label': `day ${d} ${w}` }));
      }
      box.append(row);
    }
  }

  /* The weather list of the request: one object per day up to the last day with a value (a
   * day without any is null), or undefined when nothing was typed. */
  function weatherList() {
    const days = [];
    for (const row of document.querySelectorAll('#pred-form .weather-row:not(.head)')) {
      const o = {};
      row.querySelectorAll('input').forEach((input, i) => {
        const v = inputValue(input);
        if (v !== undefined) o[WEATHER[i]] = v;
      });
      days.push(Object.keys(o).length ? o : null);
    }
    while (days.length && days[days.length - 1] === null) days.pop();
    return days.length ? days : undefined;
  }

  /* ------------------------------------------------------------------ the request --------- */

  /* An input's value for JSON: numbers as numbers (an unparsable one is sent as typed so the
   * server names the field), empty as undefined (the field is left out). */
  function inputValue(input) {
    const raw = input.value.trim();
    if (raw === '') return undefined;
    if (input.type === 'number' || input.dataset.type === 'number' || input.dataset.type === 'integer') {
      const n = Number(raw);
      return Number.isFinite(n) ? n : raw;
    }
    return raw;
  }

  function requestBody() {
    const form = $('pred-form');
    if (pr.task === 'budget_allocation') {
      const f = {};
      for (const k of ['total', 'week_of_year', 'steps']) {
        const v = inputValue($('pf-' + k));
        if (v !== undefined) f[k] = v;
      }
      const rows = [...form.querySelectorAll('.channel-row[data-channel]')];
      const custom = rows.some((r) => !r.querySelector('.ch-use').checked ||
        r.querySelector('.ch-min').value !== '' || r.querySelector('.ch-max').value !== '');
      if (custom) {
        f.channels = {};
        for (const r of rows) {
          if (!r.querySelector('.ch-use').checked) continue;
          const c = {};
          const mn = inputValue(r.querySelector('.ch-min')), mx = inputValue(r.querySelector('.ch-max'));
          if (mn !== undefined) c.min = mn;
          if (mx !== undefined) c.max = mx;
          f.channels[r.dataset.channel] = c;
        }
      }
      return { features: f };
    }
    if (pr.task === 'forecast') {
      const text = $('pf-history').value.trim();
      const history = text ? text.split(/[\s,;]+/).map((t) => (Number.isFinite(Number(t)) ? Number(t) : t)) : [];
      const f = { history, last_date: $('pf-last_date').value };
      const h = inputValue($('pf-horizon'));
      if (h !== undefined) f.horizon = h;
      f.level = Number($('pf-level').value);
      const weather = weatherList();
      if (weather) f.weather = weather;
      return { features: f };
    }
    const features = {};
    for (const input of form.querySelectorAll('.pfields [name]')) {
      const v = inputValue(input);
      if (v !== undefined) features[input.name] = v;
    }
    const body = { features };
    const opts = {};
    for (const input of form.querySelectorAll('[data-option]')) {
      const v = inputValue(input);
      if (v !== undefined) opts[input.dataset.option] = v;
    }
    if (Object.keys(opts).length) body.options = opts;
    return body;
  }

  async function predict() {
    if (pr.busy || !pr.detail) return;
    pr.busy = true;
    const btn = $('pred-submit');
    btn.classList.add('busy');
    btn.disabled = true;
    clearFieldErrors();
    message();
    const body = requestBody();
    const r = await api('/api/' + encodeURIComponent(pr.detail.name), { method: 'POST', json: body });
    btn.classList.remove('busy');
    btn.disabled = false;
    pr.busy = false;
    if (!r.ok) {
      const err = (r.body && r.body.error) || {};
      const shown = r.status === 400 && showFieldError(err);
      const [t, d] = whatFailed(r, 'prediction');
      message('error', shown ? `The field ${err.field} is not valid` : t, d);
      return;
    }
    renderResult(r.body, body);
  }

  /* ------------------------------------------------------------------ the answer ---------- */

  function resetResult() {
    $('pred-result').hidden = true;
    $('pred-batch-result').hidden = true;
    $('pred-empty').hidden = false;
  }

  function fact(label, value, cls) {
    const d = el('div', 'pred-fact' + (cls ? ' ' + cls : ''));
    d.dataset.key = label;
    d.append(el('dt', '', label), el('dd', '', value));
    return d;
  }

  /* The prediction's scalar fields (and intervals) as facts; probabilities as per cent. */
  function renderFacts(p) {
    const box = $('pred-facts');
    box.replaceChildren();
    for (const [k, v] of Object.entries(p)) {
      if (v === null || typeof v === 'object' && !(Array.isArray(v) && v.length === 2 && typeof v[0] === 'number')) continue;
      let text;
      if (Array.isArray(v)) text = `${fmt(v[0])} … ${fmt(v[1])}`;
      else if (typeof v === 'boolean') text = v ? 'yes' : 'no';
      else if (typeof v === 'number' && /probability|share|level/.test(k) && v >= 0 && v <= 1) text = (v * 100).toFixed(1) + ' %';
      else text = fmt(v);
      const cls = k === 'band' ? 'band band-' + String(v).replace(/[^a-z]/gi, '') : '';
      box.append(fact(k, text, cls));
    }
  }

  function renderResult(ans, body) {
    $('pred-empty').hidden = true;
    $('pred-batch-result').hidden = true;
    $('pred-result').hidden = false;
    const p = ans.prediction || {};
    // pricing: the optimum's numbers are the answer, shown beside the model's value
    const o = p.optimum;
    renderFacts(o ? { ...p, optimum_price: o.price, optimum_volume: o.volume,
      [p.objective || 'objective']: o.objective, elasticity: o.elasticity } : p);
    $('pred-version').textContent = 'version ' + ans.version;
    $('pred-id').textContent = `prediction ${ans.prediction_id || '—'} · request ${ans.request_id || '—'}`;
    const task = $('pred-task');
    task.replaceChildren();
    if (pr.task === 'price_response' && Array.isArray(p.grid)) task.append(pricingChart(p));
    else if (pr.task === 'budget_allocation' && Array.isArray(p.allocation)) task.append(...budgetChart(p));
    else if (pr.task === 'forecast' && Array.isArray(p.forecast)) task.append(demandChart(p, body.features));
    renderReasons(ans, body);
    renderFeedback(ans);
  }

  /* The observed outcome of this prediction, for a model that can be retrained from feedback
   * (its manifest's training.label: a select of the label's values, else a number), sent as
   * POST /api/{model}/feedback {prediction_id, actual}. */
  function renderFeedback(ans) {
    const box = $('pred-feedback');
    box.replaceChildren();
    const label = ((pr.manifest.training || {}).label) || null;
    box.hidden = !label || !ans.prediction_id;
    if (box.hidden) return;
    let input;
    if (Array.isArray(label.values)) {
      input = el('select', 'input');
      for (const v of label.values) {
        const o = el('option', '', v);
        o.value = v;
        input.append(o);
      }
    } else {
      input = numberInput('pf-actual', '', {});
    }
    input.id = 'pf-actual';
    const btn = el('button', 'secondary', 'Send outcome');
    btn.type = 'button';
    btn.id = 'pred-feedback-send';
    const state = el('span', 'muted small-note');
    state.id = 'pred-feedback-state';
    const lab = el('label', 'field-label', `Observed ${label.column}`);
    lab.htmlFor = 'pf-actual';
    box.append(lab, input, btn, state);
    btn.addEventListener('click', async () => {
      const raw = input.value.trim();
      const actual = input.tagName === 'SELECT' ? raw : Number.isFinite(Number(raw)) && raw !== '' ? Number(raw) : raw;
      btn.disabled = true;
      const r = await api('/api/' + encodeURIComponent(pr.detail.name) + '/feedback', { method: 'POST',
        json: { prediction_id: ans.prediction_id, actual } });
      btn.disabled = false;
      state.classList.toggle('bad', !r.ok);
      state.textContent = r.ok ? 'Recorded: retraining from "feedback" can use it.' : whatFailed(r, 'feedback').join(': ');
    });
  }

  function renderReasons(ans, body) {
    const wrap = $('pred-reasons-wrap');
    const box = $('pred-reasons');
    box.replaceChildren();
    const ex = ans.explanation;
    const p = ans.prediction || {};
    const feats = body.features || {};
    if (ex && ex.contributions) {
      const rows = Object.entries(ex.contributions).map(([k, v]) => ({ label: k, value: v,
        note: feats[k] === undefined ? 'missing' : String(feats[k]).slice(0, 16) }));
      rows.sort((a, b) => Math.abs(b.value) - Math.abs(a.value));
      const top = rows.slice(0, 12);
      $('pred-reasons-title').textContent = 'Reasons: what pushed this prediction up or down';
      const hidden = rows.length - top.length;
      $('pred-reasons-note').textContent = `Red bars push the prediction up, blue ones down: contributions (${ex.method || 'TreeSHAP'}) in the model's margin, from a bias of ` +
        `${fmt(ex.bias)}` + (hidden > 0 ? `; ${hidden} smaller ones not drawn.` : '.') +
        (ex.reasons && ex.reasons.length ? ' Top reasons: ' + ex.reasons.map((r) => r.feature).join(', ') + '.' : '');
      box.append(window.MdCharts.hbars(top, { diverging: true, cls: 'reasons', title: 'contributions per feature' }));
      wrap.hidden = false;
    } else if (Array.isArray(p.reasons)) {
      $('pred-reasons-title').textContent = 'Reasons: features out of their usual range';
      if (!p.reasons.length) {
        $('pred-reasons-note').textContent = 'No feature is out of its usual range.';
      } else {
        $('pred-reasons-note').textContent = 'Robust z of each feature against the training data (usual range in the tooltip).';
        box.append(window.MdCharts.hbars(p.reasons.map((r) => ({ label: r.feature, value: r.z,
          note: String(r.value) })), { diverging: true, cls: 'reasons', title: 'robust z per feature' }));
      }
      wrap.hidden = false;
    } else {
      wrap.hidden = true;
    }
  }

  function pricingChart(p) {
    const obj = p.objective || 'revenue';
    const pts = p.grid.map((g) => [g.price, g.objective]);
    const o = p.optimum || {};
    return window.MdCharts.line({
      cls: 'pricing', title: 'price-response curve', yZero: true,
      series: [{ name: obj, cls: 'objective', points: pts }],
      marker: o.price !== undefined ? { x: o.price, y: o.objective,
        label: `optimum ${fmt(o.price)} → ${obj} ${fmt(o.objective)}, elasticity ${fmt(o.elasticity)}` } : null,
      xLabel: 'price (USD)', yLabel: `expected ${obj}`,
    });
  }

  function budgetChart(p) {
    const unit = ((pr.manifest.postprocessing || {}).unit || '').replace('/week', '');
    const bars = window.MdCharts.hbars(p.allocation.map((a) => ({ label: a.channel, value: a.spend,
      note: 'return ' + fmt(a['return']) })), { cls: 'allocation', unit, title: 'spend per channel' });
    const out = [el('div', 'field-label', 'Allocation per channel'), bars];
    if (p.warnings && p.warnings.length) out.push(el('p', 'msg warn', p.warnings.join('; ')));
    return out;
  }

  function addDays(iso, n) {
    const d = new Date(iso + 'T00:00:00Z');
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  }

  /* Forecast after the history (its last 28 days), with the interval as a band; x is the day
   * number relative to the last history day. */
  function demandChart(p, f) {
    const hist = (f.history || []).slice(-28).filter((v) => typeof v === 'number');
    const hs = hist.map((v, i) => [i - hist.length + 1, v]);
    const fc = p.forecast.map((d, i) => [i + 1, d.forecast]);
    const last = f.last_date;
    const lvl = Math.round((p.level || 0.8) * 100);
    return window.MdCharts.line({
      cls: 'demand', title: 'forecast with its interval',
      series: [{ name: 'history', cls: 'history', points: hs }, { name: 'forecast', cls: 'forecast', points: hs.slice(-1).concat(fc) }],
      bands: [{ cls: 'interval', label: `${lvl} % interval`, lower: p.forecast.map((d, i) => [i + 1, d.lower]),
        upper: p.forecast.map((d, i) => [i + 1, d.upper]) }],
      fx: (v) => (last ? addDays(last, Math.round(v)).slice(5) : String(v)),
      xLabel: `day (forecast after ${last}, band: ${lvl} % interval)`, yLabel: (pr.manifest.postprocessing || {}).unit || 'value',
    });
  }

  /* ------------------------------------------------------------------ batch --------------- */

  /* RFC 4180 CSV: quoted fields with "" escapes and embedded newlines; returns rows of strings. */
  function parseCsv(text) {
    const rows = [];
    let row = [], cur = '', q = false;
    for (let i = 0; i < text.length; i++) {
      const ch = text[i];
      if (q) {
        if (ch === '"' && text[i + 1] === '"') { cur += '"'; i++; } else if (ch === '"') q = false; else cur += ch;
      } else if (ch === '"') q = true;
      else if (ch === ',') { row.push(cur); cur = ''; } else if (ch === '\n' || ch === '\r') {
        if (ch === '\r' && text[i + 1] === '\n') i++;
        row.push(cur); cur = '';
        if (row.length > 1 || row[0] !== '') rows.push(row);
        row = [];
      } else cur += ch;
    }
    row.push(cur);
    if (row.length > 1 || row[0] !== '') rows.push(row);
    return rows;
  }

  /* The batch's items: JSON lines when the text starts with '{', else CSV with a header row;
   * CSV cells of number / integer columns become numbers, empty cells are left out. Throws
   * an Error naming the line for text that is neither. */
  function batchItems(text) {
    const t = text.trim();
    if (t.startsWith('{')) {
      return t.split(/\r?\n/).filter((l) => l.trim()).map((l, i) => {
        try { return JSON.parse(l); } catch (e) { throw new Error(`line ${i + 1} is not a JSON object`); }
      });
    }
    const rows = parseCsv(t);
    if (rows.length < 2) throw new Error('the CSV needs a header row and at least one row');
    const head = rows[0].map((h) => h.trim());
    const types = {};
    for (const c of (pr.manifest.input_schema || {}).columns || []) types[c.name] = c.type;
    return rows.slice(1).map((r) => {
      const o = {};
      head.forEach((h, i) => {
        const v = (r[i] ?? '').trim();
        if (v === '') return;
        const num = Number(v);
        o[h] = (types[h] === 'number' || types[h] === 'integer') && Number.isFinite(num) ? num : v;
      });
      return o;
    });
  }

  /* An example CSV: the header and the sample row of the form's schema (not for budget and
   * demand, whose rows are nested: JSON lines of the form's request). */
  function batchExample() {
    if (pr.task === 'budget_allocation' || pr.task === 'forecast') {
      $('pred-batch-text').value = JSON.stringify(requestBody().features);
      return;
    }
    const f = requestBody().features;
    const cols = ((pr.manifest.input_schema || {}).columns || []).map((c) => c.name);
    const cell = (v) => (v === undefined ? '' : /[",\n]/.test(String(v)) ? '"' + String(v).replace(/"/g, '""') + '"' : String(v));
    $('pred-batch-text').value = cols.join(',') + '\n' + cols.map((c) => cell(f[c])).join(',') + '\n';
  }

  async function runBatch() {
    message();
    let items;
    try {
      items = batchItems($('pred-batch-text').value);
    } catch (e) {
      message('error', 'The batch cannot be read', e.message);
      return;
    }
    if (!items.length) {
      message('error', 'The batch is empty', 'Paste a CSV with a header row, or JSON lines.');
      return;
    }
    const btn = $('pred-batch-submit');
    btn.disabled = true;
    const r = await api('/api/' + encodeURIComponent(pr.detail.name) + '/batch', { method: 'POST', json: { items } });
    btn.disabled = false;
    if (!r.ok) {
      const [t, d] = whatFailed(r, 'batch');
      message('error', t, d);
      return;
    }
    renderBatch(r.body, items.length);
  }

  /* A prediction flattened to scalar columns: nested objects by dotted names, 2-number
   * intervals as "lo … hi", budget's allocation as spend.<channel>, demand's forecast as
   * forecast.<date>; other arrays (pricing's grid) are left out. */
  function flatten(p, prefix, out) {
    for (const [k, v] of Object.entries(p || {})) {
      const name = prefix ? prefix + '.' + k : k;
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) flatten(v, name, out);
      else if (!Array.isArray(v)) out[name] = v;
      else if (v.length === 2 && typeof v[0] === 'number') out[name] = `${fmt(v[0])} … ${fmt(v[1])}`;
      else if (k === 'allocation') for (const a of v) out['spend.' + a.channel] = a.spend;
      else if (k === 'forecast') for (const d of v) out['forecast.' + d.date] = d.forecast;
    }
    return out;
  }

  function renderBatch(ans, n) {
    const SHOW = 500;
    $('pred-empty').hidden = true;
    $('pred-result').hidden = true;
    $('pred-batch-result').hidden = false;
    const rows = [];
    for (const p of ans.predictions || []) rows.push({ index: p.index, cells: flatten(p.prediction, '', {}) });
    for (const f of ans.failed || []) rows.push({ index: f.index, error: f.error || {} });
    rows.sort((a, b) => a.index - b.index);
    const cols = [];
    for (const r of rows) for (const k of Object.keys(r.cells || {})) if (!cols.includes(k)) cols.push(k);
    $('pred-batch-summary').textContent = `${n} rows: ${ans.count} predicted, ${(ans.failed || []).length} failed` +
      (rows.length > SHOW ? ` (the first ${SHOW} shown)` : '');
    const t = $('pred-batch-table');
    t.replaceChildren();
    const head = el('tr');
    for (const c of ['row', ...cols, 'error']) head.append(el('th', '', c));
    t.append(el('thead'));
    t.tHead.append(head);
    const tb = el('tbody');
    for (const r of rows.slice(0, SHOW)) {
      const tr = el('tr', r.error ? 'failed' : '');
      tr.dataset.index = String(r.index);
      tr.append(el('td', '', String(r.index)));
      for (const c of cols) {
        const v = r.cells ? r.cells[c] : undefined;
        tr.append(el('td', '', v === undefined ? '' : typeof v === 'number' ? fmt(v) : String(v)));
      }
      tr.append(el('td', 'err', r.error ? `${r.error.field ? r.error.field + ': ' : ''}${r.error.message || r.error.code}` : ''));
      tb.append(tr);
    }
    t.append(tb);
  }

  async function loadBatchFile(ev) {
    const f = ev.target.files[0];
    if (!f) return;
    if (f.size > 20 * 1024 * 1024) {
      message('error', 'The file is too large for a batch', 'Send files over 20 MB as a bulk job (POST /api/{model}/bulk).');
      return;
    }
    $('pred-batch-text').value = await f.text();
    ev.target.value = '';
  }

  /* ------------------------------------------------------------------ wiring -------------- */

  document.addEventListener('modeld:tab', (ev) => {
    if (ev.detail === 'predict' && !pr.loaded) loadModels();
  });

  document.addEventListener('DOMContentLoaded', () => {
    $('pred-model').addEventListener('change', (e) => chooseModel(e.target.value));
    $('pred-submit').addEventListener('click', predict);
    $('pred-form').addEventListener('submit', (e) => { e.preventDefault(); predict(); });
    $('pred-form').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && e.target.tagName === 'INPUT') { e.preventDefault(); predict(); }
    });
    $('pred-batch-submit').addEventListener('click', runBatch);
    $('pred-batch-example').addEventListener('click', batchExample);
    $('pred-batch-file').addEventListener('change', loadBatchFile);
    // A key pasted after a failed first load: try again.
    $('api-key').addEventListener('change', () => {
      if (!pr.loaded && !$('tab-predict').hidden) loadModels();
    });
  });
})();
