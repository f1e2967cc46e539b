// convert.test.js - the browser test of modeld's web page (issue 4), run by `node --test` from
// tests/web (make web-test). It starts the real binary ($MODELD_BIN) on a free port with a fresh
// data dir, takes the admin key the first start prints, drives Debian's chromium through
// playwright-core (no browser download), and checks what a user sees: the server status, the
// upload, the converted SVG next to the original, the numbers, and the error messages.
// A screenshot of the converted page is saved in tests/web/artifacts/.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { ARTIFACTS, Modeld, Browser } = require('./helpers');

const CORPUS = process.env.MODELD_CORPUS_DIR || path.resolve(__dirname, '../fixtures/corpus');

let modeld, browser, context, base, adminKey;

before(async () => {
  // The page comes from this checkout's web/; the first start of the empty data dir prints the
  // admin key, which the tests type into the page.
  modeld = new Modeld({ prefix: 'modeld-web-', env: { MODELD_WEB_DIR: path.resolve(__dirname, '../../web') },
    waitForKey: true });
  base = await modeld.start();
  adminKey = modeld.adminKey;
  browser = new Browser();
  context = await browser.launch({ viewport: { width: 1440, height: 960 }, acceptDownloads: true });
});

after(async () => {
  if (browser) await browser.close();
  if (modeld) await modeld.stop();
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
