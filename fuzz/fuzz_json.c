/* libFuzzer target for the one-pass JSON tokenizer (json_parse): whatever it
 * accepts, jsmn (the tokenizer it replaced, kept as the reference) must read
 * as the same tokens: kind, span, size, parent and subtree end; navigation
 * must stay inside the token array. Seeds: fuzz/corpus/json/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include "proto/json.h"
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_doc d;
    json_doc_init(&d);
    json_limits lim = {.max_tokens = 4096, .max_depth = 64};
    if (json_parse(&d, (const char *)data, size, &lim) == PL_OK)
        compare((const char *)data, size, &d);
    else if (json_ntok(&d) != 0)
        abort(); /* a failed parse holds no tokens */
    json_doc_release(&d);
    return 0;
}
