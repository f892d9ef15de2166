// Tenants and API keys (admin key only): the tenants with their limits, each
// tenant's keys with their scopes, creating a tenant or a key (whose
// plaintext is shown once, as the server returns it only then) and revoking.
import { arr, numOr, strOr, type Obj } from '../api';
import type { Ctx, Page } from '../ctx';
import { field, h, replace, table, td } from '../dom';
import { ts } from '../format';
import { busy, confirmDialog, errorSlot, notice } from '../ui';

export function tenantsPage(ctx: Ctx): Page {
  const err = errorSlot();
  const result = h('div', { class: 'result' });
  const tenants = h('div', {});
  const keys = h('div', {});
  const keyTenant = h('select', {});
  const limit = (n: unknown) => (numOr(n) ? String(numOr(n)) : 'unlimited');

  const loadTenants = async () => {
    const r = await ctx.api.call('tenants.list');
    const list = arr(r.tenants);
    replace(keyTenant, h('option', { value: '' }, 'all tenants'), ...list.map((t) => h('option', { value: strOr(t.id) }, strOr(t.id))));
    replace(tenants, list.length ? table(['tenant', 'max connections', 'max channels', 'publishes/s', 'storage bytes', 'JWT secrets', 'JWT public keys', 'source', ''], list.map((t) => {
      const use = h('button', { class: 'small' }, 'Act in this tenant');
      use.addEventListener('click', () => { ctx.api.tenant = strOr(t.id); document.dispatchEvent(new CustomEvent('console-tenant')); replace(result, notice(`Tenant pages now act in ${strOr(t.id)}.`, 'notice ok')); });
      return h('tr', { testid: 'tenant-row', 'data-id': strOr(t.id) },
        td(h('strong', {}, strOr(t.id))), td(limit(t.max_connections)), td(limit(t.max_channels)), td(limit(t.publishes_per_second)),
        td(limit(t.storage_bytes)), td(String(numOr(t.jwt_secrets))), td(String(numOr(t.jwt_public_keys))), td(strOr(t.source)), td(use));
    }), { class: 'grid' }) : notice('No tenants configured: the server runs in development mode with one tenant.'));
  };

  const loadKeys = async () => {
    const params: Obj = {};
    if (keyTenant.value) params.tenant = keyTenant.value;
    const r = await ctx.api.call('keys.list', params);
    const list = arr(r.keys);
    replace(keys, list.length ? table(['key id', 'tenant', 'scopes', 'created', 'state', ''], list.map((k) => {
      const id = strOr(k.id);
      const revoke = h('button', { class: 'small danger' + (k.revoked === true ? ' hidden' : ''), testid: 'key-revoke' }, 'Revoke');
      revoke.addEventListener('click', async () => {
        if (!(await confirmDialog(`Revoke key ${id}?`, `Every request made with it is refused (401) at once. Tenant ${strOr(k.tenant)}.`, 'Revoke'))) return;
        await busy(revoke, err, async () => { await ctx.api.call('keys.revoke', { id }); replace(result, notice(`Key ${id} revoked.`, 'notice ok')); await loadKeys(); });
      });
      return h('tr', { testid: 'key-row', 'data-id': id },
        td(h('code', {}, id)), td(strOr(k.tenant)), td(Array.isArray(k.scopes) ? k.scopes.join(', ') : ''),
        td(ts(numOr(k.created_at))), td(k.revoked === true ? 'revoked' : 'active'), td(revoke));
    }), { class: 'grid' }) : notice('No keys.'));
  };
  keyTenant.addEventListener('change', () => void busy(null, err, loadKeys));

  // New key: tenant and scopes; the plaintext comes back once.
  const newKeyTenant = h('input', { type: 'text', placeholder: 'tenant id' });
  const newKeyScopes = h('input', { type: 'text', placeholder: 'publish, history (or *)', value: '*' });
  const keyForm = h('form', { class: 'filters' }, field('Tenant', newKeyTenant), field('Scopes', newKeyScopes), h('button', { type: 'submit' }, 'Create key'));
  keyForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const scopes = newKeyScopes.value.split(/[\s,]+/).filter(Boolean);
    void busy(null, err, async () => {
      const r = await ctx.api.call('keys.create', { tenant: newKeyTenant.value.trim(), scopes });
      replace(result, h('div', { class: 'notice ok', testid: 'new-key' }, `Key ${strOr(r.id)} for ${strOr(r.tenant)} (shown only now, the server keeps a hash): `, h('code', {}, strOr(r.key))));
      await loadKeys();
    });
  });

  // New tenant: id and a first JWT secret; limits can be set later.
  const newId = h('input', { type: 'text', placeholder: 'initech' });
  const newSecret = h('input', { type: 'password', placeholder: 'JWT secret (16+ characters)', autocomplete: 'off' });
  const tenantForm = h('form', { class: 'filters' }, field('Tenant id', newId), field('JWT secret', newSecret), h('button', { type: 'submit' }, 'Create tenant'));
  tenantForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void busy(null, err, async () => {
      await ctx.api.call('tenants.create', { id: newId.value.trim(), jwt_secret: newSecret.value });
      newSecret.value = '';
      replace(result, notice(`Tenant ${newId.value.trim()} created.`, 'notice ok'));
      await loadTenants();
    });
  });

  const el = h('section', { class: 'page tenants' },
    h('h2', {}, 'Tenants and API keys'), err, result,
    h('h3', {}, 'Tenants'), tenants, tenantForm,
    h('h3', {}, 'API keys'), h('div', { class: 'filters' }, field('Tenant', keyTenant)), keys, keyForm);
  void busy(null, err, async () => { await loadTenants(); await loadKeys(); });
  return { el };
}
