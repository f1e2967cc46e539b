// enhance.test.js - the browser test of the Enhance tab (issue 10 §5), run by `node --test` from
// tests/web (make web-test). The real binary ($MODELD_BIN) with the slim network converted into
// its fresh data dir (training/enhance/convert.py from build/npm; skipped without the npm
// packages), Debian's chromium through playwright-core. It checks what a user sees: the tab,
// two photos dropped at once becoming a batch of two jobs whose progress bars run to SUCCESS,
// the before/after slider showing both images at the same size, the download of one result and
// of the batch ZIP, face enhancement disabled with the server's reason, and a refused option.
// A screenshot is saved in tests/web/artifacts/enhance.png.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { ARTIFACTS, Modeld, Browser } = require('./helpers');

const ROOT = path.resolve(__dirname, '../..');
const NPM = path.join(ROOT, 'build/npm/node_modules');
const CORPUS = process.env.MODELD_CORPUS_DIR || path.resolve(__dirname, '../fixtures/corpus');
const HAVE_NETS = fs.existsSync(path.join(NPM, '@upscalerjs/esrgan-slim'));

let modeld, browser, context, base, adminKey;

before(async () => {
  if (!HAVE_NETS) return;
  modeld = new Modeld({ prefix: 'modeld-web-enh-', waitForKey: true,
    env: { MODELD_WEB_DIR: path.resolve(ROOT, 'web'), MODELD_WORKERS: '2' } });
  const conv = spawnSync('/usr/bin/python3', [path.join(ROOT, 'training/enhance/convert.py'), '--npm', NPM,
    '--out', path.join(modeld.dataDir, 'models'), '--only', 'slim-x2,slim-x4'], { encoding: 'utf8' });
  assert.equal(conv.status, 0, conv.stderr);
  base = await modeld.start();
  adminKey = modeld.adminKey;
  browser = new Browser();
  context = await browser.launch({ viewport: { width: 1440, height: 1000 }, acceptDownloads: true });
});

after(async () => {
  if (browser) await browser.close();
  if (modeld) await modeld.stop();
});

async function openEnhance() {
  const page = await context.newPage();
  page.setDefaultTimeout(120000);
  const res = await page.goto(base + '/#enhance');
  assert.equal(res.status(), 200);
  await page.fill('#api-key', adminKey);
  await page.press('#api-key', 'Enter');
  await page.click('#tab-btn-enhance');
  assert.equal(await page.isVisible('#tab-enhance'), true);
  assert.equal(await page.isVisible('#tab-vectorize'), false);
  return page;
}

test('a batch of two photos: live progress, compare, downloads', { skip: !HAVE_NETS && 'no @upscalerjs nets in build/npm' }, async () => {
  const page = await openEnhance();
  // Face enhancement is unavailable on this server: the box is disabled and says why.
  await page.waitForFunction(() => document.querySelector('#enh-face-note').textContent.length > 0);
  assert.equal(await page.isDisabled('#enh-face'), true);
  assert.match(await page.textContent('#enh-face-note'), /not available|no face detector/);

  await page.click('#enh-quality button[data-value=fast]');
  await page.click('#enh-scale button[data-value="4"]');
  await page.selectOption('#enh-format', 'png');
  await page.setInputFiles('#enh-files', [path.join(CORPUS, 'gradient_01.png'), path.join(CORPUS, 'simple_geometric_03.png')]);
  assert.match(await page.textContent('#enh-picked'), /2 photos/);
  await page.click('#enh-start');

  await page.waitForFunction(() => document.querySelectorAll('.enh-job').length === 2);
  await page.waitForFunction(() => [...document.querySelectorAll('.enh-job')].every((li) => li.dataset.status === 'SUCCESS'));
  const bars = await page.$$eval('.enh-job .bar i', (els) => els.map((e) => e.style.width));
  assert.deepEqual(bars, ['100%', '100%']);
  assert.match(await page.textContent('.enh-job .stage'), /256×256/);

  // The first finished job is shown: before and after at the same size, the slider moves.
  await page.waitForSelector('#enh-compare-wrap:not([hidden])');
  const sizes = await page.evaluate(async () => {
    const b = document.querySelector('#enh-before'), a = document.querySelector('#enh-after');
    await b.decode(); await a.decode();
    const rb = b.getBoundingClientRect(), ra = a.getBoundingClientRect();
    return { b: [rb.width, rb.height], a: [ra.width, ra.height], natural: [a.naturalWidth, b.naturalWidth] };
  });
  assert.deepEqual(sizes.a, sizes.b, 'before and after are laid out at the same size');
  assert.deepEqual(sizes.natural, [256, 64]);
  await page.fill('#enh-range', '20');
  assert.match(await page.getAttribute('#enh-top', 'style'), /inset\(0(px)? 80%/);
  await page.screenshot({ path: path.join(ARTIFACTS, 'enhance.png'), fullPage: true });

  const [one] = await Promise.all([page.waitForEvent('download'), page.click('#enh-download')]);
  assert.match(one.suggestedFilename(), /^enhanced_j_[0-9a-f]+\.png$/);
  assert.equal(fs.readFileSync(await one.path()).subarray(1, 4).toString(), 'PNG');

  assert.equal(await page.isVisible('#enh-zip'), true);
  const [zip] = await Promise.all([page.waitForEvent('download'), page.click('#enh-zip')]);
  assert.match(zip.suggestedFilename(), /^batch_b_[0-9a-f]+\.zip$/);
  assert.equal(fs.readFileSync(await zip.path()).subarray(0, 2).toString(), 'PK');
  assert.equal(await page.$('#enh-messages .msg.error'), null);
  await page.close();
});

test('a refused job is explained', { skip: !HAVE_NETS && 'no @upscalerjs nets in build/npm' }, async () => {
  const page = await openEnhance();
  // "best" needs the thick network, which this server does not have: the answer says so.
  await page.click('#enh-quality button[data-value=best]');
  await page.setInputFiles('#enh-files', [path.join(CORPUS, 'gradient_05.png')]);
  await page.click('#enh-start');
  await page.waitForSelector('#enh-messages .msg.error');
  assert.match(await page.textContent('#enh-messages .msg.error'), /esrgan-thick/);
  await page.close();
});
