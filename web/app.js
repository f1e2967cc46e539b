/* app.js - behaviour of modeld's web page.
 *
 * Flow: the user pastes an API key (kept in localStorage), drops or picks an image, which is
 * uploaded at once (POST /api/upload); Convert sends the file_id, the converter, the chosen
 * preset and only the parameters the user moved (POST /api/convert), so the server's defaults
 * stay the single source of truth; the answer's "parameters" (what was really used) are shown
 * back on the sliders. Every API error maps to a message that says what to do next.
 * AI mode sends the file_id with a tier (auto, 1, 2, 3), a target quality and a time budget
 * (POST /api/convert-ai) and shows what the server did: logo type and confidence, the tier and
 * why, predicted against measured SSIM, the time of each stage and the parameters it chose,
 * which one button copies into the manual settings.
 * The SVG is shown through an <img> with a blob: URL, never inlined, so markup in an SVG can
 * never run as part of this page.
 */
'use strict';

const KEY_STORAGE = 'modeld.apiKey';

/* The main VTracer parameters with their ranges (src/vectorize/vec.h) and the defaults used
 * until GET /api/presets answers with the server's own values. */
const PARAMS = [
  { name: 'mode', label: 'Curve fitting', type: 'select', options: ['spline', 'polygon', 'pixel'], def: 'spline',
    help: 'Splines are smooth; polygons keep corners sharp.' },
  { name: 'hierarchical', label: 'Layering', type: 'select', options: ['stacked', 'cutout'], def: 'stacked',
    help: 'Stacked shapes overlap; cutout shapes never do.' },
  { name: 'filter_speckle', label: 'Filter speckle', type: 'range', min: 0, max: 128, step: 1, def: 4, unit: 'px',
    help: 'Drop patches smaller than this.' },
  { name: 'color_precision', label: 'Colour bits', type: 'range', min: 1, max: 8, step: 1, def: 6,
    help: 'Significant bits per colour channel: fewer bits, fewer colours.' },
  { name: 'layer_difference', label: 'Gradient step', type: 'range', min: 0, max: 255, step: 1, def: 16,
    help: 'Colour difference between layers.' },
  { name: 'corner_threshold', label: 'Corner threshold', type: 'range', min: 0, max: 180, step: 1, def: 60, unit: '°' },
  { name: 'length_threshold', label: 'Segment length', type: 'range', min: 3.5, max: 10, step: 0.5, def: 4.0 },
  { name: 'splice_threshold', label: 'Splice threshold', type: 'range', min: 0, max: 180, step: 1, def: 45, unit: '°' },
  { name: 'max_iterations', label: 'Max iterations', type: 'range', min: 1, max: 20, step: 1, def: 10 },
  { name: 'path_precision', label: 'Path precision', type: 'range', min: 0, max: 8, step: 1, def: 2, unit: 'dp' },
  { name: 'gradients', label: 'Detect gradients', type: 'toggle', def: 1 },
];

const $ = (id) => document.getElementById(id);

/* A new tag element of class cls holding text (both optional): the tabs' scripts (predict.js,
 * models.js) build their DOM with it. */
function mkEl(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/* The one message of a tab's messages box (boxId), replacing the last; no title clears it.
 * Unlike showMessage (the converter's box): no dismiss button, no request id. */
function showTabMessage(boxId, kind, title, detail) {
  const box = $(boxId);
  box.replaceChildren();
  if (!title) return;
  const div = mkEl('div', 'msg ' + kind);
  div.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  const text = mkEl('div');
  text.append(mkEl('b', '', title), mkEl('span', 'detail', detail || ''));
  div.append(text);
  box.append(div);
}

const state = {
  file: null,          // the File the user chose
  fileId: null,        // its id on the server once uploaded
  uploading: null,     // the pending upload promise
  converter: 'vtracer',
  preset: 'default',
  mode: 'manual',      // 'manual' | 'ai'
  aiTier: 'auto',
  presets: null,       // {name: {param: value}} from the server
  limits: null,        // {upload_max_bytes, max_width, max_height, max_pixels} from the server
  touched: new Set(),  // parameters moved by the user since the preset was chosen
  result: null,        // the last convert answer
  urls: { original: null, svg: null },
};

/* ---------------------------------------------------------------- API key and requests ---- */

function apiKey() { return $('api-key').value.trim(); }

function authHeaders() {
  const k = apiKey();
  return k ? { Authorization: 'Bearer ' + k } : {};
}

function setKeyState(text, bad) {
  const el = $('key-state');
  el.textContent = text;
  el.classList.toggle('bad', !!bad);
}

/* fetch() wrapper: resolves to {ok, status, body, headers}; network failures become status 0. */
async function api(path, opts = {}) {
  const init = { method: opts.method || 'GET', headers: { ...authHeaders(), ...(opts.headers || {}) } };
  if (opts.json !== undefined) {
    init.body = JSON.stringify(opts.json);
    init.headers['Content-Type'] = 'application/json';
  } else if (opts.body !== undefined) {
    init.body = opts.body;
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    return { ok: false, status: 0, body: null, headers: new Headers() };
  }
  let body = null;
  const text = await res.text();
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
  return { ok: res.ok, status: res.status, body, headers: res.headers };
}

/* What to tell the user for a failed call: a title and a line that says what to do next. */
function describeError(r, action) {
  const err = (r.body && r.body.error) || {};
  const server = err.message ? err.message : '';
  const retry = r.headers.get('Retry-After');
  const wait = retry ? ` Try again in ${retry} s.` : ' Try again in a moment.';
  switch (r.status) {
    case 0: return ['Cannot reach the server', 'Check that modeld is running and that this page was opened from it.'];
    case 400: return [`The server refused the ${action}`, server || 'The request was malformed.'];
    case 401: return ['API key missing or not accepted',
      'Paste the key that "modeld serve" printed at its first start, or create one with "modeld keys create".'];
    case 403: return ['This API key is not allowed to do that',
      `Uploading and converting need a key with the write role. ${server}`];
    case 404: return ['The uploaded image is no longer on the server', 'It has expired or was removed: upload it again.'];
    case 405: return ['Unsupported request', server || 'The server does not allow this method here.'];
    case 413: return ['The file is too large', server || 'Images are accepted up to 20 MB. Try a smaller or compressed file.'];
    case 415: return ['This file is not a supported image',
      'Use a PNG, JPEG, WebP, BMP or TIFF image (the file content is checked, not its name).'];
    case 429: return ['Too many requests', 'Your key has hit its rate limit.' + wait];
    case 503:
      if (r.body && r.body.fallback_suggestion) {
        return ['The AI models are not available',
          `${server} Switch to Manual and convert with a preset instead.`];
      }
      return ['The server is busy', 'All conversion workers are taken or the service is not ready.' + wait];
    case 504: return ['The conversion took too long',
      'Try the Fast preset, fewer colours (lower colour precision) or a smaller image.'];
    default: return [`Server error (${r.status})`, server || 'Something went wrong on the server.'];
  }
}

/* ---------------------------------------------------------------- messages --------------- */

function showMessage(kind, title, detail, extra) {
  const box = $('messages');
  box.replaceChildren();
  const div = document.createElement('div');
  div.className = 'msg ' + kind;
  div.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  if (extra && extra.status !== undefined) div.dataset.status = String(extra.status);
  const text = document.createElement('div');
  const b = document.createElement('b');
  b.textContent = title;
  const d = document.createElement('span');
  d.className = 'detail';
  d.textContent = detail || '';
  text.append(b, d);
  if (extra && extra.requestId) {
    const rid = document.createElement('div');
    rid.className = 'detail';
    rid.textContent = 'Request id: ' + extra.requestId;
    text.append(rid);
  }
  const x = document.createElement('button');
  x.className = 'x';
  x.type = 'button';
  x.setAttribute('aria-label', 'Dismiss');
  x.textContent = '×';
  x.onclick = () => div.remove();
  div.append(text, x);
  box.append(div);
}

function clearMessages() { $('messages').replaceChildren(); }

function showApiError(r, action) {
  const [title, detail] = describeError(r, action);
  showMessage('error', title, detail, { status: r.status, requestId: r.body && r.body.request_id });
  if (r.status === 401) setKeyState('not accepted', true);
}

/* ---------------------------------------------------------------- server status ---------- */

async function refreshStatus() {
  const el = $('server-status');
  const text = $('server-status-text');
  const r = await api('/api/ready');
  el.classList.remove('status-unknown', 'status-ready', 'status-degraded', 'status-down');
  if (r.status === 0) {
    el.classList.add('status-down');
    text.textContent = 'Server offline';
  } else if (r.ok) {
    el.classList.add('status-ready');
    text.textContent = 'Server ready';
  } else {
    el.classList.add('status-degraded');
    const why = r.body && (r.body.error ? r.body.error.message : r.body.status);
    text.textContent = 'Not ready';
    el.title = why ? 'Not ready: ' + why : 'Server not ready';
  }
}

/* ---------------------------------------------------------------- parameters ------------- */

function formatValue(p, v) {
  if (p.type === 'range') return (p.step < 1 ? Number(v).toFixed(1) : String(v)) + (p.unit ? ' ' + p.unit : '');
  return String(v);
}

function buildParams() {
  const box = $('params');
  for (const p of PARAMS) {
    const wrap = document.createElement('div');
    wrap.className = 'param' + (p.type === 'toggle' ? ' toggle' : '');
    wrap.dataset.param = p.name;
    const label = document.createElement('label');
    label.htmlFor = 'p-' + p.name;
    const b = document.createElement('b');
    b.textContent = p.label;
    label.append(b);
    let input;
    if (p.type === 'select') {
      input = document.createElement('select');
      for (const o of p.options) input.append(new Option(o, o));
    } else if (p.type === 'toggle') {
      input = document.createElement('input');
      input.type = 'checkbox';
    } else {
      input = document.createElement('input');
      input.type = 'range';
      input.min = p.min; input.max = p.max; input.step = p.step;
      const out = document.createElement('output');
      out.id = 'o-' + p.name;
      label.append(out);
    }
    input.id = 'p-' + p.name;
    input.name = p.name;
    input.addEventListener('input', () => {
      state.touched.add(p.name);
      wrap.classList.add('touched');
      syncOutput(p);
      updateTouchedCount();
    });
    wrap.append(label, input);
    if (p.help) wrap.title = p.help;
    if (p.type === 'toggle') wrap.classList.add('wide');
    box.append(wrap);
  }
}

function syncOutput(p) {
  const out = $('o-' + p.name);
  if (out) out.textContent = formatValue(p, $('p-' + p.name).value);
}

function readParam(p) {
  const el = $('p-' + p.name);
  if (p.type === 'toggle') return el.checked ? 1 : 0;
  if (p.type === 'range') return Number(el.value);
  return el.value;
}

function writeParam(p, v) {
  const el = $('p-' + p.name);
  if (v === undefined || v === null) return;
  if (p.type === 'toggle') el.checked = !!v;
  else el.value = v;
  syncOutput(p);
}

/* Show a full parameter set (a preset's, or the one a conversion used) on the controls. */
function showParams(values, keepTouched) {
  for (const p of PARAMS) {
    if (keepTouched && state.touched.has(p.name)) continue;
    writeParam(p, values && values[p.name] !== undefined ? values[p.name] : p.def);
  }
}

function updateTouchedCount() {
  const n = state.touched.size;
  $('touched-count').textContent = n ? `(${n} changed)` : '';
}

function selectPreset(name) {
  state.preset = name;
  state.touched.clear();
  document.querySelectorAll('.param.touched').forEach((e) => e.classList.remove('touched'));
  document.querySelectorAll('#presets .chip').forEach((c) => c.classList.toggle('active', c.dataset.preset === name));
  showParams(state.presets && state.presets[name]);
  updateTouchedCount();
}

async function loadPresets() {
  if (!apiKey()) return;
  const r = await api('/api/presets');
  if (r.ok && r.body && r.body.presets) {
    state.presets = r.body.presets;
    showParams(state.presets[state.preset], true);
  }
  if (r.ok && r.body && r.body.limits) {
    state.limits = r.body.limits;
    $('dz-limit').textContent = humanBytes(state.limits.upload_max_bytes);
  }
}

/* ---------------------------------------------------------------- upload ----------------- */

function humanBytes(n) {
  if (n < 1024) return n + ' B';
  if (n < 1024 * 1024) return (n / 1024).toFixed(n < 10240 ? 1 : 0) + ' KB';
  return (n / 1024 / 1024).toFixed(1).replace(/\.0$/, '') + ' MB';
}

function setUploadState(text, kind) {
  const b = $('upload-state');
  b.textContent = text;
  b.className = 'badge' + (kind ? ' ' + kind : '');
}

function setObjectUrl(slot, blob) {
  if (state.urls[slot]) URL.revokeObjectURL(state.urls[slot]);
  state.urls[slot] = blob ? URL.createObjectURL(blob) : null;
  return state.urls[slot];
}

function chooseFile(file) {
  if (!file) return;
  state.file = file;
  state.fileId = null;
  state.result = null;
  clearMessages();
  clearResult();
  const url = setObjectUrl('original', file);
  for (const id of ['file-thumb', 'original-img', 'cmp-original']) $(id).src = url;
  $('original-img').hidden = false;
  $('stage').classList.add('has-original');
  $('file-info').hidden = false;
  $('file-name').textContent = file.name || 'image';
  $('file-details').textContent = humanBytes(file.size);
  updateConvertButton();
  // Refuse a file the server would refuse anyway before sending megabytes (the server may close
  // the connection on an oversized body, which a browser reports only as a network error).
  if (state.limits && file.size > state.limits.upload_max_bytes) {
    setUploadState('too large', 'bad');
    showMessage('error', 'The file is too large',
      `It is ${humanBytes(file.size)}; images are accepted up to ${humanBytes(state.limits.upload_max_bytes)}.`, { status: 413 });
    state.file = null;
    updateConvertButton();
    return;
  }
  if (apiKey()) upload().catch(() => {});
  else {
    setUploadState('waiting for key');
    showMessage('info', 'Paste your API key to continue', 'The image uploads as soon as a key is set (top right).');
  }
}

/* Upload the chosen file once; later callers for the same file share the same promise.
 * Resolves to the file_id, or null after showing why it failed (or when the user has picked
 * another file meanwhile). */
function upload() {
  if (state.fileId) return Promise.resolve(state.fileId);
  if (state.uploading && state.uploading.file === state.file) return state.uploading.promise;
  const file = state.file;
  setUploadState('uploading…', 'busy');
  const form = new FormData();
  form.append('file', file, file.name || 'image');
  const pending = { file, promise: null };
  pending.promise = api('/api/upload', { method: 'POST', body: form }).then((r) => {
    if (state.uploading === pending) state.uploading = null;
    if (file !== state.file) return null;
    if (!r.ok || !r.body || !r.body.file_id) {
      setUploadState('failed', 'bad');
      showApiError(r, 'upload');
      return null;
    }
    setKeyState('✓');
    state.fileId = r.body.file_id;
    $('file-details').textContent =
      `${r.body.format.toUpperCase()} · ${r.body.width}×${r.body.height} px · ${humanBytes(r.body.size_bytes)}`;
    setUploadState('uploaded', 'ok');
    clearMessages();
    updateConvertButton();
    return state.fileId;
  });
  state.uploading = pending;
  return pending.promise;
}

/* ---------------------------------------------------------------- convert ---------------- */

function updateConvertButton() {
  $('convert-btn').disabled = !state.file || $('convert-btn').classList.contains('busy');
}

function convertBody() {
  const body = { file_id: state.fileId, converter: state.converter, preset: state.preset };
  for (const p of PARAMS) if (state.touched.has(p.name)) body[p.name] = readParam(p);
  return body;
}

async function convert() {
  if (!apiKey()) {
    showMessage('error', 'API key missing', 'Paste your API key in the field at the top right first.', { status: 401 });
    $('api-key').focus();
    return;
  }
  const btn = $('convert-btn');
  btn.classList.add('busy');
  btn.disabled = true;
  $('convert-btn').querySelector('.label').textContent = state.mode === 'ai' ? 'Optimising…' : 'Converting…';
  try {
    let r = null;
    for (let attempt = 0; attempt < 2; attempt++) {
      if (!(await upload())) return;
      r = state.mode === 'ai'
        ? await api('/api/convert-ai', { method: 'POST', json: aiBody() })
        : await api('/api/convert', { method: 'POST', json: convertBody() });
      if (r.status !== 404) break;
      state.fileId = null;    // expired on the server: upload again once, then report
    }
    if (!r.ok || !r.body || typeof r.body.svg !== 'string') {
      showApiError(r, 'conversion');
      return;
    }
    clearMessages();
    showResult(r.body, r.headers.get('X-Cache'));
    showAiResult(r.body.ai_metadata ? r.body : null);
  } finally {
    btn.classList.remove('busy');
    btn.querySelector('.label').textContent = convertLabel();
    updateConvertButton();
  }
}

/* ---------------------------------------------------------------- AI mode --------------- */

function convertLabel() { return state.mode === 'ai' ? 'Convert with AI' : 'Convert to SVG'; }

function aiBody() {
  const body = {
    file_id: state.fileId,
    target_quality: Number($('ai-target').value),
    time_budget: Number($('ai-budget').value),
    include_analysis: true,
  };
  body.tier = state.aiTier === 'auto' ? 'auto' : Number(state.aiTier);
  return body;
}

function setMode(mode) {
  state.mode = mode;
  $('mode').querySelectorAll('button').forEach((b) => b.setAttribute('aria-checked', String(b.dataset.value === mode)));
  $('ai-settings').hidden = mode !== 'ai';
  $('manual-settings').hidden = mode === 'ai';
  $('convert-btn').querySelector('.label').textContent = convertLabel();
}

const STAGE_LABELS = {
  read: 'Read', decode: 'Decode', features: 'Features', classification: 'Classify', routing: 'Route',
  prediction: 'Predict', conversions: 'Conversions',
};

function fmtMs(ms) { return ms < 1 ? ms.toFixed(2) + ' ms' : ms < 1000 ? ms.toFixed(0) + ' ms' : (ms / 1000).toFixed(2) + ' s'; }

function showStages(times) {
  const box = $('ai-stages');
  box.replaceChildren();
  const max = Math.max(1e-6, ...Object.values(times || {}));
  for (const [k, label] of Object.entries(STAGE_LABELS)) {
    if (!times || times[k] === undefined) continue;
    const row = document.createElement('div');
    row.className = 'ai-stage';
    row.dataset.stage = k;
    const name = document.createElement('span');
    name.textContent = label;
    const track = document.createElement('span');
    track.className = 'track';
    const bar = document.createElement('i');
    bar.style.width = (100 * times[k] / max).toFixed(1) + '%';
    track.append(bar);
    const ms = document.createElement('span');
    ms.className = 'ms';
    ms.textContent = fmtMs(times[k]);
    row.append(name, track, ms);
    box.append(row);
  }
}

function showChosenParams(params) {
  const dl = $('ai-params');
  dl.replaceChildren();
  for (const p of PARAMS) {
    if (!params || params[p.name] === undefined) continue;
    const dt = document.createElement('dt');
    dt.textContent = p.label;
    const dd = document.createElement('dd');
    dd.dataset.param = p.name;
    dd.textContent = p.type === 'toggle' ? (params[p.name] ? 'on' : 'off') : formatValue(p, params[p.name]);
    dl.append(dt, dd);
  }
}

/* The AI panel of a convert-ai answer (null hides it). */
function showAiResult(res) {
  $('ai-result').hidden = !res;
  if (!res) return;
  const m = res.ai_metadata;
  $('ai-logo').textContent = m.logo_type.replace(/_/g, ' ');
  $('ai-confidence').textContent = `confidence ${(100 * m.confidence).toFixed(0)}%`;
  $('ai-tier-used').textContent = `Tier ${m.tier_used}`;
  $('ai-reason').textContent = m.routing ? m.routing.reason : '';
  $('ai-predicted').textContent = m.predicted_quality === null ? 'n/a' : Number(m.predicted_quality).toFixed(3);
  $('ai-measured').textContent = Number(m.actual_quality).toFixed(3);
  $('ai-method').textContent = `${m.optimization_method.replace(/_/g, ' ')} · ${m.conversions} conversion${m.conversions === 1 ? '' : 's'}`;
  const fb = $('ai-fallback');
  fb.hidden = !m.fallback_used;
  fb.textContent = m.fallback_used ? 'Rules stood in for a model: ' + m.fallback_reason : '';
  showStages(m.stage_times_ms);
  showChosenParams(res.parameters);
}

/* Put the AI's parameters into the manual settings, marked as changed, and switch to Manual. */
function copyToManual() {
  const params = state.result && state.result.parameters;
  if (!params) return;
  for (const p of PARAMS) {
    if (params[p.name] === undefined) continue;
    writeParam(p, params[p.name]);
    state.touched.add(p.name);
    document.querySelector(`.param[data-param="${p.name}"]`).classList.add('touched');
  }
  if (params.colormode === 'color') {
    state.converter = 'vtracer';
    $('converter').querySelectorAll('button').forEach((b) => b.setAttribute('aria-checked', String(b.dataset.value === 'vtracer')));
  }
  updateTouchedCount();
  setMode('manual');
}

function wireAi() {
  $('mode').addEventListener('click', (e) => {
    const b = e.target.closest('button');
    if (b) setMode(b.dataset.value);
  });
  wireSegmented('ai-tier', (v) => { state.aiTier = v; });
  const target = $('ai-target');
  const budget = $('ai-budget');
  const sync = () => {
    $('ai-target-out').textContent = Number(target.value).toFixed(2);
    $('ai-budget-out').textContent = Number(budget.value).toFixed(1) + ' s';
  };
  target.addEventListener('input', sync);
  budget.addEventListener('input', sync);
  sync();
  $('ai-copy').addEventListener('click', copyToManual);
}

function clearResult() {
  setObjectUrl('svg', null);
  $('svg-img').hidden = true;
  $('svg-img').removeAttribute('src');
  $('cmp-svg').removeAttribute('src');
  $('download-btn').disabled = true;
  for (const id of ['m-ssim', 'm-bytes', 'm-paths', 'm-time']) $(id).textContent = '—';
  for (const id of ['m-bytes-sub', 'm-paths-sub', 'm-cache']) $(id).textContent = '';
  $('m-ssim-bar').style.width = '0';
  $('stage').classList.remove('has-svg');
  $('ai-result').hidden = true;
}

function showResult(res, cache) {
  state.result = res;
  const url = setObjectUrl('svg', new Blob([res.svg], { type: 'image/svg+xml' }));
  $('svg-img').src = url;
  $('cmp-svg').src = url;
  $('svg-img').hidden = false;
  $('stage').classList.add('has-svg');
  $('download-btn').disabled = false;

  const ssim = Number(res.ssim);
  $('m-ssim').textContent = ssim.toFixed(3);
  const bar = $('m-ssim-bar');
  bar.style.width = Math.max(0, Math.min(1, ssim)) * 100 + '%';
  bar.className = ssim >= 0.9 ? '' : ssim >= 0.75 ? 'mid' : 'low';
  $('m-bytes').textContent = humanBytes(res.svg_bytes);
  if (state.file) {
    const ratio = res.svg_bytes / state.file.size;
    $('m-bytes-sub').textContent = `${(ratio * 100).toFixed(0)}% of the original`;
  }
  $('m-paths').textContent = String(res.path_count);
  $('m-paths-sub').textContent = res.parameters ? `${res.parameters.colormode || ''} · ${res.parameters.mode || ''}` : '';
  const secs = Number(res.processing_time);
  $('m-time').textContent = secs < 1 ? (secs * 1000).toFixed(secs < 0.01 ? 1 : 0) + ' ms' : secs.toFixed(2) + ' s';
  $('m-cache').textContent = cache === 'HIT' ? 'cached result' : 'fresh conversion';
  // An AI answer's parameters go to the manual controls only through "Copy to manual settings".
  if (res.parameters && !res.ai_metadata) showParams(res.parameters, true);
}

function download() {
  if (!state.result) return;
  const base = (state.file && state.file.name ? state.file.name : 'image').replace(/\.[^.]+$/, '');
  const a = document.createElement('a');
  a.href = state.urls.svg;
  a.download = base + '.svg';
  document.body.append(a);
  a.click();
  a.remove();
}

/* ---------------------------------------------------------------- wiring ----------------- */

function wireSegmented(id, onChange) {
  const group = $(id);
  group.addEventListener('click', (e) => {
    const b = e.target.closest('button');
    if (!b) return;
    group.querySelectorAll('button').forEach((x) => x.setAttribute('aria-checked', String(x === b)));
    onChange(b.dataset.value);
  });
}

function wireDropzone() {
  const dz = $('dropzone');
  const input = $('file-input');
  input.addEventListener('change', () => chooseFile(input.files[0]));
  dz.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); input.click(); } });
  for (const ev of ['dragenter', 'dragover']) {
    dz.addEventListener(ev, (e) => { e.preventDefault(); dz.classList.add('over'); });
  }
  for (const ev of ['dragleave', 'drop']) {
    dz.addEventListener(ev, (e) => { e.preventDefault(); dz.classList.remove('over'); });
  }
  dz.addEventListener('drop', (e) => chooseFile(e.dataTransfer.files[0]));
  // A file dropped anywhere else on the page would make the browser navigate away to it.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => { e.preventDefault(); if (e.dataTransfer.files[0]) chooseFile(e.dataTransfer.files[0]); });
}

function wireKey() {
  const input = $('api-key');
  input.value = localStorage.getItem(KEY_STORAGE) || '';
  input.addEventListener('change', () => {
    localStorage.setItem(KEY_STORAGE, apiKey());
    setKeyState(apiKey() ? 'saved' : '');
    loadPresets();
    if (state.file && !state.fileId) upload().catch(() => {});
  });
  $('key-form').addEventListener('submit', (e) => { e.preventDefault(); input.dispatchEvent(new Event('change')); });
  $('key-toggle').addEventListener('click', () => {
    input.type = input.type === 'password' ? 'text' : 'password';
  });
}

/* A file the browser cannot draw (not an image, or corrupt) shows no broken-image icon. */
function wirePreviews() {
  for (const id of ['original-img', 'file-thumb', 'cmp-original']) {
    $(id).addEventListener('error', () => {
      if (!$(id).getAttribute('src')) return;
      $(id).hidden = true;
      if (id === 'original-img') $('stage').classList.remove('has-original');
    });
    $(id).addEventListener('load', () => { $(id).hidden = false; });
  }
}

function wireCompare() {
  const range = $('cmp-range');
  const move = () => {
    const v = range.value;
    $('cmp-top').style.clipPath = `inset(0 ${100 - v}% 0 0)`;
    $('cmp-handle').style.left = v + '%';
  };
  range.addEventListener('input', move);
  move();
  wireSegmented('view-mode', (mode) => {
    $('stage').classList.toggle('split', mode === 'split');
    $('stage').classList.toggle('slider', mode === 'slider');
    $('compare').hidden = mode !== 'slider';
  });
}

function init() {
  buildParams();
  showParams(null);
  wireKey();
  wireDropzone();
  wireCompare();
  wirePreviews();
  wireAi();
  wireSegmented('converter', (v) => { state.converter = v; });
  $('presets').addEventListener('click', (e) => {
    const c = e.target.closest('.chip');
    if (c) selectPreset(c.dataset.preset);
  });
  $('reset-params').addEventListener('click', (e) => { e.preventDefault(); selectPreset(state.preset); });
  $('convert-btn').addEventListener('click', convert);
  $('download-btn').addEventListener('click', download);
  refreshStatus();
  setInterval(refreshStatus, 15000);
  loadPresets();
}

document.addEventListener('DOMContentLoaded', init);
