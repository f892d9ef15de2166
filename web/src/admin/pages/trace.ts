// Trace: everything the server knows about one pub (the `trace` method),
// drawn as a timeline: accepted, committed, fanned out, then each
// recipient's delivery states and each webhook delivery's attempts, with the
// milliseconds since acceptance beside every step.
import { ApiError, arr, numOr, strOr, type Obj } from '../api';
import type { Ctx, Page } from '../ctx';
import { h, jsonBlock, replace, type Child } from '../dom';
import { str, ts } from '../format';
import { errorSlot, showError } from '../ui';

export function tracePage(ctx: Ctx, id: string): Page {
  const input = h('input', { type: 'text', testid: 'trace-input', placeholder: 'pub id (26 characters)', value: id, size: 32, spellcheck: 'false' });
  const submit = h('button', { type: 'submit', testid: 'trace-submit' }, 'Trace');
  const form = h('form', { class: 'inline' }, input, submit);
  const err = errorSlot();
  const out = h('div', { class: 'trace-out' });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = input.value.trim();
    // Through the hash, so the trace has a URL to paste into an incident channel.
    if (v) ctx.go('trace=' + encodeURIComponent(v));
  });
  const el = h('section', { class: 'page trace' }, h('h2', {}, 'Trace a pub'), form, err, out);
  if (id) void load(ctx, id, err, out, submit);
  return { el };
}

async function load(ctx: Ctx, id: string, err: Element, out: Element, btn: HTMLButtonElement): Promise<void> {
  btn.disabled = true;
  replace(out, h('p', { class: 'hint' }, 'Loading…'));
  try {
    const r = await ctx.api.call('trace', { id });
    replace(out, render(r));
  } catch (e) {
    replace(out);
    showError(err, e instanceof ApiError && e.code === 102 ? new ApiError(e.method, e.status, e.code, `${e.message}: no pub ${id} in this tenant`) : e);
  } finally {
    btn.disabled = false;
  }
}

function rel(at: number, t0: number): string {
  if (!at || !t0) return '';
  const d = at - t0;
  return `+${d} ms`;
}

function step(kind: string, state: string, title: Child, at: number, t0: number, ...body: Child[]): HTMLLIElement {
  return h('li', { class: `step step-${state}`, testid: 'trace-step', 'data-kind': kind },
    h('div', { class: 'step-head' },
      h('span', { class: 'step-title' }, title),
      h('span', { class: 'step-time' }, at ? `${ts(at)} ${rel(at, t0)}` : '')),
    ...body);
}

const BAD = new Set(['failed', 'dead', 'aborted', 'expired']);
const GOOD = new Set(['acknowledged', 'seen', 'delivered', 'read']);
function tone(state: string): string {
  return BAD.has(state) ? 'bad' : GOOD.has(state) ? 'good' : 'neutral';
}

/** The timeline from a trace answer (shape in docs/api.md, read defensively). */
export function render(r: Obj): HTMLElement {
  const pub = (r.pub && typeof r.pub === 'object' && !Array.isArray(r.pub) ? r.pub : {}) as Obj;
  const t0 = numOr(r.accepted_at, numOr(pub.ts));
  const steps: HTMLLIElement[] = [];
  steps.push(step('accepted', 'good', `Accepted on ${strOr(pub.channel, '?')} (class ${strOr(pub.class, 'standard')})`, t0, t0,
    h('div', { class: 'kv' }, `id ${str(pub.id)}`, pub.correlation_id ? ` · correlation ${str(pub.correlation_id)}` : '', pub.type ? ` · type ${str(pub.type)}` : '')));
  if (r.stored === true) {
    steps.push(step('committed', 'good', `Committed to storage at offset ${str(pub.offset)} (epoch ${str(pub.epoch)})`, 0, t0));
  } else {
    steps.push(step('committed', 'neutral', 'Not stored (ephemeral pub, or no longer retained)', 0, t0));
  }
  const fanout = numOr(r.fanout);
  steps.push(step('fanout', fanout > 0 ? 'good' : 'neutral', `Fanned out to ${fanout} connection${fanout === 1 ? '' : 's'}`, 0, t0));

  for (const d of arr(r.deliveries)) {
    const state = strOr(d.state, '?');
    const trs = arr(d.transitions);
    steps.push(step('delivery', tone(state), `Delivery to user ${strOr(d.user, '?')}: ${state} after ${numOr(d.attempts)} attempt${numOr(d.attempts) === 1 ? '' : 's'}`,
      numOr(d.updated_at), t0,
      h('ol', { class: 'substeps' }, ...trs.map((t) => h('li', { class: `sub sub-${tone(strOr(t.state))}`, testid: 'trace-transition' },
        h('span', { class: 'sub-state' }, strOr(t.state, '?')),
        numOr(t.attempt) ? ` attempt ${numOr(t.attempt)}` : '',
        ` · ${ts(numOr(t.at))} ${rel(numOr(t.at), t0)}`,
        t.error ? h('span', { class: 'sub-error' }, ` · ${str(t.error)}`) : '')))));
  }

  if (r.webhooks === null) {
    steps.push(step('webhook', 'bad', 'Webhook deliveries unknown: hooks.db could not be read', 0, t0));
  }
  for (const w of arr(r.webhooks)) {
    const state = strOr(w.state, '?');
    const log = arr(w.attempt_log);
    steps.push(step('webhook', tone(state), `Webhook to ${strOr(w.endpoint, '?')} (route ${strOr(w.rule, '?')}): ${state} after ${numOr(w.attempts)} attempt${numOr(w.attempts) === 1 ? '' : 's'}`,
      log.length ? numOr(log[log.length - 1].ts) : 0, t0,
      h('div', { class: 'kv' }, `delivery ${str(w.id)}`, w.last_status ? ` · last status ${str(w.last_status)}` : '', w.last_error ? ` · ${str(w.last_error)}` : ''),
      h('ol', { class: 'substeps' }, ...log.map((a) => h('li', { class: `sub sub-${a.error ? 'bad' : 'good'}`, testid: 'trace-attempt' },
        h('span', { class: 'sub-state' }, `attempt ${numOr(a.attempt)}`),
        ` · HTTP ${numOr(a.status) || 'no answer'} · ${numOr(a.latency_ms).toFixed(1)} ms · ${ts(numOr(a.ts))} ${rel(numOr(a.ts), t0)}`,
        a.error ? h('span', { class: 'sub-error' }, ` · ${str(a.error)}`) : '',
        typeof a.body === 'string' && a.body ? h('pre', { class: 'excerpt' }, a.body.slice(0, 500)) : '')))));
  }
  if (Array.isArray(r.webhooks) && r.webhooks.length === 0) {
    steps.push(step('webhook', 'neutral', 'No webhook deliveries (no route matched)', 0, t0));
  }

  return h('div', {},
    h('ol', { class: 'timeline', testid: 'trace-timeline' }, ...steps),
    h('details', {}, h('summary', {}, 'The pub (after its namespace\'s redaction)'), jsonBlock(pub)));
}
