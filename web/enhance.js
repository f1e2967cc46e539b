/* enhance.js - the Enhance tab of modeld's web page (issue 10 §5), and the tab switch.
 *
 * Flow: the user drops one or many photos and picks the options (quality, upscale, output
 * format, faces: disabled with the server's reason when GET /api/v1/config says face
 * enhancement is unavailable). One photo is sent to POST /api/v1/enhance, several to
 * POST /api/v1/enhance/batch (50 per request). Each job then gets a row with a live progress
 * bar: from the job's WebSocket (GET /api/v1/jobs/{id}/status, authenticated with a JWT from
 * POST /api/auth/token in ?token=, since a browser cannot set headers on a WebSocket) when the
 * server offers it, else by polling GET /api/v1/jobs/{id} twice a second. A finished job can
 * be compared before / after at the same size with a slider, and downloaded; a batch also as a
 * ZIP. Results are fetched with the key (fetch + blob: URLs), never by putting the key in a URL.
 * Uses app.js's $(), api() and describeError() (loaded first; classic scripts share them).
 */
'use strict';

(function () {
  const enh = {
    files: [],        // the File objects picked
    quality: 'balanced',
    scale: '4',
    jobs: new Map(),  // job_id -> {file, row, info, done, ws, poll, beforeUrl, afterUrl}
    token: null,      // {jwt, until} for WebSockets
    limitBytes: 20 * 1024 * 1024,
    selected: null,
  };

  /* ------------------------------------------------------------------- tabs --------------- */

  /* What the header says on each tab; an unknown name (a stale #hash) shows Vectorize. */
  const TAB_TEXT = {
    vectorize: ['Vectorize', 'Raster logos in, clean SVG out'],
    enhance: ['Enhance', 'Small photos in, sharp and large out'],
    predict: ['Predict', 'Business rows in, predictions with reasons out'],
    models: ['Models', 'Every model of the registry: versions, state, drift, history'],
  };

  /* Shows one tab and tells the other scripts (predict.js, models.js) through a "modeld:tab"
   * event, so each loads its data only when its tab is opened. */
  function showTab(name) {
    if (!TAB_TEXT[name]) name = 'vectorize';
    for (const btn of document.querySelectorAll('.tabs [role=tab]')) {
      const on = btn.dataset.tab === name;
      btn.setAttribute('aria-selected', on ? 'true' : 'false');
      $('tab-' + btn.dataset.tab).hidden = !on;
    }
    const [title, sub] = TAB_TEXT[name];
    document.title = 'modeld · ' + title;
    document.querySelector('.brand-name span').textContent = title;
    document.querySelector('.brand-sub').textContent = sub;
    if (name === 'enhance') loadConfig();
    document.dispatchEvent(new CustomEvent('modeld:tab', { detail: name }));
  }

  function wireTabs() {
    for (const btn of document.querySelectorAll('.tabs [role=tab]')) {
      btn.addEventListener('click', () => {
        history.replaceState(null, '', btn.dataset.tab === 'vectorize' ? '#' : '#' + btn.dataset.tab);
        showTab(btn.dataset.tab);
      });
    }
    showTab(location.hash.slice(1) || 'vectorize');
  }

  /* ------------------------------------------------------------------- messages ----------- */

  function message(kind, title, detail) {
    const box = $('enh-messages');
    box.replaceChildren();
    if (!title) return;
    const div = document.createElement('div');
    div.className = 'msg ' + kind;
    div.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    const b = document.createElement('b');
    b.textContent = title;
    const d = document.createElement('span');
    d.className = 'detail';
    d.textContent = detail || '';
    div.append(b, d);
    box.append(div);
  }

  function errorOf(r) {
    const [title, detail] = describeError(r, 'enhancement');
    const err = (r.body && r.body.error) || {};
    if (r.status === 503 && err.code === 'overloaded') return [title, err.message || detail];
    if (r.status === 422 || r.status === 404) return [title, err.message || detail];
    return [title, detail];
  }

  /* ------------------------------------------------------------------- options ------------ */

  let configLoaded = false;
  async function loadConfig() {
    if (configLoaded) return;
    const r = await api('/api/v1/config');
    if (!r.ok || !r.body) return;
    configLoaded = true;
    const c = r.body;
    if (c.limits && c.limits.max_file_bytes) {
      enh.limitBytes = c.limits.max_file_bytes;
      $('enh-limit').textContent = Math.round(enh.limitBytes / 1048576) + ' MB';
    }
    const face = c.face_enhance || {};
    $('enh-face').disabled = !face.available;
    $('enh-face-note').textContent = face.available ? 'Faces go through the strongest network.'
      : (face.reason || 'Face enhancement is not available on this server.');
  }

  function wireSegmented(id, key) {
    const group = $(id);
    group.addEventListener('click', (ev) => {
      const btn = ev.target.closest('button[data-value]');
      if (!btn) return;
      for (const b of group.querySelectorAll('button')) b.setAttribute('aria-checked', b === btn ? 'true' : 'false');
      enh[key] = btn.dataset.value;
    });
  }

  function pick(fileList) {
    enh.files = Array.from(fileList || []);
    const big = enh.files.filter((f) => f.size > enh.limitBytes);
    $('enh-picked').textContent = enh.files.length
      ? `${enh.files.length} photo${enh.files.length > 1 ? 's' : ''} chosen` +
        (big.length ? ` · ${big.length} over the size limit will be refused` : '')
      : '';
    $('enh-start').disabled = enh.files.length === 0;
  }

  function wireDrop() {
    const dz = $('enh-dropzone');
    $('enh-files').addEventListener('change', (ev) => pick(ev.target.files));
    dz.addEventListener('dragover', (ev) => { ev.preventDefault(); dz.classList.add('over'); });
    dz.addEventListener('dragleave', () => dz.classList.remove('over'));
    dz.addEventListener('drop', (ev) => {
      ev.preventDefault();
      dz.classList.remove('over');
      pick(ev.dataTransfer.files);
    });
  }

  /* ------------------------------------------------------------------- submit ------------- */

  function form(files, field) {
    const fd = new FormData();
    for (const f of files) fd.append(field, f, f.name);
    fd.append('quality', enh.quality);
    fd.append('upscale', enh.scale);
    fd.append('output_format', $('enh-format').value);
    fd.append('face_enhance', $('enh-face').checked ? 'true' : 'false');
    fd.append('ensemble', $('enh-ensemble').checked ? 'true' : 'false');
    return fd;
  }

  async function start() {
    const files = enh.files.slice();
    if (!files.length) return;
    const btn = $('enh-start');
    btn.disabled = true;
    btn.classList.add('busy');
    message();
    try {
      if (files.length === 1) {
        const r = await api('/api/v1/enhance', { method: 'POST', body: form(files, 'file') });
        if (!r.ok) return message('error', ...errorOf(r));
        addJob(r.body.job_id, files[0]);
        $('enh-zip').hidden = true;
      } else {
        for (let i = 0; i < files.length; i += 50) {
          const chunk = files.slice(i, i + 50);
          const r = await api('/api/v1/enhance/batch', { method: 'POST', body: form(chunk, 'files') });
          if (!r.ok) return message('error', ...errorOf(r));
          r.body.job_ids.forEach((id, k) => addJob(id, chunk[k]));
          showZip(r.body.batch_id);
        }
      }
    } finally {
      btn.classList.remove('busy');
      btn.disabled = enh.files.length === 0;
    }
  }

  /* The batch ZIP is fetched with the key, then offered as a blob: URL. */
  function showZip(batchId) {
    const a = $('enh-zip');
    a.hidden = false;
    a.dataset.batch = batchId;
    a.textContent = 'Download all (ZIP)';
    a.removeAttribute('href');
  }

  async function downloadZip(ev) {
    const a = $('enh-zip');
    if (a.getAttribute('href')) return;   // second click: the browser downloads it
    ev.preventDefault();
    const res = await fetch(`/api/v1/batch/${a.dataset.batch}/results`, { headers: authHeaders() });
    if (!res.ok) {
      return message('error', 'No finished result yet', 'The ZIP holds the results that have finished; try again when one has.');
    }
    a.href = URL.createObjectURL(await res.blob());
    a.download = `batch_${a.dataset.batch}.zip`;
    a.click();
  }

  /* ------------------------------------------------------------------- job rows ----------- */

  function addJob(id, file) {
    $('enh-empty').hidden = true;
    const li = document.createElement('li');
    li.className = 'enh-job';
    li.dataset.job = id;
    li.innerHTML = '<img class="thumb" alt=""><div class="meta"><div class="name"></div>' +
      '<div class="bar"><i></i></div><div class="stage muted"></div></div>' +
      '<span class="badge busy">QUEUED</span><button type="button" class="secondary compare-btn" disabled>Compare</button>';
    li.querySelector('.name').textContent = file.name;
    const before = URL.createObjectURL(file);
    li.querySelector('.thumb').src = before;
    li.querySelector('.compare-btn').addEventListener('click', () => select(id));
    $('enh-jobs').prepend(li);
    const job = { file, row: li, info: null, done: false, ws: null, poll: null, beforeUrl: before, afterUrl: null };
    enh.jobs.set(id, job);
    follow(id, job);
  }

  function render(job, info) {
    job.info = info;
    const li = job.row;
    const pct = Math.max(0, Math.min(100, info.progress | 0));
    li.querySelector('.bar i').style.width = pct + '%';
    li.querySelector('.bar').setAttribute('aria-valuenow', String(pct));
    const badge = li.querySelector('.badge');
    badge.textContent = info.status;
    badge.className = 'badge ' + (info.status === 'SUCCESS' ? 'ok'
      : info.status === 'FAILURE' || info.status === 'CANCELLED' ? 'bad' : 'busy');
    let stage = info.stage ? `${pct}% · ${info.stage}` : `${pct}%`;
    if (info.status === 'FAILURE' || info.status === 'CANCELLED') stage = info.error_message || info.status.toLowerCase();
    if (info.status === 'SUCCESS' && info.result) {
      const r = info.result;
      const faces = info.face_enhance ? ` · ${r.faces_found || 0} face${r.faces_found === 1 ? '' : 's'} enhanced` : '';
      stage = `${r.width}×${r.height} · ${Math.round(r.bytes / 1024)} KB${faces}`;
    }
    li.querySelector('.stage').textContent = stage;
    li.dataset.status = info.status;
    const terminal = ['SUCCESS', 'FAILURE', 'CANCELLED'].includes(info.status);
    if (terminal && !job.done) {
      job.done = true;
      stopFollowing(job);
      li.querySelector('.compare-btn').disabled = info.status !== 'SUCCESS';
      if (info.status === 'SUCCESS' && !enh.selected) select(info.job_id);
    }
  }

  /* ------------------------------------------------------------------- progress ----------- */

  async function wsToken() {
    if (enh.token && enh.token.until > Date.now() + 10000) return enh.token.jwt;
    const r = await api('/api/auth/token', { method: 'POST' });
    if (!r.ok || !r.body || !r.body.access_token) return null;
    enh.token = { jwt: r.body.access_token, until: Date.now() + (r.body.expires_in || 60) * 1000 };
    return enh.token.jwt;
  }

  async function follow(id, job) {
    const jwt = 'WebSocket' in window ? await wsToken() : null;
    if (!jwt) return poll(id, job);
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let gotMessage = false;
    try {
      job.ws = new WebSocket(`${proto}//${location.host}/api/v1/jobs/${id}/status?token=${encodeURIComponent(jwt)}`);
    } catch (e) {
      return poll(id, job);
    }
    job.ws.onmessage = (ev) => {
      gotMessage = true;
      job.row.dataset.via = 'websocket';
      try { render(job, JSON.parse(ev.data)); } catch (e) { /* not a status: ignore */ }
    };
    job.ws.onclose = () => {
      job.ws = null;
      if (!job.done) poll(id, job);   // no WebSocket route, or it closed early: poll instead
    };
    job.ws.onerror = () => { if (!gotMessage && job.ws) job.ws.close(); };
  }

  function poll(id, job) {
    if (job.poll || job.done) return;
    job.row.dataset.via = 'polling';
    const tick = async () => {
      const r = await api('/api/v1/jobs/' + id);
      if (r.ok && r.body) render(job, r.body);
      else if (r.status === 404) render(job, { job_id: id, status: 'FAILURE', progress: 0, error_message: 'the job is gone' });
    };
    tick();
    job.poll = setInterval(tick, 500);
  }

  function stopFollowing(job) {
    if (job.poll) clearInterval(job.poll);
    job.poll = null;
    if (job.ws) { const ws = job.ws; job.ws = null; ws.close(1000); }
  }

  /* ------------------------------------------------------------------- compare ------------ */

  async function select(id) {
    const job = enh.jobs.get(id);
    if (!job || !job.info || job.info.status !== 'SUCCESS') return;
    enh.selected = id;
    for (const li of document.querySelectorAll('.enh-job')) li.classList.toggle('selected', li.dataset.job === id);
    if (!job.afterUrl) {
      const res = await fetch(`/api/v1/jobs/${id}/result`, { headers: authHeaders() });
      if (!res.ok) return message('error', 'The result could not be fetched', `HTTP ${res.status}`);
      job.afterUrl = URL.createObjectURL(await res.blob());
    }
    // Both images fill the same box (object-fit: contain): before and after at the same size.
    $('enh-before').src = job.beforeUrl;
    $('enh-after').src = job.afterUrl;
    $('enh-compare-title').textContent = job.file.name;
    const r = job.info.result || {};
    $('enh-compare-size').textContent = ` · ${r.width}×${r.height} ${String(r.format || '').toUpperCase()}`;
    const a = $('enh-download');
    a.href = job.afterUrl;
    a.download = `enhanced_${id}.${r.format || 'jpg'}`;
    $('enh-compare-wrap').hidden = false;
  }

  function wireCompareSlider() {
    const range = $('enh-range');
    const move = () => {
      const v = Number(range.value);
      $('enh-top').style.clipPath = `inset(0 ${100 - v}% 0 0)`;
      $('enh-handle').style.left = v + '%';
    };
    range.addEventListener('input', move);
    move();
  }

  document.addEventListener('DOMContentLoaded', () => {
    wireTabs();
    wireDrop();
    wireSegmented('enh-quality', 'quality');
    wireSegmented('enh-scale', 'scale');
    wireCompareSlider();
    $('enh-start').addEventListener('click', start);
    $('enh-zip').addEventListener('click', downloadZip);
  });
})();
