// Channels: the tenant's active channels (at least one subscriber) with
// their counts; for one channel, who is there (presence) and its history,
// newest first, paged backwards by offset (protocol.md, History paging).
import { ApiError, arr, numOr, strOr, type Obj } from '../api';
import type { Ctx, Page } from '../ctx';
import { field, h, replace, routeLink, table, td } from '../dom';
import { str, ts } from '../format';
import { busy, errorSlot, notice } from '../ui';

const PAGE = 50;

export function channelsPage(ctx: Ctx, selected: string): Page {
  const prefix = h('input', { type: 'text', placeholder: 'prefix, e.g. chat:' });
  const err = errorSlot();
  const list = h('div', { class: 'channel-list' });
  const more = h('button', { class: 'hidden' }, 'More channels');
  let cursor = 0;
  let rows: Obj[] = [];

  const loadList = async (append: boolean) => {
    const params: Obj = { limit: 200 };
    if (prefix.value.trim()) params.prefix = prefix.value.trim();
    if (append && cursor) params.cursor = cursor;
    const r = await ctx.api.call('channels', params);
    rows = append ? rows.concat(arr(r.channels)) : arr(r.channels);
    cursor = numOr(r.cursor);
    more.classList.toggle('hidden', !cursor);
    if (!rows.length) { replace(list, notice('No channel has subscribers right now. Open any channel by name below to read its history.')); return; }
    replace(list, table(['channel', 'connections', 'users'], rows.map((c) => h('tr', { testid: 'channel-row' },
      td(routeLink(strOr(c.channel), 'channels=' + encodeURIComponent(strOr(c.channel)))),
      td(String(numOr(c.clients))), td(String(numOr(c.users))))), { class: 'grid' }));
  };

  const listForm = h('form', { class: 'inline' }, field('Prefix', prefix), h('button', { type: 'submit' }, 'List'));
  listForm.addEventListener('submit', (ev) => { ev.preventDefault(); void busy(null, err, () => loadList(false)); });
  more.addEventListener('click', () => void busy(more, err, () => loadList(true)));

  const open = h('input', { type: 'text', placeholder: 'chat:lobby', value: selected, testid: 'channel-input' });
  const openForm = h('form', { class: 'inline' }, field('Channel', open), h('button', { type: 'submit', testid: 'channel-open' }, 'Open'));
  openForm.addEventListener('submit', (ev) => { ev.preventDefault(); if (open.value.trim()) ctx.go('channels=' + encodeURIComponent(open.value.trim())); });

  const detail = h('div', { class: 'channel-detail' });
  const el = h('section', { class: 'page channels' },
    h('h2', {}, 'Channels'),
    h('h3', {}, 'Active channels'), listForm, err, list, more,
    h('h3', {}, 'Open a channel'), openForm, detail);
  void busy(null, err, () => loadList(false));
  if (selected) channelDetail(ctx, selected, detail);
  return { el };
}

function channelDetail(ctx: Ctx, channel: string, box: HTMLElement): void {
  const err = errorSlot();
  const stats = h('div', { class: 'kv' });
  const presence = h('div', {});
  const presMore = h('button', { class: 'hidden' }, 'More');
  const history = h('div', {});
  const older = h('button', { class: 'hidden', testid: 'history-older' }, 'Older');
  const newest = h('button', { testid: 'history-newest' }, 'Newest');
  let presCursor = 0;
  let presRows: Obj[] = [];
  let epoch = '';
  let oldest = 0;

  const loadPresence = async (append: boolean) => {
    try {
      const s = await ctx.api.call('presence_stats', { channel });
      replace(stats, `${numOr(s.clients)} connection(s), ${numOr(s.users)} user(s) subscribed`);
      const params: Obj = { channel, limit: 200 };
      if (append && presCursor) params.cursor = presCursor;
      const r = await ctx.api.call('presence', params);
      presRows = append ? presRows.concat(arr(r.clients)) : arr(r.clients);
      presCursor = numOr(r.cursor);
      presMore.classList.toggle('hidden', !presCursor);
      replace(presence, presRows.length
        ? table(['user', 'connection', 'since', 'info', ''], presRows.map((c) => h('tr', { testid: 'presence-row' },
          td(strOr(c.user)), td(strOr(c.client)), td(ts(numOr(c.since))), td(c.info === null || c.info === undefined ? '' : str(c.info)),
          td(routeLink('Connections', 'connections=' + encodeURIComponent(strOr(c.user)), { class: 'button small' })))), { class: 'grid' })
        : notice('Nobody is subscribed.'));
    } catch (e) {
      // A namespace with presence off answers 108: say that, and still show history.
      if (e instanceof ApiError && e.code === 108) replace(presence, notice(`Presence: ${e.message}`));
      else throw e;
    }
  };

  const loadHistory = async (back: boolean) => {
    const params: Obj = { channel, limit: PAGE, reverse: true };
    if (back && oldest) params.since = { offset: oldest, epoch };
    const r = await ctx.api.call('history', params);
    const pubs = arr(r.pubs);
    if (!back) epoch = strOr(r.epoch);
    else if (strOr(r.epoch) !== epoch) {
      // Another stream now: our offsets mean nothing in it; start over.
      epoch = strOr(r.epoch);
    }
    if (pubs.length) oldest = numOr(pubs[pubs.length - 1].offset);
    older.classList.toggle('hidden', pubs.length < PAGE || oldest <= 1);
    replace(history,
      h('p', { class: 'hint' }, `Head offset ${numOr(r.offset)}, epoch ${strOr(r.epoch) || '—'}. ${pubs.length ? `Showing offsets ${numOr(pubs[0].offset)} down to ${oldest}.` : 'No retained pubs here.'}`),
      pubs.length ? table(['offset', 'time', 'id', 'data', ''], pubs.map((p) => h('tr', { testid: 'history-row', 'data-id': strOr(p.id) },
        td(String(numOr(p.offset))), td(ts(numOr(p.ts))), td(h('code', {}, strOr(p.id))),
        td(h('code', { class: 'data' }, truncate(str(p.data), 200))),
        td(routeLink('Trace', 'trace=' + encodeURIComponent(strOr(p.id)), { class: 'button small' })))), { class: 'grid' }) : '');
  };

  older.addEventListener('click', () => void busy(older, err, () => loadHistory(true)));
  newest.addEventListener('click', () => void busy(newest, err, () => loadHistory(false)));
  presMore.addEventListener('click', () => void busy(presMore, err, () => loadPresence(true)));
  replace(box,
    h('h3', {}, `Channel ${channel}`), err, stats,
    h('h4', {}, 'Presence'), presence, presMore,
    h('h4', {}, 'History (newest first)'), h('div', { class: 'toolbar' }, newest, older), history);
  void busy(null, err, async () => { await Promise.all([loadPresence(false), loadHistory(false)]); });
}

function truncate(s: string, n: number): string {
  return s.length > n ? s.slice(0, n) + '…' : s;
}
