// predict.test.js - the browser test of the Predict tab (issue 11 §5), run by `node --test` from
// tests/web (make web-test): the real binary ($MODELD_BIN) serving the shipped predict models,
// Debian's chromium through playwright-core. It checks what a user sees against the API's own
// answers: the form made from churn's input schema (a field per column, categories as selects
// with the schema's values, required marks, the validation sample's values), a prediction with
// its reasons drawn as bars whose values and directions are the answer's contributions, a 400
// shown at the field it names, pricing's curve with the optimum marked, budget's allocation
// bars, demand's forecast with its band, and a pasted CSV batch with a bad row.
// A screenshot is saved in tests/web/artifacts/predict.png.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { ARTIFACTS, Modeld, Browser } = require('./helpers');

const ROOT = path.resolve(__dirname, '../..');
let modeld, browser, context, base, key, page;

before(async () => {
  modeld = new Modeld({ prefix: 'modeld-web-pred-', waitForKey: true,
    env: { MODELD_WEB_DIR: path.resolve(ROOT, 'web') } });
  base = await modeld.start();
  key = modeld.adminKey;
  browser = new Browser();
  context = await browser.launch({ viewport: { width: 1400, height: 1000 } });
  page = await context.newPage();
  page.setDefaultTimeout(30000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.errors = errors;
  await page.goto(base + '/');
  await page.fill('#api-key', key);
  await page.press('#api-key', 'Enter');
  await page.click('#tab-btn-predict');
});

after(async () => {
  if (browser) await browser.close();
  if (modeld) await modeld.stop();
});

async function apiGet(p) {
  const r = await fetch(base + p, { headers: { Authorization: 'Bearer ' + key } });
  assert.equal(r.status, 200, p);
  return r.json();
}

/* Choose a model and wait until its form is drawn. */
async function choose(name) {
  await page.waitForFunction((n) => [...document.querySelectorAll('#pred-model option')].some((o) => o.value === n), name);
  await page.selectOption('#pred-model', name);
  await page.waitForFunction((n) => document.querySelector('#pred-version').textContent !== '' &&
    sessionStorage.getItem('modeld.predictModel') === n && document.querySelector('#pred-form').children.length > 0, name);
}

/* Press Predict and return the request body the page sent and the API's answer. */
async function submit(name) {
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${base}/api/${name}` && r.request().method() === 'POST'),
    page.click('#pred-submit'),
  ]);
  return { sent: JSON.parse(resp.request().postData()), status: resp.status(), body: await resp.json() };
}

test('the model list holds the predict models that answer /api/{model}', async () => {
  const list = await apiGet('/api/models');
  await page.waitForFunction(() => document.querySelectorAll('#pred-model option[value]').length > 1);
  const shown = await page.$$eval('#pred-model option', (os) => os.map((o) => o.value));
  for (const m of ['churn', 'profitability', 'revenue-leak', 'pricing', 'budget', 'demand', 'anomaly']) {
    assert.ok(shown.includes(m), `${m} in ${shown}`);
  }
  for (const m of list.models.filter((x) => x.family !== 'predict')) assert.ok(!shown.includes(m.name), m.name);
});

test('churn: the form follows the schema, the reasons are drawn as the answer says', async () => {
  await choose('churn');
  const man = (await apiGet('/api/models/churn')).model.manifest;
  const cols = man.input_schema.columns;
  const fields = await page.$$eval('#pred-form .pfield', (fs) => fs.map((f) => ({
    field: f.dataset.field, req: !!f.querySelector('.req'), tag: f.querySelector('input, select').tagName,
    options: [...f.querySelectorAll('option')].map((o) => o.value), value: f.querySelector('input, select').value })));
  assert.deepEqual(fields.map((f) => f.field), cols.map((c) => c.name));
  const sample = man.validation.samples[0].inputs.features[0];
  for (const [i, c] of cols.entries()) {
    assert.equal(fields[i].req, !!c.required, c.name);
    if (c.type === 'category') {
      assert.equal(fields[i].tag, 'SELECT', c.name);
      assert.deepEqual(fields[i].options.filter((o) => o !== ''), c.values, c.name);
      assert.equal(fields[i].value, c.values[sample[c.index]], c.name);
    } else {
      assert.equal(fields[i].tag, 'INPUT', c.name);
      assert.equal(Number(fields[i].value), sample[c.index], c.name);
    }
  }

  const { sent, status, body } = await submit('churn');
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(sent.features.contract, 'Month-to-month');
  await page.waitForSelector('#pred-reasons svg .bar-row');
  const p = body.prediction;
  assert.equal(await page.textContent('.pred-fact[data-key="probability"] dd'), (p.probability * 100).toFixed(1) + ' %');
  assert.equal(await page.textContent('.pred-fact[data-key="band"] dd'), p.band);
  const bars = await page.$$eval('#pred-reasons svg .bar-row', (gs) => gs.map((g) => {
    const r = g.querySelector('rect');
    return { label: g.dataset.label, value: Number(g.dataset.value), x: +r.getAttribute('x'),
      w: +r.getAttribute('width'), cls: r.getAttribute('class') };
  }));
  const axis = await page.$eval('#pred-reasons svg line.axis', (l) => +l.getAttribute('x1'));
  const want = Object.entries(body.explanation.contributions).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1])).slice(0, 12);
  assert.deepEqual(bars.map((b) => b.label), want.map((w) => w[0]));
  for (const [i, b] of bars.entries()) {
    assert.equal(b.value, want[i][1], b.label);
    if (b.value < 0) {
      assert.match(b.cls, /neg/);
      assert.ok(Math.abs(b.x + b.w - axis) < 0.01, `${b.label} ends at the axis`);
    } else {
      assert.match(b.cls, /pos/);
      assert.ok(Math.abs(b.x - axis) < 0.01, `${b.label} starts at the axis`);
    }
  }
  // the longest bar is the largest |contribution|, lengths in proportion
  assert.ok(Math.abs(bars[1].w / bars[0].w - Math.abs(want[1][1] / want[0][1])) < 1e-3);
  await page.screenshot({ path: path.join(ARTIFACTS, 'predict.png'), fullPage: true });
});

test('a 400 is shown next to the field it names', async () => {
  await choose('churn');
  await page.fill('#pf-female', '7');
  const { status, body } = await submit('churn');
  assert.equal(status, 400);
  assert.equal(body.error.field, 'female');
  const msg = await page.waitForSelector('.pfield[data-field="female"] .field-error');
  assert.equal(await msg.textContent(), body.error.message);
  assert.equal(await page.$$eval('#pred-form .field-error', (e) => e.length), 1);
  assert.match(await page.textContent('#pred-messages'), /female/);
  // fixed: the error goes away
  await page.fill('#pf-female', '0');
  assert.equal((await submit('churn')).status, 200);
  assert.equal(await page.$$eval('#pred-form .field-error', (e) => e.length), 0);
});

test('the observed outcome of a prediction is sent as feedback', async () => {
  await choose('churn');
  const { body } = await submit('churn');
  await page.waitForSelector('#pred-feedback:not([hidden]) select#pf-actual');
  const man = (await apiGet('/api/models/churn')).model.manifest;
  assert.deepEqual(await page.$$eval('#pf-actual option', (os) => os.map((o) => o.value)), man.training.label.values);
  await page.selectOption('#pf-actual', 'Yes');
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${base}/api/churn/feedback`),
    page.click('#pred-feedback-send'),
  ]);
  assert.equal(resp.status(), 200);
  await page.waitForFunction(() => /Recorded/.test(document.querySelector('#pred-feedback-state').textContent));
  const hist = await apiGet('/api/churn/history?limit=1000');
  const item = hist.items.find((i) => i.prediction_id === body.prediction_id);
  assert.equal(item.actual, 'Yes');
});

test('pricing: the price-response curve with the optimum marked', async () => {
  await choose('pricing');
  await page.click('#pred-form details summary');
  await page.fill('#pf-opt-steps', '41');
  const { sent, status, body } = await submit('pricing');
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(sent.options.steps, 41);
  await page.waitForSelector('#pred-task svg.pricing');
  assert.equal(await page.getAttribute('#pred-task path.series', 'data-points'), '41');
  assert.equal(Number(await page.getAttribute('#pred-task g.marker', 'data-x')), body.prediction.optimum.price);
  assert.equal(Number(await page.getAttribute('#pred-task g.marker', 'data-y')), body.prediction.optimum.objective);
  assert.ok(await page.$('#pred-reasons svg .bar-row'));

  // an option the server refuses: its folded field is opened and named
  await page.fill('#pf-opt-min_price', '-1');
  await page.click('#pred-form details summary'); // fold it again
  assert.equal(await page.isVisible('#pf-opt-min_price'), false);
  const bad = await submit('pricing');
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.field, 'min_price');
  const msg = await page.waitForSelector('.pfield[data-field="min_price"] .field-error');
  assert.equal(await msg.isVisible(), true);
  assert.equal(await msg.textContent(), bad.body.error.message);
});

test('budget: allocation bars per channel; a bad bound is shown at its channel', async () => {
  await choose('budget');
  await page.fill('#pf-total', '120');
  let r = await submit('budget');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  await page.waitForSelector('#pred-task svg.allocation');
  const bars = await page.$$eval('#pred-task svg .bar-row', (gs) => gs.map((g) => [g.dataset.label, Number(g.dataset.value)]));
  assert.deepEqual(bars, r.body.prediction.allocation.map((a) => [a.channel, a.spend]));
  assert.ok(Math.abs(bars.reduce((a, b) => a + b[1], 0) - 120) < 1e-6);
  assert.equal(await page.isVisible('#pred-feedback'), false); // budget is not retrained from feedback

  await page.uncheck('#pf-ch-video');
  await page.fill('#pf-ch-search-min', '-5');
  r = await submit('budget');
  assert.equal(r.status, 400);
  assert.equal(r.sent.features.channels.video, undefined);
  assert.ok(r.body.error.field.startsWith('channels'), r.body.error.field);
  await page.waitForSelector('#pred-form .field-error');
  assert.equal(await page.textContent('#pred-form .field-error'), r.body.error.message);
});

test('demand: the forecast line after the history, with its interval band', async () => {
  await choose('demand');
  await page.fill('#pf-horizon', '10');
  await page.selectOption('#pf-level', '0.9');
  const { status, body } = await submit('demand');
  assert.equal(status, 200, JSON.stringify(body));
  await page.waitForSelector('#pred-task svg.demand');
  assert.equal(body.prediction.forecast.length, 10);
  assert.equal(await page.getAttribute('#pred-task path.forecast', 'data-points'), '11'); // joined to the last history day
  const band = await page.getAttribute('#pred-task polygon.band', 'points');
  assert.equal(band.trim().split(/\s+/).length, 20);
  assert.match(await page.getAttribute('#pred-task polygon.band', 'data-label'), /90 %/);

  // weather for the second forecast day only: sent as [null, {...}]
  await page.click('#pred-form details summary');
  assert.equal(await page.$$eval('#pred-form .weather-row:not(.head)', (r) => r.length), 10);
  await page.fill('#pf-w2-temp', '88');
  await page.fill('#pf-w2-percip', '0.2');
  const r = await submit('demand');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.sent.features.weather, [null, { temp: 88, percip: 0.2 }]);
  // a shorter horizon keeps the typed day and drops the others
  await page.fill('#pf-horizon', '3');
  await page.dispatchEvent('#pf-horizon', 'change');
  assert.equal(await page.$$eval('#pred-form .weather-row:not(.head)', (rows) => rows.length), 3);
  assert.equal(await page.inputValue('#pf-w2-temp'), '88');
});

test('batch: a pasted CSV with a bad row gives a table of results', async () => {
  await choose('churn');
  await page.click('#pred-batch-example');
  const csv = await page.inputValue('#pred-batch-text');
  const [head, row] = csv.trim().split('\n');
  const bad = row.replace(/^1,|^0,/, '9,'); // female out of range
  await page.fill('#pred-batch-text', [head, row, bad, row].join('\n'));
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${base}/api/churn/batch`),
    page.click('#pred-batch-submit'),
  ]);
  const ans = await resp.json();
  assert.equal(ans.count, 2);
  assert.equal(ans.failed.length, 1);
  await page.waitForSelector('#pred-batch-table tbody tr');
  const rows = await page.$$eval('#pred-batch-table tbody tr', (trs) => trs.map((t) => ({
    i: t.dataset.index, failed: t.classList.contains('failed'), err: t.querySelector('.err').textContent })));
  assert.deepEqual(rows.map((r) => r.i), ['0', '1', '2']);
  assert.deepEqual(rows.map((r) => r.failed), [false, true, false]);
  assert.match(rows[1].err, /^female: /);
  assert.match(await page.textContent('#pred-batch-summary'), /3 rows: 2 predicted, 1 failed/);
});

test('batch: an uploaded JSON-lines file of budget requests', async () => {
  await choose('budget');
  const lines = [{ total: 100 }, { total: -1 }, { total: 80, channels: { search: {}, email: { max: 5 } } }]
    .map((o) => JSON.stringify(o)).join('\n');
  await page.setInputFiles('#pred-batch-file', { name: 'budget.jsonl', mimeType: 'text/plain', buffer: Buffer.from(lines) });
  await page.waitForFunction(() => document.querySelector('#pred-batch-text').value.includes('"total":80'));
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${base}/api/budget/batch`),
    page.click('#pred-batch-submit'),
  ]);
  const ans = await resp.json();
  assert.equal(ans.count, 2);
  assert.deepEqual(ans.failed.map((f) => [f.index, f.error.field]), [[1, 'total']]);
  await page.waitForSelector('#pred-batch-table tbody tr.failed');
  const failed = await page.$$eval('#pred-batch-table tbody tr', (trs) => trs.map((t) => t.classList.contains('failed')));
  assert.deepEqual(failed, [false, true, false]);
  const head = await page.$$eval('#pred-batch-table thead th', (ths) => ths.map((t) => t.textContent));
  assert.ok(head.includes('predicted_total'), head.join());
  assert.ok(head.includes('spend.search'), head.join());
  const col = head.indexOf('spend.email');
  const email = await page.$eval(`#pred-batch-table tbody tr[data-index="2"] td:nth-child(${col + 1})`, (td) => td.textContent);
  const want = ans.predictions.find((p) => p.index === 2).prediction.allocation.find((a) => a.channel === 'email');
  assert.equal(Number(email), Number(want.spend.toFixed(2)));
  assert.deepEqual(page.errors, []);
});
