// The built app as the server serves it, in headless Chromium: the demo at /
// and the console at /admin load their scripts and styles under the strict
// Content-Security-Policy with no violation and no page error, and nothing
// is fetched from another origin.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launchChromium, screenshot, watchErrors } from './helpers.mjs';

let srv, browser;

before(async () => {
  srv = await new Server().start();
  browser = await launchChromium();
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (srv) await srv.cleanup();
});

for (const [path, name] of [['/', 'serve-demo'], ['/admin', 'serve-console']]) {
  test(`${path} loads under the Content-Security-Policy`, { timeout: 60000 }, async () => {
    const page = await browser.newPage();
    const errors = [];
    watchErrors(page, errors);
    const foreign = [];
    page.on('request', (r) => { if (!r.url().startsWith(srv.origin) && !r.url().startsWith('ws://127.0.0.1')) foreign.push(r.url()); });
    await page.exposeFunction('cspViolation', (d) => errors.push(`csp: ${d}`));
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => window.cspViolation(`${e.violatedDirective} ${e.blockedURI}`));
    });
    const resp = await page.goto(srv.origin + path, { waitUntil: 'load' });
    assert.equal(resp.status(), 200);
    assert.match(resp.headers()['content-security-policy'], /script-src 'self'/);
    // the module script ran: it renders into #app
    await page.waitForFunction(() => (document.getElementById('app')?.childNodes.length ?? 0) > 0, null, { timeout: 10000 });
    const sheets = await page.evaluate(() => document.styleSheets.length);
    assert.ok(sheets >= 1, 'the stylesheet did not load');
    await screenshot(page, name);
    assert.deepEqual(errors, [], `page errors:\n${errors.join('\n')}\nserver log:\n${srv.logTail()}`);
    assert.deepEqual(foreign, []);
    await page.close();
  });
}
