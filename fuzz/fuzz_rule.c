/* libFuzzer target for the routing-rule matcher (hooks/rule.h). The input is
 * lines: a rule's match JSON, then the event's data, headers, channel and
 * type (missing lines take defaults). Whatever compiles is evaluated and
 * explained: the explanation must be one JSON object whose "matched" is the
 * evaluation's verdict. Seeds: fuzz/corpus/rule/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hooks/rule.h"
#include "util/json.h"
#include "util/sbuf.h"
#include "util/status.h"
#include "util/utf8.h"

/* The next line of [*p, end): its start and length; *p moves past it. */
static const char *line(const char **p, const char *end, size_t *n, const char *dflt)
{
    if (*p >= end) {
        *n = strlen(dflt);
        return dflt;
    }
    const char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
    *n = nl ? (size_t)(nl - s) : (size_t)(end - s);
    *p = nl ? nl + 1 : end;
    return s;
}

static void check_explain(const rule_match *m, const rule_event *ev)
{
    sbuf o;
    sbuf_init(&o);
    rule_match_explain(m, ev, &o);
    if (o.oom) abort();
    json_doc d;
    json_doc_init(&d);
    if (json_parse(&d, o.data, o.len, NULL) != PL_OK || json_count(&d) != 1) abort();
    int verdict = json_kind(&d, json_obj_get(&d, 0, "matched"));
    if (verdict != (rule_match_eval(m, ev) ? JSON_KIND_TRUE : JSON_KIND_FALSE)) abort();
    json_doc_release(&d);
    sbuf_release(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    size_t rn, dn, hn, cn, tn;
    const char *rule = line(&p, end, &rn, "{}");
    const char *d = line(&p, end, &dn, "{\"a\":1}");
    const char *h = line(&p, end, &hn, "{\"x-source\":\"s\"}");
    const char *c = line(&p, end, &cn, "alerts:eu:db1");
    const char *t = line(&p, end, &tn, "incident.open");
    /* Pubs' channels and types are UTF-8 (the protocol checks them). */
    if (!utf8_valid(c, cn) || !utf8_valid(t, tn)) return 0;
    json_t *j = json_loadb(rule, rn, JSON_DECODE_ANY, NULL);
    if (!j) return 0;
    rule_match *m = NULL;
    rule_error err;
    int rc = rule_match_compile(j, &m, &err);
    json_decref(j);
    if (rc == PL_EINVAL && (!err.path[0] || !err.reason[0])) abort();
    if (rc) return 0;
    rule_event *ev = rule_event_new();
    if (!ev) abort();
    rule_event_fields f = {.tenant = "t",
                           .channel = c,
                           .channel_len = cn,
                           .type = tn ? t : NULL,
                           .type_len = tn,
                           .data = d,
                           .data_len = dn,
                           .headers = hn ? h : NULL,
                           .headers_len = hn};
    rule_event_prepare(ev, &f);
    check_explain(m, ev);
    rule_event_free(ev);
    rule_match_free(m);
    return 0;
}
