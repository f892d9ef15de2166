// Shared by the headless-Chromium tests of the web app: runs the real
// build/parley in single-tenant development mode (no tenants configured, so
// POST /dev/token exists) on a free loopback port with a temporary data dir
// and the built app as its web_root; kills (-9) and restarts it on the same
// port and data; launches Debian's chromium through playwright-core (from
// web/node_modules) and saves screenshots under build/e2e/. The process
// control comes from the SDK's test helpers.
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
// The server process control is the SDK tests' (start, stop, kill -9,
// restart on the same port and data); only the configuration differs.
import { Server as SdkServer, PARLEY_BIN, freePort, sleep, waitFor } from '../../sdk/js/test/helpers.mjs';

export { PARLEY_BIN, freePort, sleep, waitFor };
const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, '..', '..');
export const WEB_ROOT = resolve(process.env.PARLEY_WEB_ROOT || join(dirname(PARLEY_BIN), 'web'));
export const CHROMIUM = process.env.PARLEY_CHROMIUM || '/usr/bin/chromium';
export const SHOTS = join(ROOT, 'build', 'e2e');

/** The server under test, in development mode with the built app as its
 * web_root. `extra` is YAML appended to the configuration. */
export class Server extends SdkServer {
  constructor({ extra = '' } = {}) {
    super();
    this.extra = extra;
  }

  writeConfig() {
    if (!existsSync(join(WEB_ROOT, 'index.html'))) throw new Error(`no web app at ${WEB_ROOT}: run scripts/web.sh first`);
    writeFileSync(this.cfgPath, [
      `listen: "127.0.0.1:${this.port}"`,
      `data_dir: ${JSON.stringify(this.dataDir)}`,
      `web_root: ${JSON.stringify(WEB_ROOT)}`,
      this.extra,
    ].join('\n') + '\n');
  }

  get origin() { return `http://127.0.0.1:${this.port}`; }

  /** The development secret: the API key of development mode. */
  get devSecret() { return readFileSync(join(this.dataDir, 'dev_secret'), 'utf8').trim(); }

  /** A server API call with the development secret; returns the parsed body. */
  async api(method, body = {}, key = this.devSecret) {
    const r = await fetch(`${this.origin}/api/v1/${method}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: r.status, body: await r.json() };
  }
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
