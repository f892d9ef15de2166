/* libFuzzer target for the one-pass JSON tokenizer (json_parse): whatever it
 * accepts, jsmn (the tokenizer it replaced, kept as the reference) must read
 * as the same tokens: kind, span, size, parent and subtree end; navigation
 * must stay inside the token array. Read again with "data" values opaque, it
 * must accept and refuse alike and keep every other token. Seeds:
 * fuzz/corpus/json/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include "util/json.h"
#include "util/status.h"

static enum json_kind kind_of(const char *src, const jsmntok_t *t)
{
    switch (t->type) {
    case JSMN_OBJECT:
        return JSON_KIND_OBJECT;
    case JSMN_ARRAY:
        return JSON_KIND_ARRAY;
    case JSMN_STRING:
        return JSON_KIND_STRING;
    default:
        return src[t->start] == 't'   ? JSON_KIND_TRUE
               : src[t->start] == 'f' ? JSON_KIND_FALSE
               : src[t->start] == 'n' ? JSON_KIND_NULL
                                      : JSON_KIND_NUMBER;
    }
}

/* Subtree end of every jsmn token, the way the old converter computed it. */
static void subtree_ends(const jsmntok_t *t, int n, int *next)
{
    for (int i = 0; i < n; i++)
        next[i] = i + 1;
    for (int i = n - 1; i >= 0; i--)
        if (t[i].parent >= 0) next[t[i].parent] += next[i] - i;
}

static void compare(const char *src, size_t len, const json_doc *d)
{
    int n = json_ntok(d);
    jsmntok_t *t = malloc(sizeof(*t) * (size_t)(n + 1));
    int *next = malloc(sizeof(int) * (size_t)(n + 1));
    jsmn_parser p;
    jsmn_init(&p);
    if (!t || !next || jsmn_parse(&p, src, len, t, (unsigned)n + 1) != n) abort();
    subtree_ends(t, n, next);
    for (int i = 0; i < n; i++) {
        const char *raw;
        size_t rn;
        int q = t[i].type == JSMN_STRING; /* jsmn leaves the quotes out */
        if (json_kind(d, i) != kind_of(src, &t[i])) abort();
        if (json_raw(d, i, &raw, &rn) != PL_OK) abort();
        if (raw != src + t[i].start - q || rn != (size_t)(t[i].end - t[i].start + 2 * q)) abort();
        if (json_skip(d, i) != next[i]) abort();
        if (json_kind(d, i) == JSON_KIND_OBJECT || json_kind(d, i) == JSON_KIND_ARRAY) {
            if (json_size(d, i) != t[i].size) abort();
            /* Children are found by walking siblings: each has i as parent. */
            int k = json_child(d, i), count = 0;
            for (; k >= 0; k = json_next(d, k), count++)
                if (k >= n || t[k].parent != i) abort();
            if (count != t[i].size) abort();
        }
        if (q && t[i].parent >= 0 && t[t[i].parent].type == JSMN_OBJECT) {
            /* A key: its value follows, and an unescaped key equals its bytes. */
            if (json_obj_val(d, i) != i + 1) abort();
            if (!memchr(raw, '\\', rn) && !json_str_eqn(d, i, raw + 1, rn - 2)) abort();
        }
    }
    free(t);
    free(next);
}

/* 1 if token j of o is the value of a key spelled "data" (unescaped). */
static int is_opaque_value(const json_doc *o, int j)
{
    const char *raw;
    size_t rn;
    if (j == 0 || json_obj_val(o, j - 1) != j) return 0;
    json_raw(o, j - 1, &raw, &rn);
    return rn == 6 && !memcmp(raw, "\"data\"", 6);
}

/* The same input read with opaque "data" values: the same tokens in the same
 * order, except that a "data" container is one token without children. */
static void compare_opaque(const json_doc *full, const json_doc *o)
{
    int n = json_ntok(full), no = json_ntok(o), j = 0;
    for (int i = 0; i < n; j++) {
        const char *r1, *r2;
        size_t n1, n2;
        if (j >= no || json_kind(full, i) != json_kind(o, j)) abort();
        json_raw(full, i, &r1, &n1);
        json_raw(o, j, &r2, &n2);
        if (r1 != r2 || n1 != n2) abort();
        enum json_kind k = json_kind(o, j);
        if ((k == JSON_KIND_OBJECT || k == JSON_KIND_ARRAY) && is_opaque_value(o, j)) {
            if (json_size(o, j) != 0 || json_child(o, j) != -1 || json_skip(o, j) != j + 1) abort();
            i = json_skip(full, i);
            continue;
        }
        if (json_size(full, i) != json_size(o, j)) abort();
        i++;
    }
    if (j != no) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_doc d, o;
    json_doc_init(&d);
    json_doc_init(&o);
    json_limits lim = {.max_tokens = 4096, .max_depth = 64};
    json_limits olim = {.max_tokens = 4096, .max_depth = 64, .opaque_key = "data"};
    int rc = json_parse(&d, (const char *)data, size, &lim);
    int orc = json_parse(&o, (const char *)data, size, &olim);
    if (rc == PL_OK)
        compare((const char *)data, size, &d);
    else if (json_ntok(&d) != 0)
        abort(); /* a failed parse holds no tokens */
    /* Opaque values change tokens, never validity: only the token limit,
     * which they do not count against, may differ. */
    size_t off, ooff;
    const char *why = json_error(&d, &off), *owhy = json_error(&o, &ooff);
    int token_limit = rc == PL_ELIMIT && !strcmp(why, "too many tokens");
    if (!token_limit && (rc != orc || (rc != PL_OK && (strcmp(why, owhy) || off != ooff)))) abort();
    if (rc == PL_OK) compare_opaque(&d, &o);
    json_doc_release(&d);
    json_doc_release(&o);
    return 0;
}
