// Drives one person's page of the team-chat demo through its data-testid hooks.
import { waitFor } from './helpers.mjs';

export const T = (id) => `[data-testid="${id}"]`;

export class Person {
  constructor(name, page) { this.name = name; this.page = page; }

  /** A fresh browser context, logged in as `name`, with `room` open. */
  static async login(browser, origin, name, room, errors) {
    const ctx = await browser.newContext({ viewport: { width: 1200, height: 760 } });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => errors.push(`${name}: pageerror: ${e}`));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(`${name}: console: ${m.text()}`); });
    await page.goto(`${origin}/#room=${encodeURIComponent(room)}`);
    await page.fill(T('login-name'), name);
    await page.click(T('login-submit'));
    const p = new Person(name, page);
    p.ctx = ctx;
    await p.waitConnection('connected');
    await p.waitRoom(room);
    return p;
  }

  connection() { return this.page.textContent(T('connection-state')); }

  async waitConnection(text, timeout = 20000) {
    await waitFor(async () => (await this.connection()) === text, `${this.name}: connection-state "${text}"`, timeout);
  }

  /** Waits until `room` is the open room (its entry is marked current). */
  async waitRoom(room) {
    await waitFor(() => this.page.$(`${T('room')}[data-room="${room}"][aria-current="page"]`), `${this.name}: room ${room} open`);
  }

  /** Every message shown: offset (0 while unstored), state, author, text, status line. */
  messages() {
    return this.page.$$eval(T('message'), (els) => els.map((e) => ({
      offset: Number(e.getAttribute('data-offset') || 0),
      state: e.getAttribute('data-state'),
      author: e.querySelector('.author')?.textContent ?? '',
      text: e.querySelector('.text')?.textContent ?? '',
      status: e.querySelector('.status')?.textContent ?? '',
      trace: e.querySelector('a.trace')?.getAttribute('href') ?? '',
    })));
  }

  async waitMessage(pred, what, timeout = 20000) {
    return waitFor(async () => (await this.messages()).find(pred), `${this.name}: ${what}`, timeout);
  }

  text(id) { return this.page.textContent(T(id)); }

  async send(text) {
    await this.page.fill(T('composer'), text);
    await this.page.press(T('composer'), 'Enter');
  }

  /** Records every message element added to the list and every data-state change from now on (window.__states: "add:TEXT:STATE", "attr:TEXT:STATE"). */
  async recordStates() {
    await this.page.evaluate(() => {
      const w = window;
      w.__states = [];
      const list = document.querySelector('[data-testid="message-list"]');
      new MutationObserver((recs) => {
        for (const r of recs) {
          const nodes = r.type === 'attributes' ? [r.target] : [...r.addedNodes];
          for (const n of nodes) if (n.nodeType === 1 && n.getAttribute('data-testid') === 'message')
            w.__states.push(`${r.type === 'attributes' ? 'attr' : 'add'}:${n.querySelector('.text')?.textContent}:${n.getAttribute('data-state')}`);
        }
      }).observe(list, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'] });
    });
  }

  states() { return this.page.evaluate(() => window.__states); }

  async close() { await this.ctx.close(); }
}
