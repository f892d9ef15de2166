// Samples GET /metrics (Prometheus text format, docs/operations.md) once a
// second and derives what the overview draws: rates from counter deltas
// between samples, quantiles from the delivery latency histogram's buckets
// over a short window, the mean commit batch from its _sum/_count deltas.

export interface MetricSample { labels: Record<string, string>; value: number; }
export type Families = Map<string, MetricSample[]>;

/** Parses the text exposition format; comments and malformed lines are skipped. */
export function parseMetrics(text: string): Families {
  const out: Families = new Map();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let lm: RegExpExecArray | null;
      while ((lm = re.exec(m[3]))) labels[lm[1]] = lm[2].replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
    }
    const v = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
    if (Number.isNaN(v)) continue;
    let list = out.get(m[1]);
    if (!list) out.set(m[1], (list = []));
    list.push({ labels, value: v });
  }
  return out;
}

/** Sum of a family over all its label sets; null when the server has no such metric. */
export function total(f: Families, name: string): number | null {
  const list = f.get(name);
  if (!list) return null;
  return list.reduce((a, s) => a + s.value, 0);
}

/** Cumulative bucket counts of a histogram, sorted by upper bound. */
export function buckets(f: Families, name: string): { le: number; count: number }[] {
  const list = f.get(name + '_bucket') ?? [];
  const byLe = new Map<number, number>();
  for (const s of list) {
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    if (Number.isNaN(le)) continue;
    byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  return [...byLe.entries()].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
}

/**
 * The q-quantile of the observations between two cumulative bucket lists, by
 * linear interpolation inside the bucket (as Prometheus' histogram_quantile).
 * Null without observations; the top finite bound when it falls in +Inf.
 */
export function quantile(q: number, now: { le: number; count: number }[], before: { le: number; count: number }[] | null): number | null {
  const prev = new Map((before ?? []).map((b) => [b.le, b.count]));
  const d = now.map((b) => ({ le: b.le, count: Math.max(0, b.count - (prev.get(b.le) ?? 0)) }));
  if (!d.length) return null;
  const n = d[d.length - 1].count;
  if (n <= 0) return null;
  const rank = q * n;
  let lowerLe = 0;
  let lowerCount = 0;
  for (const b of d) {
    if (b.count >= rank) {
      if (b.le === Infinity) return lowerLe;
      const inBucket = b.count - lowerCount;
      if (inBucket <= 0) return b.le;
      return lowerLe + (b.le - lowerLe) * ((rank - lowerCount) / inBucket);
    }
    lowerLe = b.le;
    lowerCount = b.count;
  }
  return lowerLe;
}

/** What one sample of /metrics holds, reduced to the overview's inputs. */
export interface Raw {
  t: number;
  connections: number | null;
  pubs: number | null;
  deliveries: number | null;
  slowCuts: number | null;
  latency: { le: number; count: number }[];
  batchSum: number | null;
  batchCount: number | null;
  /** Gauges and totals that want attention when above 0. */
  alerts: Alerts;
}

export interface Alerts {
  webhooksFailing: number | null;
  webhooksDisabled: number | null;
  routeLag: number | null;
  deadLettered: number | null;
  commitFailures: number | null;
  storageQueue: number | null;
}

function labelled(f: Families, name: string, label: string, value: string): number | null {
  const list = f.get(name);
  if (!list) return null;
  return list.filter((s) => s.labels[label] === value).reduce((a, s) => a + s.value, 0);
}

export function reduce(t: number, f: Families): Raw {
  return {
    t,
    connections: total(f, 'parley_connections'),
    pubs: total(f, 'parley_pubs_total'),
    deliveries: total(f, 'parley_deliveries_total'),
    slowCuts: total(f, 'parley_slow_consumer_disconnects_total'),
    latency: buckets(f, 'parley_delivery_latency_seconds'),
    batchSum: total(f, 'parley_commit_batch_size_sum'),
    batchCount: total(f, 'parley_commit_batch_size_count'),
    alerts: {
      webhooksFailing: labelled(f, 'parley_webhook_endpoints', 'state', 'failing'),
      webhooksDisabled: labelled(f, 'parley_webhook_endpoints', 'state', 'disabled'),
      routeLag: total(f, 'parley_route_lag_entries'),
      deadLettered: total(f, 'parley_dead_lettered_total'),
      commitFailures: total(f, 'parley_commit_failures_total'),
      storageQueue: total(f, 'parley_storage_queue'),
    },
  };
}

/** One point of the charts. Rates are per second; latencies in seconds. */
export interface Point {
  t: number;
  connections: number | null;
  pubsRate: number | null;
  deliveriesRate: number | null;
  slowCutsRate: number | null;
  slowCutsTotal: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  batchMean: number | null;
  alerts: Alerts;
}

function rate(a: number | null, b: number | null, dt: number): number | null {
  if (a === null || b === null || dt <= 0) return null;
  // A counter that went down means the server restarted: no rate for this step.
  if (b < a) return null;
  return (b - a) / dt;
}

/** Quantiles look back this far, so one quiet second does not blank them. */
export const QUANTILE_WINDOW_MS = 10000;

export function derive(history: Raw[], cur: Raw): Point {
  const prev = history.length ? history[history.length - 1] : null;
  const dt = prev ? (cur.t - prev.t) / 1000 : 0;
  let base: Raw | null = null;
  for (let i = history.length - 1; i >= 0; i--) {
    base = history[i];
    if (cur.t - history[i].t >= QUANTILE_WINDOW_MS) break;
  }
  // After a restart the buckets went down: measure from zero instead.
  const latBase = base && base.latency.every((b, i) => (cur.latency[i]?.count ?? 0) >= b.count) ? base.latency : null;
  const dSum = prev && cur.batchSum !== null && prev.batchSum !== null ? cur.batchSum - prev.batchSum : null;
  const dCount = prev && cur.batchCount !== null && prev.batchCount !== null ? cur.batchCount - prev.batchCount : null;
  return {
    t: cur.t,
    connections: cur.connections,
    pubsRate: prev ? rate(prev.pubs, cur.pubs, dt) : null,
    deliveriesRate: prev ? rate(prev.deliveries, cur.deliveries, dt) : null,
    slowCutsRate: prev ? rate(prev.slowCuts, cur.slowCuts, dt) : null,
    slowCutsTotal: cur.slowCuts,
    p50: quantile(0.5, cur.latency, latBase),
    p95: quantile(0.95, cur.latency, latBase),
    p99: quantile(0.99, cur.latency, latBase),
    batchMean: dSum !== null && dCount !== null && dCount > 0 && dSum >= 0 ? dSum / dCount : null,
    alerts: cur.alerts,
  };
}

export type SamplerState = { ok: true } | { ok: false; status: number; message: string };

/**
 * Fetches /metrics every second while started and keeps the last five
 * minutes of points. It runs for the whole session (not only while the
 * overview is shown) so the charts have history when the operator comes back.
 */
export class Sampler {
  readonly points: Point[] = [];
  private raws: Raw[] = [];
  private timer: number | null = null;
  private inFlight = false;
  state: SamplerState = { ok: true };
  /** `metrics_token`, when the server wants one for /metrics. */
  token = '';
  onUpdate: (() => void) | null = null;

  constructor(readonly intervalMs = 1000, readonly keep = 300) {}

  start(): void {
    if (this.timer !== null) return;
    void this.tick();
    this.timer = window.setInterval(() => void this.tick(), this.intervalMs);
  }

  stop(): void {
    if (this.timer !== null) window.clearInterval(this.timer);
    this.timer = null;
  }

  private async tick(): Promise<void> {
    if (this.inFlight) return; // a slow server: skip a beat rather than pile up requests
    this.inFlight = true;
    try {
      const headers: Record<string, string> = {};
      if (this.token) headers.authorization = `Bearer ${this.token}`;
      const r = await fetch('/metrics', { headers, cache: 'no-store' });
      if (!r.ok) {
        this.state = { ok: false, status: r.status, message: r.status === 401 ? 'the server needs its metrics_token for /metrics' : `HTTP ${r.status}` };
      } else {
        const raw = reduce(Date.now(), parseMetrics(await r.text()));
        const p = derive(this.raws, raw);
        this.raws.push(raw);
        // Raw samples are only needed as far back as the quantile window.
        while (this.raws.length > 2 && raw.t - this.raws[1].t >= QUANTILE_WINDOW_MS) this.raws.shift();
        this.points.push(p);
        if (this.points.length > this.keep) this.points.shift();
        this.state = { ok: true };
      }
    } catch (e) {
      this.state = { ok: false, status: 0, message: `could not reach the server (${String(e)})` };
    } finally {
      this.inFlight = false;
    }
    this.onUpdate?.();
  }
}
