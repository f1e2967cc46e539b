// helpers.js - what the browser tests (docs.test.js, convert.test.js) share: the real binary
// ($MODELD_BIN) started on a free port with a fresh data dir, Debian's chromium driven through
// playwright-core with a fresh profile (no browser download), and a stop of both that fails the
// run when modeld does not exit 0 (a clean exit also means the sanitizers found no leak in it).
// Not a test file: `node --test` only runs *.test.js.
'use strict';

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const ARTIFACTS = path.join(__dirname, 'artifacts');
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/* `modeld serve --port 0` on a fresh data dir (named with prefix). start() resolves with the
 * base URL once the server logs the port it listens on; with waitForKey it also waits for the
 * admin key the first start of the empty data dir prints on stdout (stdout and stderr are
 * separate pipes, so the key may arrive after the port). stop() ends it, checks the exit code
 * and removes the data dir. */
class Modeld {
  constructor({ prefix, env = {}, waitForKey = false }) {
    assert.ok(process.env.MODELD_BIN, 'set MODELD_BIN to the modeld binary (make web-test does)');
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    this.env = env;
    this.waitForKey = waitForKey;
    this.log = '';
    this.adminKey = null;
    this.proc = null;
  }

  start() {
    return new Promise((resolve, reject) => {
      this.proc = spawn(process.env.MODELD_BIN,
        ['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', this.dataDir],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...this.env } });
      const timer = setTimeout(() => reject(new Error('modeld did not start in 60 s:\n' + this.log)), 60000);
      const onData = (chunk) => {
        this.log += chunk.toString();
        const key = this.log.match(/\b(mdk_[A-Za-z0-9_-]+)/);
        const port = this.log.match(/"msg":"listening"[^\n]*"port":(\d+)/);
        if (key) this.adminKey = key[1];
        if (port && (this.adminKey || !this.waitForKey)) {
          clearTimeout(timer);
          resolve(`http://127.0.0.1:${port[1]}`);
        }
      };
      this.proc.stdout.on('data', onData);
      this.proc.stderr.on('data', onData);
      this.proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`modeld exited (${code}):\n${this.log}`)); });
    });
  }

  async stop() {
    try {
      if (this.proc && this.proc.exitCode === null) {
        // Drop start()'s reject-on-exit listener first: removing it after adding the one below
        // would remove both, and the wait would never end (node would exit with the check unrun).
        this.proc.removeAllListeners('exit');
        const exited = new Promise((r) => this.proc.once('exit', (code) => r(code)));
        this.proc.kill('SIGTERM');
        const code = await exited;
        assert.equal(code, 0, 'modeld did not stop cleanly:\n' + this.log.slice(-4000));
      }
    } finally {
      fs.rmSync(this.dataDir, { recursive: true, force: true });
    }
  }
}

/* A chromium context on a fresh profile directory (playwright passes it as --user-data-dir);
 * options go to launchPersistentContext (viewport, acceptDownloads...). close() closes it and
 * removes the profile. Also makes sure the artifacts directory for screenshots exists. */
class Browser {
  async launch(options) {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    this.profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'modeld-chromium-'));
    this.context = await chromium.launchPersistentContext(this.profileDir, {
      executablePath: '/usr/bin/chromium', args: CHROMIUM_FLAGS, ...options,
    });
    return this.context;
  }

  async close() {
    try {
      if (this.context) await this.context.close();
    } finally {
      if (this.profileDir) fs.rmSync(this.profileDir, { recursive: true, force: true });
    }
  }
}

module.exports = { ARTIFACTS, Modeld, Browser };
