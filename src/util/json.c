/* Strict JSON tokenizer: one non-recursive pass enforces RFC 8259 and writes the
 * tokens as it goes, subtree ends included. (It used to validate first and then
 * run jsmn over the input again: the second pass was half of parsing a command.) */
#include "util/json.h"

#include <limits.h>
#include <string.h>

#include "util/hex.h"
#include "util/mem.h"
#include "util/status.h"
#include "util/swar.h"
#include "util/utf8.h"

struct json_tok {
    int type;   /* enum json_kind */
    int start;  /* first byte; a string's opening quote */
    int end;    /* one past the last byte; past a string's closing quote */
    int size;   /* elements, members; 1 for an object key */
    int parent; /* enclosing array/object; for a member's value, its key; -1 */
    int next;   /* index just after this token's subtree */
    int esc;    /* a string with an escape (compares must decode it) */
};

/* ---------------------------------------------------------------- doc lifecycle */

void json_doc_init(json_doc *d)
{
    memset(d, 0, sizeof(*d));
}

void json_doc_release(json_doc *d)
{
    pl_free(d->_tok);
    json_doc_init(d);
}

const char *json_error(const json_doc *d, size_t *off)
{
    if (off) *off = d->_err_off;
    return d->_err_msg;
}

/* ---------------------------------------------------------------- validator */

struct val {
    const unsigned char *s;
    size_t len;
    size_t pos;
    json_doc *d;        /* the tokens are written into d->_tok */
    int cur;            /* innermost open array or object; -1 at the top */
    int key;            /* the key whose value comes next; -1 if none */
    int esc;            /* the string being scanned has an escape */
    const char *opaque; /* json_limits.opaque_key, and its length */
    size_t opaque_len;
    int opaque_next; /* the value that comes next is opaque */
    unsigned skip;   /* inside an opaque container: its depth; else 0 */
    size_t ntok;
    size_t max_tok;
    unsigned depth;
    unsigned max_depth;
    int status;
    const char *msg;
    size_t err_off;
    unsigned char is_obj[JSON_MAX_DEPTH_CAP / 8]; /* bit per level: object or array */
};

static int fail_at(struct val *v, int status, size_t off, const char *msg)
{
    v->status = status;
    v->msg = msg;
    v->err_off = off;
    return status;
}

/* Byte classes, looked up once per structural byte instead of compared
 * four or seven times. */
enum { C_WS = 1, C_DELIM = 2 };
static const unsigned char byte_class[256] = {
    ['\t'] = C_WS | C_DELIM, ['\n'] = C_WS | C_DELIM, ['\r'] = C_WS | C_DELIM,
    [' '] = C_WS | C_DELIM,  [','] = C_DELIM,         [']'] = C_DELIM,
    ['}'] = C_DELIM,
};

static inline int is_ws(unsigned char c)
{
    return byte_class[c] & C_WS;
}

static inline int is_delim(unsigned char c)
{
    return byte_class[c] & C_DELIM;
}

/* The first position from pos that is not whitespace (len at the end). */
static inline size_t ws_end(const unsigned char *s, size_t len, size_t pos)
{
    while (pos < len && is_ws(s[pos]))
        pos++;
    return pos;
}

static size_t skip_ws(struct val *v)
{
    size_t from = v->pos;
    v->pos = ws_end(v->s, v->len, v->pos);
    return v->pos - from;
}

/* Reads 4 hex digits at p (bounds already checked by the caller); -1 if not hex. */
static long hex4(const unsigned char *p)
{
    long cp = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_val(p[i]);
        if (h < 0) return -1;
        cp = cp * 16 + h;
    }
    return cp;
}

/* Validates the escape at v->pos (a backslash) and steps past it. */
static int scan_escape(struct val *v)
{
    size_t at = v->pos;
    v->esc = 1;
    if (v->len - at < 2) return fail_at(v, PL_EINVAL, at, "unterminated string");
    switch (v->s[at + 1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
        v->pos += 2;
        return PL_OK;
    case 'u':
        break;
    default:
        return fail_at(v, PL_EINVAL, at, "invalid escape in string");
    }
    long cp = v->len - at >= 6 ? hex4(v->s + at + 2) : -1;
    if (cp < 0) return fail_at(v, PL_EINVAL, at, "invalid \\u escape");
    if (cp >= 0xDC00 && cp <= 0xDFFF) return fail_at(v, PL_EINVAL, at, "lone low surrogate");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        const unsigned char *q = v->s + at + 6;
        long lo = -1;
        if (v->len - at >= 12 && q[0] == '\\' && q[1] == 'u') lo = hex4(q + 2);
        if (lo < 0xDC00 || lo > 0xDFFF)
            return fail_at(v, PL_EINVAL, at, "high surrogate not followed by low surrogate");
        v->pos += 6;
    }
    v->pos += 6;
    return PL_OK;
}

/* How many bytes at p, up to 8, are plain: no quote, backslash, control
 * or non-ASCII byte. */
static unsigned plain_run(const unsigned char *p)
{
    uint64_t w = swar_load(p);
    return swar_first(swar_json_stops(w) | (w & SWAR_HIGHS));
}

/* Scans the string whose opening quote is at pos and returns the position
 * past its closing quote, or 0 with v->status set (no string ends at 0).
 * An escape sets v->esc. The position stays in a register: this loop and
 * the one in scan_value are where a command's bytes are read. */
static inline size_t scan_str(struct val *v, size_t pos)
{
    const unsigned char *s = v->s;
    const size_t len = v->len;
    size_t start = pos++;
    for (;;) {
        /* Whole plain words, then straight to the byte that stops the run:
         * a short key costs one word, not a check per byte. */
        while (len - pos >= 8) {
            unsigned k = plain_run(s + pos);
            pos += k;
            if (k < 8) break;
        }
        if (pos >= len) break;
        unsigned char c = s[pos];
        if (c == '"') return pos + 1;
        if (c == '\\') {
            v->pos = pos;
            if (scan_escape(v) != PL_OK) return 0;
            pos = v->pos;
        } else if (c < 0x20) {
            fail_at(v, PL_EINVAL, pos, "control character in string");
            return 0;
        } else if (c < 0x80) {
            pos++;
        } else {
            size_t n = utf8_seq_len(s + pos, len - pos);
            if (!n) {
                fail_at(v, PL_EINVAL, pos, "invalid UTF-8 in string");
                return 0;
            }
            pos += n;
        }
    }
    fail_at(v, PL_EINVAL, start, "unterminated string");
    return 0;
}

static size_t digits(struct val *v)
{
    size_t from = v->pos;
    while (v->len - v->pos >= 8) {
        unsigned k = swar_first(swar_nondigits(swar_load(v->s + v->pos)));
        v->pos += k;
        if (k < 8) return v->pos - from;
    }
    while (v->pos < v->len && v->s[v->pos] >= '0' && v->s[v->pos] <= '9')
        v->pos++;
    return v->pos - from;
}

/* RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? then a delimiter. */
static int scan_number(struct val *v)
{
    size_t start = v->pos;
    if (v->s[v->pos] == '-') v->pos++;
    if (v->pos < v->len && v->s[v->pos] == '0') {
        v->pos++;
    } else if (!digits(v)) {
        return fail_at(v, PL_EINVAL, start, "invalid number");
    }
    if (v->pos < v->len && v->s[v->pos] == '.') {
        v->pos++;
        if (!digits(v)) return fail_at(v, PL_EINVAL, start, "invalid number");
    }
    if (v->pos < v->len && (v->s[v->pos] == 'e' || v->s[v->pos] == 'E')) {
        v->pos++;
        if (v->pos < v->len && (v->s[v->pos] == '+' || v->s[v->pos] == '-')) v->pos++;
        if (!digits(v)) return fail_at(v, PL_EINVAL, start, "invalid number");
    }
    if (v->pos < v->len && !is_delim(v->s[v->pos]))
        return fail_at(v, PL_EINVAL, start, "invalid number");
    return PL_OK;
}

static int scan_literal(struct val *v)
{
    static const char *const lits[] = {"true", "false", "null"};
    for (size_t i = 0; i < sizeof(lits) / sizeof(lits[0]); i++) {
        size_t n = strlen(lits[i]);
        if (v->len - v->pos >= n && memcmp(v->s + v->pos, lits[i], n) == 0 &&
            (v->len - v->pos == n || is_delim(v->s[v->pos + n]))) {
            v->pos += n;
            return PL_OK;
        }
    }
    return fail_at(v, PL_EINVAL, v->pos, "invalid literal");
}

/* Room for one more token; the array is the doc's, kept across parses. */
static int grow_tokens(struct val *v)
{
    json_doc *d = v->d;
    if (v->ntok < d->_cap) return PL_OK;
    size_t cap = d->_cap ? d->_cap * 2 : 64;
    if (cap > v->max_tok) cap = v->max_tok;
    if (cap > SIZE_MAX / sizeof(struct json_tok)) return fail_at(v, PL_ENOMEM, 0, "out of memory");
    struct json_tok *t = pl_realloc(d->_tok, cap * sizeof(*t));
    if (!t) return fail_at(v, PL_ENOMEM, 0, "out of memory");
    d->_tok = t;
    d->_cap = cap;
    return PL_OK;
}

/* Starts a token at `at`: a member's value belongs to its key, anything
 * else to the open container (if any), whose size counts it. Returns its
 * index, or -1 with v->status set. */
static inline int emit(struct val *v, enum json_kind type, size_t at)
{
    if (v->ntok >= v->max_tok) {
        fail_at(v, PL_ELIMIT, at, "too many tokens");
        return -1;
    }
    if (v->ntok >= v->d->_cap && grow_tokens(v) != PL_OK) return -1;
    struct json_tok *toks = v->d->_tok;
    int i = (int)v->ntok++;
    int parent = v->key >= 0 ? v->key : v->cur;
    toks[i] = (struct json_tok){
        .type = type, .start = (int)at, .end = -1, .parent = parent, .next = i + 1};
    if (parent >= 0) toks[parent].size++;
    v->key = -1;
    return i;
}

/* Closes token i at `end`: its subtree ends here, and so does its key's. */
static inline void finish(struct val *v, int i, size_t end)
{
    struct json_tok *toks = v->d->_tok;
    toks[i].end = (int)end;
    toks[i].next = (int)v->ntok;
    int p = toks[i].parent;
    if (p >= 0 && toks[p].type == JSON_KIND_STRING) toks[p].next = (int)v->ntok;
}

/* A string token (key or value) at pos, scanned whole (inside an opaque
 * value only scanned). Returns the position after it, or 0. */
static inline size_t string_token(struct val *v, size_t pos, int as_key)
{
    v->esc = 0;
    if (v->skip) return scan_str(v, pos);
    int i = emit(v, JSON_KIND_STRING, pos);
    if (i < 0) return 0;
    size_t end = scan_str(v, pos);
    if (!end) return 0;
    v->d->_tok[i].esc = v->esc;
    finish(v, i, end);
    if (as_key) {
        v->key = i;
        v->opaque_next = v->opaque && !v->esc && end - pos - 2 == v->opaque_len &&
                         memcmp(v->s + pos + 1, v->opaque, v->opaque_len) == 0;
    }
    return end;
}

/* A number or literal at v->pos, scanned whole. */
static int scalar_token(struct val *v, enum json_kind type)
{
    v->opaque_next = 0;
    int (*scan)(struct val *) = type == JSON_KIND_NUMBER ? scan_number : scan_literal;
    if (v->skip) return scan(v);
    int i = emit(v, type, v->pos);
    if (i < 0) return v->status;
    if (scan(v) != PL_OK) return v->status;
    finish(v, i, v->pos);
    return PL_OK;
}

/* Closes the open container; v->pos is past its bracket and v->depth its
 * parent's. Inside an opaque value only the value itself has a token. */
static void close_container(struct val *v)
{
    if (v->skip) {
        if (v->depth + 1 != v->skip) return;
        v->skip = 0;
    }
    int c = v->cur;
    finish(v, c, v->pos);
    int p = v->d->_tok[c].parent;
    /* A member's value: the container it sits in is its key's parent. */
    v->cur = p >= 0 && v->d->_tok[p].type == JSON_KIND_STRING ? v->d->_tok[p].parent : p;
}

static int top_is_obj(const struct val *v)
{
    unsigned lvl = v->depth - 1;
    return (v->is_obj[lvl / 8] >> (lvl % 8)) & 1;
}

/* Opens the container whose bracket is at v->pos and steps past it. */
static int push(struct val *v, int obj)
{
    if (v->depth >= v->max_depth) return fail_at(v, PL_ELIMIT, v->pos, "nesting too deep");
    if (!v->skip) {
        int i = emit(v, obj ? JSON_KIND_OBJECT : JSON_KIND_ARRAY, v->pos);
        if (i < 0) return v->status;
        v->cur = i;
        /* An opaque value is one token: nothing inside it is emitted. */
        if (v->opaque_next) v->skip = v->depth + 1;
    }
    v->opaque_next = 0;
    unsigned lvl = v->depth++;
    unsigned char bit = (unsigned char)(1u << (lvl % 8));
    if (obj)
        v->is_obj[lvl / 8] |= bit;
    else
        v->is_obj[lvl / 8] &= (unsigned char)~bit;
    v->pos++;
    return PL_OK;
}

static int end_of_input(struct val *v, size_t pos)
{
    return fail_at(v, PL_EINVAL, pos, "unexpected end of input");
}

/* Consumes one complete top-level value. Nesting is tracked in v->is_obj, not on
 * the C stack, so hostile depth costs nothing but the ELIMIT answer. The
 * grammar's states are the three labels; pos lives in a register and goes
 * to v->pos only around the helpers that take it there. */
static int scan_value(struct val *v)
{
    const unsigned char *s = v->s;
    const size_t len = v->len;
    size_t pos = v->pos;
    int obj;

value: /* a value starts here, after optional whitespace */
    pos = ws_end(s, len, pos);
    if (pos == len) return end_of_input(v, pos);
    switch (s[pos]) {
    case '{':
    case '[':
        obj = s[pos] == '{';
        v->pos = pos;
        if (push(v, obj) != PL_OK) return v->status;
        pos = v->pos;
        pos = ws_end(s, len, pos);
        if (pos == len) return end_of_input(v, pos);
        if (s[pos] == (obj ? '}' : ']')) {
            v->pos = ++pos;
            v->depth--;
            close_container(v);
            goto after;
        }
        if (obj) goto key;
        goto value;
    case '"':
        v->opaque_next = 0;
        if (!(pos = string_token(v, pos, 0))) return v->status;
        goto after;
    case 't':
    case 'f':
    case 'n':
        v->pos = pos;
        if (scalar_token(v, s[pos] == 't'   ? JSON_KIND_TRUE
                            : s[pos] == 'f' ? JSON_KIND_FALSE
                                            : JSON_KIND_NULL) != PL_OK)
            return v->status;
        pos = v->pos;
        goto after;
    default:
        if (s[pos] != '-' && (s[pos] < '0' || s[pos] > '9'))
            return fail_at(v, PL_EINVAL, pos, "unexpected character");
        v->pos = pos;
        if (scalar_token(v, JSON_KIND_NUMBER) != PL_OK) return v->status;
        pos = v->pos;
        goto after;
    }

key: /* a member's key starts here, whitespace skipped */
    if (s[pos] != '"') return fail_at(v, PL_EINVAL, pos, "expected a string key");
    if (!(pos = string_token(v, pos, 1))) return v->status;
    pos = ws_end(s, len, pos);
    if (pos == len) return end_of_input(v, pos);
    if (s[pos] != ':') return fail_at(v, PL_EINVAL, pos, "expected ':' after key");
    pos++;
    goto value;

after: /* a value ended here */
    if (v->depth == 0) {
        v->pos = pos;
        return PL_OK;
    }
    pos = ws_end(s, len, pos);
    if (pos == len) return end_of_input(v, pos);
    obj = top_is_obj(v);
    if (s[pos] == ',') {
        pos++;
        if (!obj) goto value;
        pos = ws_end(s, len, pos);
        if (pos == len) return end_of_input(v, pos);
        goto key;
    }
    if (s[pos] != (obj ? '}' : ']'))
        return fail_at(v, PL_EINVAL, pos, "expected ',' or closing bracket");
    v->pos = ++pos;
    v->depth--;
    close_container(v);
    goto after;
}

static int validate(struct val *v, int *nroots)
{
    int roots = 0;
    for (;;) {
        size_t ws = skip_ws(v);
        if (v->pos == v->len) break;
        if (roots > 0 && ws == 0)
            return fail_at(v, PL_EINVAL, v->pos, "values must be separated by whitespace");
        if (scan_value(v) != PL_OK) return v->status;
        roots++;
    }
    if (roots == 0) return fail_at(v, PL_EINVAL, v->pos, "empty document");
    *nroots = roots;
    return PL_OK;
}

/* ---------------------------------------------------------------- parse */

int json_parse(json_doc *d, const char *src, size_t len, const json_limits *lim)
{
    struct val v = {.s = (const unsigned char *)src, .len = len, .d = d, .cur = -1, .key = -1};
    if (lim && lim->opaque_key) {
        v.opaque = lim->opaque_key;
        v.opaque_len = strlen(lim->opaque_key);
    }
    size_t max_tok = lim && lim->max_tokens ? lim->max_tokens : JSON_DEFAULT_MAX_TOKENS;
    unsigned max_depth = lim && lim->max_depth ? lim->max_depth : JSON_DEFAULT_MAX_DEPTH;
    v.max_tok = max_tok < INT_MAX ? max_tok : INT_MAX;
    v.max_depth = max_depth < JSON_MAX_DEPTH_CAP ? max_depth : JSON_MAX_DEPTH_CAP;
    int nroots = 0;

    d->_src = src;
    d->_len = len;
    d->_ntok = 0;
    d->_nroots = 0;
    d->_err_msg = NULL;
    d->_err_off = 0;
    if (len >= INT_MAX) { /* jsmn keeps offsets in int */
        fail_at(&v, PL_ELIMIT, 0, "document too large");
        goto fail;
    }
    if (!src && len) {
        fail_at(&v, PL_EINVAL, 0, "no input");
        goto fail;
    }
    if (validate(&v, &nroots) != PL_OK) goto fail;
    d->_ntok = (int)v.ntok;
    d->_nroots = nroots;
    return PL_OK;
fail:
    d->_err_msg = v.msg;
    d->_err_off = v.err_off;
    return v.status;
}

/* ---------------------------------------------------------------- navigation */

static const struct json_tok *tok_at(const json_doc *d, int tok)
{
    return tok >= 0 && tok < d->_ntok ? &d->_tok[tok] : NULL;
}

int json_count(const json_doc *d)
{
    return d->_nroots;
}

int json_ntok(const json_doc *d)
{
    return d->_ntok;
}

int json_root(const json_doc *d, int i)
{
    if (i < 0 || i >= d->_nroots) return -1;
    int t = 0;
    while (i-- > 0)
        t = d->_tok[t].next;
    return t;
}

enum json_kind json_kind(const json_doc *d, int tok)
{
    const struct json_tok *t = tok_at(d, tok);
    return t ? (enum json_kind)t->type : JSON_KIND_NONE;
}

int json_size(const json_doc *d, int tok)
{
    const struct json_tok *t = tok_at(d, tok);
    return t && (t->type == JSON_KIND_OBJECT || t->type == JSON_KIND_ARRAY) ? t->size : 0;
}

int json_skip(const json_doc *d, int tok)
{
    const struct json_tok *t = tok_at(d, tok);
    return t ? t->next : -1;
}

int json_child(const json_doc *d, int tok)
{
    return json_size(d, tok) > 0 ? tok + 1 : -1;
}

int json_next(const json_doc *d, int tok)
{
    const struct json_tok *t = tok_at(d, tok);
    if (!t || t->next >= d->_ntok) return -1;
    return d->_tok[t->next].parent == t->parent ? t->next : -1;
}

static int is_key(const json_doc *d, const struct json_tok *t)
{
    return t->type == JSON_KIND_STRING && t->parent >= 0 &&
           d->_tok[t->parent].type == JSON_KIND_OBJECT;
}

int json_obj_val(const json_doc *d, int key)
{
    const struct json_tok *t = tok_at(d, key);
    return t && is_key(d, t) ? key + 1 : -1;
}

int json_obj_fields(const json_doc *d, int obj, const json_field *restrict fields, size_t n,
                    int *restrict vals)
{
    for (size_t i = 0; i < n; i++)
        vals[i] = -1;
    if (json_kind(d, obj) != JSON_KIND_OBJECT) return -1;
    if (!d->_tok[obj].size) return 0;
    /* The members are walked over the token array directly, once for all
     * the keys a command reads, and a key without escapes is compared in
     * place, its length first. */
    const struct json_tok *toks = d->_tok;
    int members = 0;
    for (int k = obj + 1;; members++) {
        const struct json_tok *t = &toks[k];
        size_t len = (size_t)(t->end - t->start - 2);
        const char *raw = d->_src + t->start + 1;
        /* A later duplicate overwrites: the last wins. */
        if (t->esc) {
            for (size_t i = 0; i < n; i++)
                if (json_str_eqn(d, k, fields[i].key, fields[i].len)) vals[i] = k + 1;
        } else {
            /* Keys of one length mostly differ in their first byte. */
            char c0 = len ? raw[0] : 0;
            for (size_t i = 0; i < n; i++) {
                if (fields[i].len != len) continue;
                if (len && (fields[i].key[0] != c0 || memcmp(raw, fields[i].key, len))) continue;
                vals[i] = k + 1;
            }
        }
        /* The next member, as json_next finds it. */
        if (t->next >= d->_ntok || toks[t->next].parent != t->parent) return members + 1;
        k = t->next;
    }
}

int json_obj_get(const json_doc *d, int obj, const char *key)
{
    json_field f = {key, strlen(key)};
    int v;
    json_obj_fields(d, obj, &f, 1, &v);
    return v;
}

/* ---------------------------------------------------------------- values */

int json_raw(const json_doc *d, int tok, const char **p, size_t *n)
{
    const struct json_tok *t = tok_at(d, tok);
    if (!t) return PL_EINVAL;
    *p = d->_src + t->start;
    *n = (size_t)(t->end - t->start);
    return PL_OK;
}

int json_str_esc(const json_doc *d, int tok)
{
    const struct json_tok *t = tok_at(d, tok);
    return t && t->type == JSON_KIND_STRING && t->esc;
}

int json_str_raw(const json_doc *d, int tok, const char **p, size_t *n)
{
    const struct json_tok *t = tok_at(d, tok);
    if (!t || t->type != JSON_KIND_STRING) return PL_EINVAL;
    *p = d->_src + t->start + 1;
    *n = (size_t)(t->end - t->start - 2);
    return PL_OK;
}

static size_t utf8_put(unsigned long cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the (validated) escape at *pp into out, advancing *pp; returns the
 * number of bytes written (1-4). */
static size_t unescape(const char **pp, char out[4])
{
    const unsigned char *p = (const unsigned char *)*pp;
    static const char from[] = "\"\\/bfnrt";
    static const char to[] = "\"\\/\b\f\n\r\t";
    const char *hit = p[1] != 'u' ? strchr(from, p[1]) : NULL;
    if (hit) {
        *pp += 2;
        out[0] = to[hit - from];
        return 1;
    }
    unsigned long cp = (unsigned long)hex4(p + 2);
    *pp += 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        unsigned long lo = (unsigned long)hex4(p + 8);
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        *pp += 6;
    }
    return utf8_put(cp, out);
}

int json_str_eqn(const json_doc *d, int tok, const char *s, size_t n)
{
    const char *p, *end;
    size_t len;
    if (json_str_raw(d, tok, &p, &len) != PL_OK) return 0;
    if (!d->_tok[tok].esc) return len == n && memcmp(p, s, n) == 0;
    end = p + len;
    size_t at = 0;
    while (p < end) {
        if (*p != '\\') {
            if (at == n || s[at++] != *p++) return 0;
            continue;
        }
        char buf[4];
        size_t k = unescape(&p, buf);
        if (n - at < k || memcmp(s + at, buf, k) != 0) return 0;
        at += k;
    }
    return at == n;
}

int json_str_eq(const json_doc *d, int tok, const char *lit)
{
    return json_str_eqn(d, tok, lit, strlen(lit));
}

int json_str_copy(const json_doc *d, int tok, char *out, size_t cap, size_t *outlen)
{
    const char *p, *end;
    size_t len, at = 0;
    if (json_str_raw(d, tok, &p, &len) != PL_OK) return PL_EINVAL;
    end = p + len;
    while (p < end) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        size_t plain = (size_t)((bs ? bs : end) - p);
        if (cap - at <= plain) return PL_ELIMIT; /* keep room for the NUL */
        memcpy(out + at, p, plain);
        at += plain;
        p += plain;
        if (!bs) break;
        char buf[4];
        size_t k = unescape(&p, buf);
        if (cap - at <= k) return PL_ELIMIT;
        memcpy(out + at, buf, k);
        at += k;
    }
    if (cap - at < 1) return PL_ELIMIT;
    out[at] = '\0';
    if (outlen) *outlen = at;
    return PL_OK;
}

/* Parses the digits of an integer number token into a magnitude; *neg set for '-'. */
static int int_magnitude(const json_doc *d, int tok, uint64_t *mag, int *neg)
{
    const char *p;
    size_t n;
    if (json_kind(d, tok) != JSON_KIND_NUMBER || json_raw(d, tok, &p, &n) != PL_OK)
        return PL_EINVAL;
    *neg = p[0] == '-';
    uint64_t v = 0;
    for (size_t i = (size_t)*neg; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return PL_EINVAL; /* '.', 'e', 'E' */
        unsigned dgt = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - dgt) / 10) return PL_ELIMIT;
        v = v * 10 + dgt;
    }
    *mag = v;
    return PL_OK;
}

int json_u64(const json_doc *d, int tok, uint64_t *out)
{
    uint64_t mag;
    int neg, rc = int_magnitude(d, tok, &mag, &neg);
    if (rc == PL_OK && neg) rc = PL_EINVAL;
    if (rc == PL_OK) *out = mag;
    return rc;
}

int json_i64(const json_doc *d, int tok, int64_t *out)
{
    uint64_t mag;
    int neg, rc = int_magnitude(d, tok, &mag, &neg);
    if (rc != PL_OK) return rc;
    if (neg) {
        if (mag > (uint64_t)INT64_MAX + 1) return PL_ELIMIT;
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    } else {
        if (mag > (uint64_t)INT64_MAX) return PL_ELIMIT;
        *out = (int64_t)mag;
    }
    return PL_OK;
}

int json_bool(const json_doc *d, int tok, int *out)
{
    enum json_kind t = json_kind(d, tok);
    if (t != JSON_KIND_TRUE && t != JSON_KIND_FALSE) return PL_EINVAL;
    *out = t == JSON_KIND_TRUE;
    return PL_OK;
}
