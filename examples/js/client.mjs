#!/usr/bin/env node
// client.mjs - a small JavaScript client of modeld's business predictions (issue 11), with the
// fetch of Node 20 (no dependency). Use it as a module (ModeldClient) or run it: each step prints
// one JSON line of what it got.
//
//   export MODELD_URL=http://127.0.0.1:8080 MODELD_KEY=mdk_...       # a write key (admin for all)
//   node examples/js/client.mjs single batch bulk                    # the default steps
//   node examples/js/client.mjs bulk --callback-url http://127.0.0.1:9000/hook
//   MODELD_ADMIN_KEY=mdk_... node examples/js/client.mjs schedule retrain --retrain-csv tests/fixtures/predict/retrain/churn.csv
//
// Steps and routes are those of examples/python/client.py (see examples/README.md): single
// (POST /api/{model}), batch (POST /api/{model}/batch), bulk (POST /api/{model}/bulk with a
// callback_url, then GET /api/v1/jobs/{id} and its /result CSV), schedule (POST
// /api/admin/datasets, POST /api/admin/schedule, GET /api/admin/schedules, DELETE
// /api/admin/schedules/{id}) and retrain (POST /api/admin/datasets, POST /api/admin/retrain,
// the job, GET /api/models/{model}). Admin steps use MODELD_ADMIN_KEY (default MODELD_KEY).
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createHmac, timingSafeEqual } from 'node:crypto';

/** A non-2xx answer: status and the error's code, field and message. */
export class ModeldError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(`HTTP ${status} ${e.code} (field ${e.field}): ${e.message}`);
    Object.assign(this, { status, code: e.code, field: e.field ?? null, detail: e.message });
  }
}

export class ModeldClient {
  constructor(url, key, adminKey) {
    this.url = url.replace(/\/+$/, '');
    this.key = key;
    this.adminKey = adminKey || key;
  }

  /** fetch with the key; opts.json is sent as JSON; returns the Response of a 2xx answer. */
  async call(method, path, opts = {}) {
    const headers = { Authorization: 'Bearer ' + (opts.admin ? this.adminKey : this.key), ...(opts.headers || {}) };
    let body = opts.body;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers['Content-Type'] = 'application/json';
    }
    const r = await fetch(this.url + path, { method, headers, body });
    if (!r.ok) {
      let b = null;
      try { b = await r.json(); } catch { /* not JSON */ }
      throw new ModeldError(r.status, b);
    }
    return r;
  }

  async model(name) { return (await (await this.call('GET', '/api/models/' + name)).json()).model; }

  async predict(model, features, options) {
    return (await this.call('POST', '/api/' + model, { json: options ? { features, options } : { features } })).json();
  }

  async batch(model, items, options) {
    return (await this.call('POST', `/api/${model}/batch`, { json: options ? { items, options } : { items } })).json();
  }

  /** A CSV (string or bytes) as a multipart upload, with an optional callback_url field. */
  async bulk(model, csv, callbackUrl, filename = 'rows.csv') {
    const form = new FormData();
    form.append('file', new Blob([csv], { type: 'text/csv' }), filename);
    if (callbackUrl) form.append('callback_url', callbackUrl);
    return (await this.call('POST', `/api/${model}/bulk`, { body: form })).json();
  }

  async job(id, admin) { return (await this.call('GET', '/api/v1/jobs/' + id, { admin })).json(); }

  async waitJob(id, admin = false, timeoutMs = 600000) {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const j = await this.job(id, admin);
      if (['SUCCESS', 'FAILURE', 'CANCELLED'].includes(j.status)) return j;
      if (Date.now() > end) throw new Error(`job ${id} still ${j.status}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async jobResultCsv(id) { return (await this.call('GET', `/api/v1/jobs/${id}/result`)).text(); }

  async uploadDataset(csv, name) {
    return (await this.call('POST', '/api/admin/datasets?name=' + encodeURIComponent(name),
      { admin: true, body: csv, headers: { 'Content-Type': 'text/csv' } })).json();
  }

  async schedule(model, cron, input, callbackUrl) {
    const json = { model, cron, input };
    if (callbackUrl) json.callback_url = callbackUrl;
    return (await this.call('POST', '/api/admin/schedule', { admin: true, json })).json();
  }

  async schedules() { return (await this.call('GET', '/api/admin/schedules', { admin: true })).json(); }

  async deleteSchedule(id) { return (await this.call('DELETE', '/api/admin/schedules/' + id, { admin: true })).json(); }

  async retrain(model, data, params) {
    return (await this.call('POST', '/api/admin/retrain', { admin: true, json: params ? { model, data, params } : { model, data } })).json();
  }
}

/** The id in POST /api/admin/datasets' answer. */
export const datasetId = (a) => a.dataset_id || a.id;

/** True when X-Modeld-Signature (t=..,v1=..) is HMAC-SHA256 of "<t>." + body with the secret. */
export function verifySignature(secret, header, body, nowS = Date.now() / 1000, maxAge = 300) {
  const f = Object.fromEntries(header.split(',').map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]));
  const mac = createHmac('sha256', secret).update(f.t + '.').update(body).digest('hex');
  return mac.length === (f.v1 || '').length && timingSafeEqual(Buffer.from(mac), Buffer.from(f.v1)) &&
    Math.abs(nowS - Number(f.t)) <= maxAge;
}

/** RFC 4180 CSV into rows of strings (quotes, "" escapes, embedded newlines). */
export function parseCsv(text) {
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

/** CSV rows as feature objects typed by the model's input schema (empty cells left out; a
 *  cell that is not a number is sent as it is, so the server names the field). */
export function typedRows(schema, text) {
  const types = Object.fromEntries((schema.columns || []).map((c) => [c.name, c.type]));
  const [head, ...rows] = parseCsv(text);
  return rows.map((r) => {
    const o = {};
    head.forEach((h, i) => {
      const v = r[i] ?? '';
      if (v === '') return;
      const n = Number(v);
      o[h] = (types[h] === 'number' || types[h] === 'integer') && v.trim() !== '' && Number.isFinite(n) ? n : v;
    });
    return o;
  });
}

const STEPS = {
  async single(c, a, rows) {
    const ans = await c.predict(a.model, rows[0]);
    return { prediction: ans.prediction, prediction_id: ans.prediction_id, version: ans.version,
      reasons: (ans.explanation || {}).reasons ?? null };
  },
  async batch(c, a, rows) {
    const ans = await c.batch(a.model, rows);
    return { count: ans.count, failed: ans.failed, first: ans.predictions.length ? ans.predictions[0].prediction : null };
  },
  async bulk(c, a, _rows, text) {
    const job = await c.bulk(a.model, text, a.callbackUrl, basename(a.csv));
    const done = await c.waitJob(job.job_id);
    const out = { job_id: job.job_id, status: done.status };
    if (done.status === 'SUCCESS') {
      const [head, ...res] = parseCsv(await c.jobResultCsv(job.job_id));
      const col = (name) => head.indexOf(name);
      out.rows = res.length;
      out.errors = res.filter((r) => r[col('error_code')]).map((r) => ({ row: Number(r[col('row')]),
        field: r[col('error_field')], error: r[col('error')] }));
    }
    return out;
  },
  async schedule(c, a, _rows, text) {
    const ds = await c.uploadDataset(text, basename(a.csv));
    const sc = await c.schedule(a.model, a.cron, datasetId(ds), a.callbackUrl);
    const listed = (await c.schedules()).schedules.some((s) => s.schedule_id === sc.schedule_id);
    const out = { dataset_id: datasetId(ds), schedule_id: sc.schedule_id, next_run: sc.next_run, listed };
    if (!a.keepSchedule) out.deleted = (await c.deleteSchedule(sc.schedule_id)).deleted;
    return out;
  },
  async retrain(c, a) {
    if (!a.retrainCsv) throw new Error('retrain: give --retrain-csv (the schema\'s columns and the label column)');
    const ds = await c.uploadDataset(readFileSync(a.retrainCsv), basename(a.retrainCsv));
    const job = await c.retrain(a.model, datasetId(ds));
    const done = await c.waitJob(job.job_id, true);
    const m = await c.model(a.model);
    return { dataset_id: datasetId(ds), job_id: job.job_id, status: done.status, error: done.error ?? null,
      active_version: m.active_version, versions: m.versions };
  },
};

async function main() {
  const here = dirname(fileURLToPath(import.meta.url));
  const { values: v, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      url: { type: 'string', default: process.env.MODELD_URL || 'http://127.0.0.1:8080' },
      key: { type: 'string', default: process.env.MODELD_KEY },
      'admin-key': { type: 'string', default: process.env.MODELD_ADMIN_KEY },
      model: { type: 'string', default: 'churn' },
      csv: { type: 'string', default: join(here, '..', 'data', 'churn.csv') },
      'callback-url': { type: 'string', default: process.env.MODELD_CALLBACK_URL },
      cron: { type: 'string', default: '0 3 * * *' },
      'keep-schedule': { type: 'boolean', default: false },
      'retrain-csv': { type: 'string', default: process.env.RETRAIN_CSV },
    },
  });
  const steps = positionals.length ? positionals : ['single', 'batch', 'bulk'];
  for (const s of steps) if (!STEPS[s]) throw new Error(`unknown step ${s} (${Object.keys(STEPS).join(', ')})`);
  if (!v.key) throw new Error('give --key or set MODELD_KEY');
  const a = { model: v.model, csv: v.csv, callbackUrl: v['callback-url'], cron: v.cron,
    keepSchedule: v['keep-schedule'], retrainCsv: v['retrain-csv'] };
  const c = new ModeldClient(v.url, v.key, v['admin-key']);
  const text = readFileSync(a.csv, 'utf8');
  const rows = typedRows((await c.model(a.model)).manifest.input_schema, text);
  let rc = 0;
  for (const s of steps) {
    let out;
    try {
      out = { step: s, ok: true, ...(await STEPS[s](c, a, rows, text)) };
    } catch (e) {
      if (!(e instanceof ModeldError)) throw e;
      out = { step: s, ok: false, status: e.status, code: e.code, field: e.field, message: e.detail };
      rc = 1;
    }
    console.log(JSON.stringify(out));
  }
  return rc;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then((rc) => { process.exitCode = rc; }, (e) => { console.error(e.message); process.exitCode = 2; });
}
