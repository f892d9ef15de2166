// Shared by the headless-Chromium tests of the web app: runs the real
// build/parley in single-tenant development mode (no tenants configured, so
// POST /dev/token exists) on a free loopback port with a temporary data dir
// and the built app as its web_root; kills (-9) and restarts it on the same
// port and data; launches Debian's chromium through playwright-core (from
// web/node_modules) and saves screenshots under build/e2e/.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, '..', '..');
export const PARLEY_BIN = resolve(process.env.PARLEY_BIN || join(ROOT, 'build', 'parley'));
export const WEB_ROOT = resolve(process.env.PARLEY_WEB_ROOT || join(dirname(PARLEY_BIN), 'web'));
export const CHROMIUM = process.env.PARLEY_CHROMIUM || '/usr/bin/chromium';
export const SHOTS = join(ROOT, 'build', 'e2e');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` until it returns truthy; throws with `what` after `timeout` ms. */
export async function waitFor(cond, what = 'condition', timeout = 20000, step = 25) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(step);
  }
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
  });
}

/** The server under test. `extra` is YAML appended to the configuration. */
export class Server {
  constructor({ extra = '' } = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'parley-e2e-'));
    this.dataDir = join(this.dir, 'data');
    this.cfgPath = join(this.dir, 'parley.yaml');
    this.logPath = join(this.dir, 'server.log');
    this.extra = extra;
    this.proc = null;
  }

  get origin() { return `http://127.0.0.1:${this.port}`; }

  /** The development secret: the API key of development mode. */
  get devSecret() { return readFileSync(join(this.dataDir, 'dev_secret'), 'utf8').trim(); }

  async start(timeout = 20000) {
    if (this.proc) throw new Error('server already running');
    if (!existsSync(join(WEB_ROOT, 'index.html'))) throw new Error(`no web app at ${WEB_ROOT}: run scripts/web.sh first`);
    if (!this.port) this.port = await freePort();
    writeFileSync(this.cfgPath, [
      `listen: "127.0.0.1:${this.port}"`,
      `data_dir: ${JSON.stringify(this.dataDir)}`,
      `web_root: ${JSON.stringify(WEB_ROOT)}`,
      this.extra,
    ].join('\n') + '\n');
    const log = openSync(this.logPath, 'a');
    const proc = spawn(PARLEY_BIN, ['serve', '--config', this.cfgPath], { stdio: ['ignore', log, log], cwd: this.dir });
    closeSync(log);
    this.proc = proc;
    let exited = null;
    proc.once('exit', (code, sig) => { exited = { code, sig }; });
    this.exited = new Promise((r) => proc.once('exit', r));
    const end = Date.now() + timeout;
    while (Date.now() < end) {
      if (exited) { this.proc = null; throw new Error(`server exited during start: ${JSON.stringify(exited)}\n${this.logTail()}`); }
      try {
        if ((await fetch(`${this.origin}/healthz`)).status === 200) return this;
      } catch { /* not up yet */ }
      await sleep(25);
    }
    await this.kill();
    throw new Error(`/healthz never answered 200\n${this.logTail()}`);
  }

  /** SIGTERM and wait. */
  async stop() {
    const p = this.proc;
    if (!p) return;
    this.proc = null;
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 10000);
    await this.exited;
    clearTimeout(t);
  }

  /** kill -9 and wait for the process to be gone. */
  async kill() {
    const p = this.proc;
    if (!p) return;
    this.proc = null;
    p.kill('SIGKILL');
    await this.exited;
  }

  /** A server API call with the development secret; returns the parsed body. */
  async api(method, body = {}, key = this.devSecret) {
    const r = await fetch(`${this.origin}/api/v1/${method}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: r.status, body: await r.json() };
  }

  logTail(n = 3000) { try { return readFileSync(this.logPath, 'utf8').slice(-n); } catch { return ''; } }

  async cleanup() { await this.stop(); rmSync(this.dir, { recursive: true, force: true }); }
}

/** Launches headless Chromium; a missing browser is a failure, not a skip. */
export async function launchChromium() {
  if (!existsSync(CHROMIUM))
    throw new Error(`no Chromium at ${CHROMIUM}: install Debian's chromium (scripts/deps.sh test does) or set PARLEY_CHROMIUM`);
  const require = createRequire(join(ROOT, 'web', 'package.json'));
  const { chromium } = require('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], timeout: 30000 });
}

/** Saves a full-page screenshot as build/e2e/NAME.png for a person to look at. */
export async function screenshot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Collects a page's uncaught errors and console errors, for failure messages. */
export function watchErrors(page, into) {
  page.on('pageerror', (e) => into.push(`pageerror: ${e}`));
  page.on('console', (m) => { if (m.type() === 'error') into.push(`console: ${m.text()}`); });
}
