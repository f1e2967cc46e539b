// docs.test.js - the browser test of GET /docs (issue 8 §3), run by `node --test` from tests/web
// (make web-test). It starts the real binary ($MODELD_BIN) on a free port with a fresh data dir,
// opens /docs in Debian's chromium through playwright-core with every request to another host
// refused, and checks that swagger-ui renders one operation block per route of /openapi.json,
// that it asked nothing of any other host, and that nothing broke the page's
// Content-Security-Policy. A screenshot is saved in tests/web/artifacts/docs.png.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const BIN = process.env.MODELD_BIN;
const ARTIFACTS = path.join(__dirname, 'artifacts');
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let server, dataDir, profileDir, context, base;
let serverLog = '';

function startServer() {
  return new Promise((resolve, reject) => {
    server = spawn(BIN, ['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => reject(new Error('modeld did not start in 60 s:\n' + serverLog)), 60000);
    const onData = (chunk) => {
      serverLog += chunk.toString();
      const port = serverLog.match(/"msg":"listening"[^\n]*"port":(\d+)/);
      if (port) {
        clearTimeout(timer);
        resolve(`http://127.0.0.1:${port[1]}`);
      }
    };
    server.stdout.on('data', onData);
    server.stderr.on('data', onData);
    server.on('exit', (code) => { clearTimeout(timer); reject(new Error(`modeld exited (${code}):\n${serverLog}`)); });
  });
}

before(async () => {
  assert.ok(BIN, 'set MODELD_BIN to the modeld binary (make web-test does)');
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'modeld-docs-'));
  profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'modeld-chromium-'));
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  base = await startServer();
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: '/usr/bin/chromium', args: CHROMIUM_FLAGS, viewport: { width: 1280, height: 900 },
  });
});

after(async () => {
  if (context) await context.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', (code) => r(code)));
    server.removeAllListeners('exit');
    server.kill('SIGTERM');
    const code = await exited;
    assert.equal(code, 0, 'modeld did not stop cleanly:\n' + serverLog.slice(-4000));
  }
  for (const d of [dataDir, profileDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
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
