/* libFuzzer target for the API's endpoint and route specs (hooks/spec.c):
 * the input is one JSON document given to both parsers. Whatever is
 * accepted must write back as JSON that parses again to the same
 * definition (an endpoint stored in hooks.db is reloaded from that text),
 * and an accepted route's rule must evaluate. Seeds: fuzz/corpus/hookspec/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hooks/hooks_int.h"
#include "util/sbuf.h"
#include "util/status.h"

static void check_endpoint(const json_t *spec)
{
    cfg_webhook w, back;
    char why[256];
    if (hk_webhook_from_json(spec, "t", &w, why, sizeof(why)) != PL_OK) {
        if (!why[0]) abort(); /* a refusal always says why */
        return;
    }
    sbuf o;
    sbuf_init(&o);
    if (hk_webhook_to_json(&w, true, &o) != PL_OK) abort();
    json_t *again = json_loadb(o.data, o.len, 0, NULL);
    if (!again || hk_webhook_from_json(again, "t", &back, why, sizeof(why)) != PL_OK) abort();
    if (strcmp(w.url, back.url) || w.n_secrets != back.n_secrets ||
        w.n_retry_schedule != back.n_retry_schedule || w.ordering != back.ordering ||
        w.max_attempts != back.max_attempts || w.rate != back.rate || w.enabled != back.enabled)
        abort();
    for (size_t i = 0; i < w.n_secrets; i++)
        if (strcmp(w.secrets[i], back.secrets[i]) ||
            w.secret_expires_ms[i] != back.secret_expires_ms[i])
            abort();
    for (size_t i = 0; i < w.n_retry_schedule; i++)
        if (w.retry_schedule[i] != back.retry_schedule[i]) abort();
    json_decref(again);
    sbuf_release(&o);
    hk_webhook_release(&w);
    hk_webhook_release(&back);
}

static void check_route(const json_t *spec)
{
    hk_route *r = NULL;
    char why[600];
    if (hk_route_from_json(spec, "t", &r, why, sizeof(why)) != PL_OK) {
        if (!why[0]) abort();
        return;
    }
    rule_event *ev = rule_event_new();
    rule_event_fields f = {
        .tenant = "t", .channel = "a:b", .channel_len = 3, .data = "{}", .data_len = 2};
    if (!ev || rule_event_prepare(ev, &f) != PL_OK) abort();
    rule_match_eval(r->match, ev);
    rule_event_free(ev);
    hk_route_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *spec = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!spec) return 0;
    check_endpoint(spec);
    check_route(spec);
    json_decref(spec);
    return 0;
}
