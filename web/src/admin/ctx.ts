// What every page gets: the signed-in API client and the metrics sampler.
import type { Api } from './api';
import type { Sampler } from './metrics';

export interface Ctx {
  api: Api;
  sampler: Sampler;
  /** Goes to another page (a hash route such as "trace=ID"). */
  go(hash: string): void;
}

/** A rendered page; `dispose` stops its timers when the operator leaves it. */
export interface Page {
  el: HTMLElement;
  dispose?(): void;
}
