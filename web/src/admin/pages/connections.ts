// Connections of a user: each live connection (transport, address, since,
// channels) with a disconnect, or all of the user's at once. `connections`
// is newer than `disconnect`: without it the page still offers the latter.
import { ApiError, arr, numOr, strOr, type Obj } from '../api';
import type { Ctx, Page } from '../ctx';
import { field, h, replace, routeLink, table, td } from '../dom';
import { ts } from '../format';
import { busy, confirmDialog, errorSlot, notAvailable, notice } from '../ui';

export function connectionsPage(ctx: Ctx, user: string): Page {
  const input = h('input', { type: 'text', placeholder: 'user id', value: user, testid: 'connections-user' });
  const form = h('form', { class: 'inline' }, field('User', input), h('button', { type: 'submit', testid: 'connections-submit' }, 'Show'));
  const err = errorSlot();
  const result = h('div', { class: 'result' });
  const list = h('div', {});
  form.addEventListener('submit', (ev) => { ev.preventDefault(); if (input.value.trim()) ctx.go('connections=' + encodeURIComponent(input.value.trim())); });

  const disconnect = async (target: Obj, what: string, btn: HTMLButtonElement) => {
    if (!(await confirmDialog(`Disconnect ${what}?`, 'The connections get a disconnect push with code 4503 and are closed; clients normally reconnect. Recorded in the audit log.', 'Disconnect'))) return;
    await busy(btn, err, async () => {
      await ctx.api.call('disconnect', target);
      replace(result, notice(`Disconnected ${what}.`, 'notice ok'));
      // The close takes a moment (a disconnect push, then the close frame):
      // list again until the connections are gone, for a few seconds at most.
      for (let i = 0; i < 12; i++) {
        const left = await load();
        const still = left === null ? false : target.client ? left.some((c) => c.client === target.client) : left.length > 0;
        if (!still) break;
        await new Promise((r) => setTimeout(r, 250));
      }
    });
  };

  /** Lists the user's connections; null when the server cannot (no user, no method). */
  const load = async (): Promise<Obj[] | null> => {
    if (!user) return null;
    const all = h('button', { class: 'danger', testid: 'disconnect-user' }, `Disconnect every connection of ${user}`);
    all.addEventListener('click', () => void disconnect({ user }, `every connection of ${user}`, all));
    let r: Obj;
    try {
      r = await ctx.api.call('connections', { user, limit: 1000 });
    } catch (e) {
      if (e instanceof ApiError && e.unknownMethod) { replace(list, notAvailable('connections'), all); return null; }
      throw e;
    }
    const conns = arr(r.connections);
    replace(list, conns.length ? table(['connection', 'transport', 'remote', 'connected', 'channels', ''], conns.map((c) => {
      const client = strOr(c.client);
      const one = h('button', { class: 'small danger', testid: 'disconnect-client' }, 'Disconnect');
      one.addEventListener('click', () => void disconnect({ client }, `connection ${client}`, one));
      return h('tr', { testid: 'connection-row', 'data-id': client },
        td(h('code', {}, client)), td(strOr(c.transport)), td(strOr(c.remote)), td(ts(numOr(c.connected_at))),
        td(...(Array.isArray(c.channels) ? c.channels : []).flatMap((x, i) => [i ? ', ' : '', routeLink(String(x), 'channels=' + encodeURIComponent(String(x)))])), td(one));
    }), { class: 'grid' }) : notice(`${user} has no live connection.`), conns.length ? all : '');
    return conns;
  };

  const el = h('section', { class: 'page connections' }, h('h2', {}, 'Connections of a user'), form, err, result, list);
  void busy(null, err, async () => { await load(); });
  return { el };
}
