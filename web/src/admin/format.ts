// Formatting of times, durations and numbers for the tables.

/** Unix ms to an ISO-like UTC string; 0 and missing mean "never". */
export function ts(ms: unknown): string {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) return 'never';
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', ' UTC');
}

/** How long ago, for "last success 3 min ago". */
export function ago(ms: unknown, now = Date.now()): string {
  if (typeof ms !== 'number' || ms <= 0) return 'never';
  const s = Math.round((now - ms) / 1000);
  if (s < 0) return 'in ' + dur(-s * 1000);
  return dur(s * 1000) + ' ago';
}

export function dur(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** A rate or gauge with a sensible number of decimals. */
export function num(v: number | null | undefined, digits = 1): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  if (Math.abs(v) >= 100) return v.toFixed(0);
  return v.toFixed(digits);
}

/** Seconds to a latency string in ms or s. */
export function latency(sec: number | null): string {
  if (sec === null || !Number.isFinite(sec)) return '—';
  if (sec < 1) return `${(sec * 1000).toFixed(sec < 0.01 ? 2 : 1)} ms`;
  return `${sec.toFixed(2)} s`;
}

export function str(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  try { return JSON.stringify(v); } catch { return String(v); }
}
