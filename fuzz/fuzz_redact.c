/* libFuzzer target for redaction (hooks/redact.c). Input: a first line of
 * space-separated paths ("=" in front masks), then a JSON document. Paths
 * jpath refuses are dropped. Whenever the document is one valid JSON value
 * the redacted copy must be one too (read back with util/json.h), no larger
 * in tokens, and a copy with no redaction must be byte-identical; an
 * invalid document must be refused with nothing appended. Seeds:
 * fuzz/corpus/redact/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hooks/redact.h"
#include "util/json.h"
#include "util/status.h"

/* Splits the first line into rules; returns how many (strings in buf). */
static size_t rules_of(char *buf, cfg_redact *rules)
{
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && n < CFG_MAX_REDACT;
         t = strtok_r(NULL, " ", &save)) {
        cfg_redact r = {t + (*t == '='), *t == '='};
        redaction *one = NULL;
        if (redact_new(&r, 1, &one) != PL_OK) continue; /* not a valid path */
        redact_free(one);
        rules[n++] = r;
    }
    return n;
}

/* Tokens of one valid JSON value, or -1. */
static int tokens(json_doc *d, const char *s, size_t n)
{
    json_limits lim = {.max_tokens = n + 1, .max_depth = JSON_MAX_DEPTH_CAP};
    if (json_parse(d, s, n, &lim) != PL_OK || json_count(d) != 1) return -1;
    return json_ntok(d);
}

static void check(const redaction *r, const char *root, const char *doc, size_t len, int ntok)
{
    sbuf o;
    sbuf_init(&o);
    sbuf_puts(&o, "x");
    int rc = root ? redact_member(r, root, doc, len, &o) : redact_apply(r, doc, len, &o);
    if (ntok < 0) {
        if (rc == PL_OK || o.len != 1) abort();
    } else {
        if (rc != PL_OK) abort();
        json_doc d;
        json_doc_init(&d);
        int out = tokens(&d, o.data + 1, o.len - 1);
        if (out < 0 || out > ntok) abort();
        if (!r && (o.len - 1 != len || memcmp(o.data + 1, doc, len))) abort();
        json_doc_release(&d);
    }
    sbuf_release(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    if (!nl || size > (1u << 20)) return 0;
    size_t plen = (size_t)(nl - (const char *)data);
    char *paths = malloc(plen + 1);
    if (!paths) return 0;
    memcpy(paths, data, plen);
    paths[plen] = '\0';
    cfg_redact rules[CFG_MAX_REDACT];
    size_t n = strlen(paths) == plen ? rules_of(paths, rules) : 0;
    redaction *r = NULL;
    if (redact_new(rules, n, &r) != PL_OK) abort(); /* each was valid alone */
    const char *doc = nl + 1;
    size_t len = size - plen - 1;
    json_doc d;
    json_doc_init(&d);
    int ntok = tokens(&d, doc, len);
    json_doc_release(&d);
    check(r, NULL, doc, len, ntok);
    check(r, "data", doc, len, ntok);
    check(r, "headers", doc, len, ntok);
    check(NULL, NULL, doc, len, ntok);
    redact_free(r);
    free(paths);
    return 0;
}
