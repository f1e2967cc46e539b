// models.test.js - the browser test of the Models tab (issue 11 §5), run by `node --test` from
// tests/web (make web-test): the real binary ($MODELD_BIN) with the shipped models, Debian's
// chromium through playwright-core. After a few predictions made through the API it checks that
// the page lists every model of the registry with its state and its versions' states as
// GET /api/models/{name} says, the manifest's metrics, the drift level of GET /api/{m}/drift,
// a history chart whose buckets count exactly the predictions made and carry their mean score;
// that an admin key gets the actions and they work (a canary started and ended, an older version
// activated, then rolled back), that a version retrained from a stored dataset shows its lineage
// and metrics beside the active's, and that a read key sees the same page without any action.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { ARTIFACTS, Modeld, Browser } = require('./helpers');

const ROOT = path.resolve(__dirname, '../..');
let modeld, browser, context, base, admin, reader;

const CHURN = { female: 1, senior_citizen: 0, partner: 1, dependents: 0, tenure: 1, phone_service: 0,
  multiple_lines: 'No phone service', internet_service: 'DSL', online_security: 'No', online_backup: 'Yes',
  device_protection: 'No', tech_support: 'No', streaming_tv: 'No', streaming_movies: 'No',
  contract: 'Month-to-month', paperless_billing: 1, payment_method: 'Electronic check', monthly_charges: 29.85 };

async function call(p, key, body) {
  const init = { headers: { Authorization: 'Bearer ' + key } };
  if (body !== undefined) {
    init.method = 'POST';
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(base + p, init);
  assert.equal(r.status, 200, p + ': ' + r.status);
  return r.json();
}

before(async () => {
  modeld = new Modeld({ prefix: 'modeld-web-models-', waitForKey: true,
    env: { MODELD_WEB_DIR: path.resolve(ROOT, 'web') } });
  base = await modeld.start();
  admin = modeld.adminKey;
  const k = spawnSync(process.env.MODELD_BIN, ['keys', 'create', '--role', 'read', '--name', 'reader',
    '--data-dir', modeld.dataDir], { encoding: 'utf8' });
  assert.equal(k.status, 0, k.stderr);
  reader = k.stdout.match(/\b(mdk_[A-Za-z0-9_-]+)/)[1];
  for (let i = 0; i < 3; i++) await call('/api/churn', admin, { features: { ...CHURN, tenure: 1 + 10 * i } });
  browser = new Browser();
  context = await browser.launch({ viewport: { width: 1400, height: 1000 } });
});

after(async () => {
  if (browser) await browser.close();
  if (modeld) await modeld.stop();
});

async function openModels(key) {
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  await page.goto(base + '/#models');
  await page.fill('#api-key', key);
  await page.press('#api-key', 'Enter');
  await page.waitForFunction(() => {
    const cards = document.querySelectorAll('.model-card');
    return cards.length > 0 && [...cards].every((c) => c.dataset.loaded === 'true');
  });
  return page;
}

test('every model of the registry with its state, versions, metrics, drift and history', async () => {
  const page = await openModels(admin);
  const list = (await call('/api/models', admin)).models;
  const names = await page.$$eval('.model-card', (cs) => cs.map((c) => c.dataset.model));
  assert.deepEqual([...names].sort(), list.map((m) => m.name).sort());
  for (const m of list) {
    const card = `.model-card[data-model="${m.name}"]`;
    assert.equal(await page.textContent(`${card} .model-head .state`), m.state, m.name);
    const rows = await page.$$eval(`${card} table.versions tbody tr`, (trs) => trs.map((t) =>
      [t.dataset.version, t.querySelector('.state').textContent]));
    assert.deepEqual(rows, m.versions.map((v) => [v.version, v.state]), m.name);
    // admin: every model can be rolled back from its card
    assert.ok(await page.$(`${card} [data-action="rollback"]`), m.name);
  }
  const churn = '.model-card[data-model="churn"]';
  const man = (await call('/api/models/churn', admin)).model.manifest;
  assert.equal(await page.textContent(`${churn} [data-metric="roc_auc"]`), `roc_auc ${man.metrics.roc_auc.toFixed(3)}`);
  const drift = await call('/api/churn/drift', admin);
  assert.equal(await page.getAttribute(`${churn} .drift`, 'data-level'), drift.status);

  // the history chart counts the three predictions, with their mean probability
  const buckets = await page.$$eval(`${churn} svg.history .hist-bucket`, (gs) => gs.map((g) =>
    ({ count: Number(g.dataset.count), mean: g.dataset.mean })));
  assert.equal(buckets.length, 24);
  assert.equal(buckets.reduce((a, b) => a + b.count, 0), 3);
  const hist = (await call('/api/churn/history?limit=1000', admin)).items;
  const full = buckets.filter((b) => b.count > 0);
  const points = await page.$$eval(`${churn} svg.history circle.hist-point`, (c) => c.length);
  assert.equal(points, full.length);
  assert.ok(points >= 1);
  const mean = hist.reduce((a, h) => a + h.outputs.prediction.probability, 0) / hist.length;
  if (full.length === 1) assert.ok(Math.abs(Number(full[0].mean) - mean) < 1e-9);
  // a model without predictions says so
  assert.match(await page.textContent('.model-card[data-model="profitability"] .history-wrap'), /No logged predictions/);
  await page.screenshot({ path: path.join(ARTIFACTS, 'models.png'), fullPage: true });

  // one more prediction shows up after a refresh
  await call('/api/churn', admin, { features: CHURN });
  await page.click('#models-refresh');
  await page.waitForFunction((sel) => {
    const c = document.querySelector(sel);
    return c && c.dataset.loaded === 'true' &&
      [...c.querySelectorAll('.hist-bucket')].reduce((a, g) => a + Number(g.dataset.count), 0) === 4;
  }, churn);
  await page.close();
});

/* Wait until the card's row of version v shows state. */
function rowState(page, card, v, state) {
  return page.waitForFunction(([sel, ver, st]) => {
    const tr = document.querySelector(`${sel} tr[data-version="${ver}"] .state`);
    return tr && tr.textContent === st;
  }, [card, v, state]);
}

test('admin actions: a canary started and ended, an older version activated, then rolled back', async () => {
  const page = await openModels(admin);
  const before = (await call('/api/models/vectorize-classifier', admin)).model;
  const older = before.versions.find((v) => v.version !== before.active_version);
  assert.ok(older, 'vectorize-classifier ships two versions');
  const card = '.model-card[data-model="vectorize-classifier"]';
  await page.click(`${card} tr[data-version="${older.version}"] [data-action="canary"]`);
  await rowState(page, card, older.version, 'CANARY');
  let m = (await call('/api/models/vectorize-classifier', admin)).model;
  assert.equal(m.canary_version, older.version);
  assert.equal(m.canary_percent, 10);
  assert.ok(await page.$(`${card} [data-action="promote"]`));
  await page.click(`${card} [data-action="end-canary"]`);
  await page.waitForFunction((sel) => !document.querySelector(`${sel} [data-action="end-canary"]`) &&
    document.querySelector(sel).dataset.loaded === 'true', card);
  m = (await call('/api/models/vectorize-classifier', admin)).model;
  assert.equal(m.canary_version, null);

  await page.click(`${card} tr[data-version="${older.version}"] [data-action="activate"]`);
  await rowState(page, card, older.version, 'ACTIVE');
  assert.equal((await call('/api/models/vectorize-classifier', admin)).model.active_version, older.version);
  await page.click(`${card} [data-action="rollback"]`);
  await rowState(page, card, before.active_version, 'ACTIVE');
  assert.equal((await call('/api/models/vectorize-classifier', admin)).model.active_version, before.active_version);
  await page.close();
});

test('a retrained version is shown with its lineage and metrics beside the active', async () => {
  // rows of churn's validation split: its test split would be left out whole (leakage)
  const csv = fs.readFileSync(path.join(ROOT, 'tests/fixtures/predict/retrain/churn.csv'));
  let r = await fetch(base + '/api/admin/datasets?name=churn-validation.csv', { method: 'POST', body: csv,
    headers: { Authorization: 'Bearer ' + admin, 'Content-Type': 'text/csv' } });
  assert.equal(r.status, 201);
  const ds = (await r.json()).dataset_id;
  r = await fetch(base + '/api/admin/retrain', { method: 'POST', body: JSON.stringify({ model: 'churn', data: ds }),
    headers: { Authorization: 'Bearer ' + admin, 'Content-Type': 'application/json' } });
  assert.equal(r.status, 202);
  const job = (await r.json()).job_id;
  let j;
  for (let i = 0; i < 600; i++) {
    j = await call('/api/v1/jobs/' + job, admin);
    if (['SUCCESS', 'FAILURE', 'CANCELLED'].includes(j.status)) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  assert.equal(j.status, 'SUCCESS', JSON.stringify(j));
  const m = (await call('/api/models/churn', admin)).model;
  const fresh = m.versions.find((v) => v.version !== m.active_version);
  assert.ok(fresh && ['CANARY', 'STANDBY'].includes(fresh.state), JSON.stringify(m.versions));
  const man = (await call('/api/models/churn?version=' + fresh.version, admin)).model.manifest;

  const page = await openModels(admin);
  const row = `.model-card[data-model="churn"] .other-version[data-version="${fresh.version}"]`;
  await page.waitForSelector(row);
  assert.equal(await page.textContent(`${row} .state`), fresh.state);
  assert.match(await page.textContent(row), new RegExp(`retrained from ${ds} \\(parent ${m.active_version}\\)`));
  assert.equal(Number(await page.getAttribute(`${row} [data-metric="roc_auc"]`, 'data-value')), man.metrics.roc_auc);
  await page.close();
});

test('a read key sees every model and no action', async () => {
  const page = await openModels(reader);
  const list = (await call('/api/models', reader)).models;
  assert.equal(await page.$$eval('.model-card', (c) => c.length), list.length);
  assert.equal(await page.$$eval('[data-action]', (b) => b.length), 0);
  assert.match(await page.textContent('#models-role'), /admin key/);
  assert.ok(await page.$('.model-card[data-model="churn"] svg.history .hist-point'));
  await page.close();
});
