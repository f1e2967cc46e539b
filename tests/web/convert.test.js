// convert.test.js - the browser test of modeld's web page (issue 4), run by `node --test` from
// tests/web (make web-test). It starts the real binary ($MODELD_BIN) on a free port with a fresh
// data dir, takes the admin key the first start prints, drives Debian's chromium through
// playwright-core (no browser download), and checks what a user sees: the server status, the
// upload, the converted SVG next to the original, the numbers, and the error messages.
// A screenshot of the converted page is saved in tests/web/artifacts/.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const BIN = process.env.MODELD_BIN;
const CORPUS = process.env.MODELD_CORPUS_DIR || path.resolve(__dirname, '../fixtures/corpus');
const ARTIFACTS = path.join(__dirname, 'artifacts');
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let server, dataDir, profileDir, context, base, adminKey;
let serverLog = '';

/* Start `modeld serve --port 0` and resolve once it logs the port it listens on; the first
 * start of the empty data dir prints the admin key on stdout before that. */
function startServer() {
  return new Promise((resolve, reject) => {
    server = spawn(BIN, ['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MODELD_WEB_DIR: path.resolve(__dirname, '../../web') } });
    const timer = setTimeout(() => reject(new Error('modeld did not start in 60 s:\n' + serverLog)), 60000);
    const onData = (chunk) => {
      serverLog += chunk.toString();
      const key = serverLog.match(/\b(mdk_[A-Za-z0-9_-]+)/);
      const port = serverLog.match(/"msg":"listening"[^\n]*"port":(\d+)/);
      if (key) adminKey = key[1];
      if (port && adminKey) {
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
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'modeld-web-'));
  profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'modeld-chromium-'));
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  base = await startServer();
  // A fresh profile directory per run (playwright passes it as --user-data-dir).
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: '/usr/bin/chromium', args: CHROMIUM_FLAGS, viewport: { width: 1440, height: 960 },
    acceptDownloads: true,
  });
});

after(async () => {
  if (context) await context.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', (code) => r(code)));
    server.removeAllListeners('exit');
    server.kill('SIGTERM');
    const code = await exited;
    // A clean stop (exit 0) also means the sanitizers found no leak in the server.
    assert.equal(code, 0, 'modeld did not stop cleanly:\n' + serverLog.slice(-4000));
  }
  for (const d of [dataDir, profileDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

async function openPage(key) {
  const page = await context.newPage();
  page.setDefaultTimeout(60000);
  const res = await page.goto(base + '/');
  assert.equal(res.status(), 200, 'GET / serves the page');
  await page.fill('#api-key', key);
  await page.press('#api-key', 'Enter');
  return page;
}

test('upload, convert, compare and download a logo', async () => {
  const page = await openPage(adminKey);
  await page.waitForSelector('#server-status.status-ready');
  assert.match(await page.textContent('#server-status-text'), /ready/i);

  await page.setInputFiles('#file-input', path.join(CORPUS, 'papirus_cyberpunk-2077_256.png'));
  await page.waitForSelector('#upload-state.ok');
  assert.match(await page.textContent('#file-details'), /PNG · 256×256 px/);

  await page.click('#convert-btn');
  await page.waitForSelector('#svg-img:not([hidden])');
  // The SVG really rendered: the <img> decoded it and it has the image's size.
  const svg = await page.$eval('#svg-img', (img) => img.decode().then(() => ({
    w: img.naturalWidth, h: img.naturalHeight, src: img.src, shown: img.getBoundingClientRect().width,
  })));
  assert.equal(svg.w, 256);
  assert.equal(svg.h, 256);
  assert.ok(svg.src.startsWith('blob:'));
  const orig = await page.$eval('#original-img', (img) => img.getBoundingClientRect().width);
  assert.ok(Math.abs(svg.shown - orig) < 1, 'original and SVG are shown at the same size');

  const ssim = Number(await page.textContent('#m-ssim'));
  assert.ok(ssim > 0.5 && ssim <= 1, `SSIM shown: ${ssim}`);
  assert.match(await page.textContent('#m-bytes'), /\d+(\.\d+)? (B|KB|MB)/);
  assert.ok(Number(await page.textContent('#m-paths')) > 0);
  assert.match(await page.textContent('#m-time'), /\d+(\.\d+)? (ms|s)/);
  assert.equal(await page.textContent('#m-cache'), 'fresh conversion');
  assert.equal(await page.isEnabled('#download-btn'), true);
  assert.equal(await page.$('.msg.error'), null);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(ARTIFACTS, 'convert.png'), fullPage: true });

  // The download is the SVG itself.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-btn')]);
  assert.equal(download.suggestedFilename(), 'papirus_cyberpunk-2077_256.svg');
  const text = fs.readFileSync(await download.path(), 'utf8');
  assert.match(text, /<svg[\s>]/);

  // The same conversion again comes from the cache; the slider view shows both images.
  await page.click('#convert-btn');
  await page.waitForFunction(() => document.querySelector('#m-cache').textContent === 'cached result');
  await page.click('#view-mode button[data-value=slider]');
  assert.equal(await page.isVisible('#compare'), true);
  assert.equal(await page.isVisible('#pane-svg'), false);
  await page.close();
});

test('the key is kept in local storage', async () => {
  const page = await openPage(adminKey);
  await page.reload();
  assert.equal(await page.inputValue('#api-key'), adminKey);
  await page.close();
});

test('errors are explained: wrong key, not an image', async () => {
  const page = await openPage('mdk_not_a_real_key');
  await page.setInputFiles('#file-input', path.join(CORPUS, 'simple_geometric_00.png'));
  await page.waitForSelector('.msg.error[data-status="401"]');
  assert.match(await page.textContent('.msg.error'), /API key/);
  assert.equal(await page.textContent('#upload-state'), 'failed');

  await page.fill('#api-key', adminKey);
  await page.press('#api-key', 'Enter');
  await page.setInputFiles('#file-input', path.join(CORPUS, 'non_image_text.png'));
  await page.waitForSelector('.msg.error[data-status="415"]');
  assert.match(await page.textContent('.msg.error'), /not a supported image/);
  await page.waitForSelector('#original-img', { state: 'hidden' }); // no broken-image icon

  await page.setInputFiles('#file-input', path.join(CORPUS, 'corrupted_truncated.png'));
  await page.waitForSelector('.msg.error[data-status="400"]');
  assert.equal(await page.isDisabled('#download-btn'), true);

  // Past the server's upload limit (which the page learns from /api/presets): refused at once.
  await page.waitForFunction(() => document.querySelector('#dz-limit').textContent === '20 MB');
  const big = Buffer.concat([fs.readFileSync(path.join(CORPUS, 'simple_geometric_00.png')), Buffer.alloc(21 << 20)]);
  await page.setInputFiles('#file-input', { name: 'huge.png', mimeType: 'image/png', buffer: big });
  await page.waitForSelector('.msg.error[data-status="413"]');
  assert.match(await page.textContent('.msg.error'), /too large/);
  assert.equal(await page.isDisabled('#convert-btn'), true);
  await page.close();
});
