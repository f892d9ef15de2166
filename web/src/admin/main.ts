// The operator's console served at /admin: sign in with the admin key or a
// tenant API key, then pages chosen by the URL's hash (#overview,
// #trace=<pub id>, #dlq, ...), so a link such as /admin#trace=ID from the
// demo opens that trace right after sign-in. The key is kept in memory and
// in sessionStorage (gone with the tab), never in a URL.
import { Api, ApiError, arr, strOr } from './api';
import type { Ctx, Page } from './ctx';
import { field, h, replace } from './dom';
import { Sampler } from './metrics';
import { auditPage } from './pages/audit';
import { channelsPage } from './pages/channels';
import { connectionsPage } from './pages/connections';
import { dlqPage } from './pages/dlq';
import { overviewPage } from './pages/overview';
import { tailPage } from './pages/tail';
import { tenantsPage } from './pages/tenants';
import { tracePage } from './pages/trace';
import { webhooksPage } from './pages/webhooks';
import { errorSlot, notice, showError } from './ui';

const KEY_ITEM = 'parley.console.key';
const TENANT_ITEM = 'parley.console.tenant';
const METRICS_ITEM = 'parley.console.metricsToken';

interface Route { name: string; label: string; admin: boolean; render(ctx: Ctx, arg: string): Page; }

const ROUTES: Route[] = [
  { name: 'overview', label: 'Overview', admin: false, render: (c) => overviewPage(c) },
  { name: 'channels', label: 'Channels', admin: false, render: (c, a) => channelsPage(c, a) },
  { name: 'trace', label: 'Trace', admin: false, render: (c, a) => tracePage(c, a) },
  { name: 'dlq', label: 'Dead letters', admin: false, render: (c) => dlqPage(c) },
  { name: 'webhooks', label: 'Webhooks', admin: false, render: (c, a) => webhooksPage(c, a) },
  { name: 'tail', label: 'Live tail', admin: false, render: (c, a) => tailPage(c, a) },
  { name: 'connections', label: 'Connections', admin: false, render: (c, a) => connectionsPage(c, a) },
  { name: 'tenants', label: 'Tenants & keys', admin: true, render: (c) => tenantsPage(c) },
  { name: 'audit', label: 'Audit log', admin: true, render: (c) => auditPage(c) },
];

const root = document.getElementById('app') ?? document.body;
let ctx: Ctx | null = null;
let current: Page | null = null;

function store(k: string, v: string | null): void {
  try { if (v === null) sessionStorage.removeItem(k); else sessionStorage.setItem(k, v); } catch { /* storage off: memory only */ }
}
function load(k: string): string {
  try { return sessionStorage.getItem(k) ?? ''; } catch { return ''; }
}

/** "#trace=01ABC" → ["trace", "01ABC"]. */
function parseHash(): [string, string] {
  const raw = location.hash.replace(/^#/, '');
  const i = raw.indexOf('=');
  const name = i < 0 ? raw : raw.slice(0, i);
  let arg = i < 0 ? '' : raw.slice(i + 1);
  try { arg = decodeURIComponent(arg); } catch { /* keep it raw */ }
  return [name || 'overview', arg];
}

function signInPage(message?: unknown): void {
  const input = h('input', { type: 'password', testid: 'admin-key', autocomplete: 'off', placeholder: 'admin key or tenant API key', size: 48 });
  const btn = h('button', { type: 'submit', testid: 'admin-signin' }, 'Sign in');
  const err = errorSlot();
  const form = h('form', { class: 'signin' },
    h('h1', {}, 'Parley console'),
    h('p', { class: 'hint' }, 'Sign in with the server\'s admin key or a tenant API key. In development mode the development secret (DATA/dev_secret, printed at startup) is the tenant\'s API key.'),
    field('Key', input), btn, err);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    btn.disabled = true;
    void signIn(key).catch((e) => showError(err, e)).finally(() => { btn.disabled = false; });
  });
  if (message) showError(err, message);
  replace(root, form);
  input.focus();
}

/**
 * Tells the admin key from a tenant key: tenants.list answers the former,
 * 403 for the latter (a valid key without the right), 401 for neither.
 */
async function signIn(key: string): Promise<void> {
  const api = new Api(key);
  let tenants: string[] = [];
  try {
    const r = await api.call('tenants.list');
    api.admin = true;
    tenants = arr(r.tenants).map((t) => strOr(t.id)).filter(Boolean);
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 403) {
      if (e instanceof ApiError && e.status === 401) throw new ApiError(e.method, e.status, e.code, `${e.message}: this key is not accepted`);
      throw e;
    }
  }
  if (api.admin) {
    const saved = load(TENANT_ITEM);
    // Without configured tenants (development mode) the one tenant is "default".
    api.tenant = tenants.includes(saved) ? saved : tenants[0] ?? 'default';
  }
  store(KEY_ITEM, key);
  api.onUnauthorized = () => {
    if (ctx?.api !== api) return;
    signOut(new ApiError('session', 401, 101, 'the server no longer accepts this key (revoked?): sign in again'));
  };
  const sampler = new Sampler();
  sampler.token = load(METRICS_ITEM);
  sampler.start();
  ctx = { api, sampler, go: (hash) => { if (location.hash === '#' + hash) render(); else location.hash = hash; } };
  shell(tenants);
  render();
}

let onTenant: (() => void) | null = null;

function signOut(why?: unknown): void {
  if (onTenant) document.removeEventListener('console-tenant', onTenant);
  onTenant = null;
  store(KEY_ITEM, null);
  current?.dispose?.();
  current = null;
  ctx?.sampler.stop();
  ctx = null;
  signInPage(why);
}

let content: HTMLElement = h('main', {});
let nav: HTMLElement = h('nav', {});

function shell(tenants: string[]): void {
  if (!ctx) return;
  const api = ctx.api;
  nav = h('nav', { class: 'nav' }, ...ROUTES.filter((r) => !r.admin || api.admin).map((r) =>
    h('a', { href: '#' + r.name, testid: 'nav-' + r.name, 'data-page': r.name }, r.label)));
  let tenantPicker: HTMLElement | string = '';
  if (api.admin) {
    const sel = h('select', { testid: 'tenant-select', 'aria-label': 'tenant' }, ...(tenants.length ? tenants : ['default']).map((t) => h('option', { value: t }, t)));
    sel.value = api.tenant;
    sel.addEventListener('change', () => { api.tenant = sel.value; store(TENANT_ITEM, sel.value); render(); });
    // The tenants page can switch tenant too; keep the picker in step.
    onTenant = () => { sel.value = api.tenant; store(TENANT_ITEM, api.tenant); };
    document.addEventListener('console-tenant', onTenant);
    tenantPicker = h('label', { class: 'tenant' }, 'tenant ', sel);
  }
  const out = h('button', { class: 'small', testid: 'signout' }, 'Sign out');
  out.addEventListener('click', () => signOut());
  content = h('main', { class: 'content' });
  replace(root,
    h('header', { class: 'top' },
      h('span', { class: 'brand' }, 'Parley console'),
      h('span', { class: 'who', testid: 'who' }, api.admin ? 'admin key' : 'tenant key'),
      tenantPicker, out),
    nav, content);
}

function render(): void {
  if (!ctx) return;
  const [name, arg] = parseHash();
  const route = ROUTES.find((r) => r.name === name) ?? ROUTES[0];
  current?.dispose?.();
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('active', a.getAttribute('data-page') === route.name);
  if (route.admin && !ctx.api.admin) {
    current = null;
    replace(content, notice('This page needs the admin key.', 'notice warn'));
    return;
  }
  current = route.render(ctx, arg);
  replace(content, current.el);
  document.title = `${route.label} · Parley console`;
}

window.addEventListener('hashchange', render);

const saved = load(KEY_ITEM);
if (saved) void signIn(saved).catch((e) => { store(KEY_ITEM, null); signInPage(e); });
else signInPage();
