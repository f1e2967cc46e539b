// docs.test.js - the browser test of GET /docs (issue 8 §3), run by `node --test` from tests/web
// (make web-test). It starts the real binary ($MODELD_BIN) on a free port with a fresh data dir,
// opens /docs in Debian's chromium through playwright-core with every request to another host
// refused, and checks that swagger-ui renders one operation block per route of /openapi.json,
// that it asked nothing of any other host, and that nothing broke the page's
// Content-Security-Policy. A screenshot is saved in tests/web/artifacts/docs.png.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { ARTIFACTS, Modeld, Browser } = require('./helpers');

let modeld, browser, context, base;

before(async () => {
  modeld = new Modeld({ prefix: 'modeld-docs-' });
  base = await modeld.start();
  browser = new Browser();
  context = await browser.launch({ viewport: { width: 1280, height: 900 } });
});

after(async () => {
  if (browser) await browser.close();
  if (modeld) await modeld.stop();
});

test('/docs renders every operation from /openapi.json, offline', async () => {
  const doc = await (await fetch(base + '/openapi.json')).json();
  let operations = 0;
  for (const item of Object.values(doc.paths)) operations += Object.keys(item).length;
  assert.ok(operations >= 14, `only ${operations} operations in the document`);

  const page = await context.newPage();
  page.setDefaultTimeout(60000);
  // The machine is "offline" for the page: anything not addressed to this server is refused and
  // remembered, so a CDN, font or validator request fails the test instead of leaving.
  const foreign = [];
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(base + '/') || url.startsWith('data:')) return route.continue();
    foreign.push(url);
    return route.abort();
  });
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(String(e)));

  const res = await page.goto(base + '/docs');
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-security-policy'], /connect-src 'self'/);
  await page.waitForFunction((n) => document.querySelectorAll('.opblock').length >= n, operations);
  const blocks = await page.locator('.opblock').count();
  assert.equal(blocks, operations, 'one block per operation');
  assert.match(await page.locator('.info .title').innerText(), /modeld/);
  // Open one operation: its parameters and responses come from the descriptor.
  await page.locator('#operations-vectorize-postApiConvert .opblock-summary').click();
  await page.waitForSelector('#operations-vectorize-postApiConvert .responses-table');
  const text = await page.locator('#operations-vectorize-postApiConvert').innerText();
  assert.match(text, /invalid_parameter/);
  await page.screenshot({ path: path.join(ARTIFACTS, 'docs.png'), fullPage: false });

  if (problems.length) console.log('# console errors:', problems);
  assert.deepEqual(foreign, [], 'the page asked another host');
  assert.deepEqual(problems.filter((p) => /Content Security Policy|Refused/i.test(p)), [],
    'the page broke its Content-Security-Policy');
  await page.close();
});
