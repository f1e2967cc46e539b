// convert_ai.test.js - the browser test of the web page's AI mode (issue 9 section 5), run by
// `node --test` from tests/web (make web-test). The real binary serves the stand-in AI models of
// tests/fixtures/models/vectorize-ai; chromium (playwright-core) switches to AI, picks a tier,
// moves the target-quality slider and the time budget, converts, and checks what the result
// shows: logo type and confidence, tier and reason, predicted against measured SSIM, a bar per
// stage, the chosen parameters, and that "Copy to manual settings" moves them into the manual
// controls. A screenshot is saved in tests/web/artifacts/convert_ai.png.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { ARTIFACTS, Modeld, Browser } = require('./helpers');

const CORPUS = process.env.MODELD_CORPUS_DIR || path.resolve(__dirname, '../fixtures/corpus');
const AI_MODELS = path.resolve(__dirname, '../fixtures/models/vectorize-ai');

let modeld, browser, context, base;

before(async () => {
  modeld = new Modeld({ prefix: 'modeld-web-ai-', waitForKey: true,
    env: { MODELD_WEB_DIR: path.resolve(__dirname, '../../web'), MODELD_MODELS_DIR: AI_MODELS } });
  base = await modeld.start();
  browser = new Browser();
  context = await browser.launch({ viewport: { width: 1440, height: 1100 } });
});

after(async () => {
  if (browser) await browser.close();
  if (modeld) await modeld.stop();
});

test('AI mode: convert, explain, copy the parameters to the manual settings', async () => {
  const page = await context.newPage();
  page.setDefaultTimeout(120000);
  assert.equal((await page.goto(base + '/')).status(), 200);
  await page.fill('#api-key', modeld.adminKey);
  await page.press('#api-key', 'Enter');

  assert.equal(await page.isVisible('#ai-settings'), false);
  await page.click('#mode button[data-value=ai]');
  assert.equal(await page.isVisible('#ai-settings'), true);
  assert.equal(await page.isVisible('#manual-settings'), false);
  assert.equal(await page.textContent('#convert-btn .label'), 'Convert with AI');
  await page.click('#ai-tier button[data-value="2"]');
  await page.fill('#ai-target', '0.9');
  await page.dispatchEvent('#ai-target', 'input');
  assert.equal(await page.textContent('#ai-target-out'), '0.90');
  await page.fill('#ai-budget', '3');
  await page.dispatchEvent('#ai-budget', 'input');
  assert.equal(await page.textContent('#ai-budget-out'), '3.0 s');

  await page.setInputFiles('#file-input', path.join(CORPUS, 'text_based_01.png'));
  await page.waitForSelector('#upload-state.ok');
  await page.click('#convert-btn');
  await page.waitForSelector('#ai-result:not([hidden])');
  await page.waitForSelector('#svg-img:not([hidden])');

  assert.equal(await page.textContent('#ai-logo'), 'text based');
  assert.match(await page.textContent('#ai-confidence'), /confidence \d+%/);
  assert.equal(await page.textContent('#ai-tier-used'), 'Tier 2');
  assert.ok((await page.textContent('#ai-reason')).length > 10);
  assert.match(await page.textContent('#ai-predicted'), /^(0|1)\.\d{3}$/);
  const measured = await page.textContent('#ai-measured');
  assert.equal(Number(measured).toFixed(3), Number(await page.textContent('#m-ssim')).toFixed(3));
  assert.ok((await page.$$('#ai-stages .ai-stage')).length >= 5, 'a bar per stage');
  assert.equal(await page.isVisible('#ai-fallback'), false);
  const chosen = await page.textContent('#ai-params dd[data-param=color_precision]');
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(ARTIFACTS, 'convert_ai.png'), fullPage: true });

  await page.click('#ai-copy');
  assert.equal(await page.isVisible('#manual-settings'), true);
  assert.equal(await page.inputValue('#p-color_precision'), chosen.trim());
  assert.match(await page.textContent('#touched-count'), /changed/);
  await page.close();
});
