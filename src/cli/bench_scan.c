/* jsmn-based reader of Parley server lines for `parley bench`. jsmn yields
 * spans without copying, which keeps the client (one core, a million
 * deliveries a second) cheap; only the handful of fields the bench needs
 * are looked at, the rest is skipped by subtree. */
#include "cli/bench_scan.h"

#include <ctype.h>
#include <endian.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define JSMN_STATIC
#define JSMN_STRICT
#include <jsmn.h>

#include "util/mem.h"
#include "util/swar.h"

#define MAX_TOKENS (1u << 20)
/* jsmn finds the bracket a ']' closes by walking back over tokens, which
 * is quadratic in nesting depth; lines nested deeper are refused first. */
#define MAX_DEPTH 128

struct bench_scanner {
    bool no_fast; /* test hook: always take the jsmn path */
    jsmntok_t *toks;
    unsigned ntoks;
    bench_pub *pubs;
    size_t pubs_cap;
};

bench_scanner *bench_scanner_new(void)
{
    bench_scanner *sc = pl_calloc(1, sizeof(*sc));
    if (!sc) return NULL;
    sc->ntoks = 256;
    sc->toks = pl_malloc(sc->ntoks * sizeof(*sc->toks));
    if (!sc->toks) {
        pl_free(sc);
        return NULL;
    }
    return sc;
}

void bench_scanner_free(bench_scanner *sc)
{
    if (!sc) return;
    pl_free(sc->toks);
    pl_free(sc->pubs);
    pl_free(sc);
}

int bench_parse_u64(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 20) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d > 9) return -1;
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Index just past the subtree rooted at i. Object keys have size 1 in jsmn,
 * so counting pending children walks any nesting. */
static int skip(const jsmntok_t *t, int i, int n)
{
    int pending = 1;
    while (pending > 0 && i < n) {
        pending += t[i].size - 1;
        i++;
    }
    return i;
}

static bool is_key(const char *js, const jsmntok_t *t, const char *k)
{
    size_t kl = strlen(k);
    return t->type == JSMN_STRING && (size_t)(t->end - t->start) == kl &&
           memcmp(js + t->start, k, kl) == 0;
}

static int tok_u64(const char *js, const jsmntok_t *t, uint64_t *out)
{
    if (t->type != JSMN_PRIMITIVE) return -1;
    return bench_parse_u64(js + t->start, (size_t)(t->end - t->start), out);
}

static int tok_bool(const char *js, const jsmntok_t *t, bool *out)
{
    if (t->type != JSMN_PRIMITIVE) return -1;
    size_t n = (size_t)(t->end - t->start);
    if (n == 4 && memcmp(js + t->start, "true", 4) == 0)
        *out = true;
    else if (n == 5 && memcmp(js + t->start, "false", 5) == 0)
        *out = false;
    else
        return -1;
    return 0;
}

static int tok_epoch(const char *js, const jsmntok_t *t, char *out)
{
    size_t n = (size_t)(t->end - t->start);
    if (t->type != JSMN_STRING || n >= BENCH_EPOCH_MAX) return -1;
    memcpy(out, js + t->start, n);
    out[n] = '\0';
    return 0;
}

/* Reads data.t and data.s when data is an object; other data is allowed
 * (a pub not made by the bench) and leaves both 0. */
static int parse_data(const char *js, const jsmntok_t *t, int i, int n, bench_pub *p)
{
    if (t[i].type != JSMN_OBJECT) return skip(t, i, n);
    int pairs = t[i].size;
    i++;
    for (int k = 0; k < pairs && i < n; k++) {
        const jsmntok_t *key = &t[i];
        if (i + 1 >= n) return -1;
        if (is_key(js, key, "t")) {
            if (tok_u64(js, &t[i + 1], &p->t) < 0) p->t = 0;
        } else if (is_key(js, key, "s")) {
            if (tok_u64(js, &t[i + 1], &p->s) < 0) p->s = 0;
        }
        i = skip(t, i + 1, n);
    }
    return i;
}

/* Parses one key/value pair at i of a pub-like object (a push, an element
 * of result.pubs, or an error object). Fields only a whole line has go into
 * l when it is non-NULL. Returns the index after the value, or -1 on a type
 * error. */
static int parse_field(const char *js, const jsmntok_t *t, int i, int n, bench_pub *p,
                       bench_line *l, const char **push, size_t *push_len)
{
    if (i + 1 >= n || t[i].type != JSMN_STRING) return -1;
    const jsmntok_t *key = &t[i];
    const jsmntok_t *v = &t[i + 1];
    int bad = 0;
    if (is_key(js, key, "offset")) {
        bad = tok_u64(js, v, &p->offset);
    } else if (is_key(js, key, "data")) {
        return parse_data(js, t, i + 1, n, p);
    } else if (!l) {
        /* Pubs inside a result need nothing else. */
    } else if (is_key(js, key, "push")) {
        bad = v->type != JSMN_STRING;
        *push = js + v->start;
        *push_len = (size_t)(v->end - v->start);
    } else if (is_key(js, key, "channel")) {
        bad = v->type != JSMN_STRING;
        l->channel = js + v->start;
        l->channel_len = (size_t)(v->end - v->start);
    } else if (is_key(js, key, "epoch")) {
        bad = tok_epoch(js, v, l->epoch);
    } else if (is_key(js, key, "from")) {
        bad = tok_u64(js, v, &l->from);
    } else if (is_key(js, key, "to")) {
        bad = tok_u64(js, v, &l->to);
    } else if (is_key(js, key, "code")) {
        uint64_t c = 0;
        bad = tok_u64(js, v, &c) < 0 || c > 99999;
        l->code = (int)c;
    }
    return bad ? -1 : skip(t, i + 1, n);
}

/* Parses the object at i pair by pair; returns the next index or -1. */
static int parse_obj(const char *js, const jsmntok_t *t, int i, int n, bench_pub *p, bench_line *l,
                     const char **push, size_t *push_len)
{
    if (i >= n || t[i].type != JSMN_OBJECT) return -1;
    int pairs = t[i].size;
    i++;
    for (int k = 0; k < pairs && i >= 0; k++)
        i = parse_field(js, t, i, n, p, l, push, push_len);
    return i;
}

static int reserve_pubs(bench_scanner *sc, size_t n)
{
    if (n <= sc->pubs_cap) return 0;
    bench_pub *np = pl_realloc(sc->pubs, n * sizeof(*np));
    if (!np) return -1;
    sc->pubs = np;
    sc->pubs_cap = n;
    return 0;
}

static int parse_pubs(bench_scanner *sc, const char *js, int i, int n, bench_line *l)
{
    const jsmntok_t *t = sc->toks;
    if (t[i].type != JSMN_ARRAY) return -1;
    int count = t[i].size;
    if (reserve_pubs(sc, (size_t)count) < 0) return -1;
    i++;
    for (int k = 0; k < count; k++) {
        if (i >= n) return -1;
        bench_pub *p = &sc->pubs[k];
        memset(p, 0, sizeof(*p));
        i = parse_obj(js, t, i, n, p, NULL, NULL, NULL);
        if (i < 0) return -1;
    }
    l->pubs = sc->pubs;
    l->npubs = (size_t)count;
    return i;
}

static int parse_result(bench_scanner *sc, const char *js, int i, int n, bench_line *l)
{
    const jsmntok_t *t = sc->toks;
    if (t[i].type != JSMN_OBJECT) return -1;
    int pairs = t[i].size;
    i++;
    for (int k = 0; k < pairs; k++) {
        if (i + 1 >= n) return -1;
        const jsmntok_t *key = &t[i];
        const jsmntok_t *v = &t[i + 1];
        if (is_key(js, key, "offset")) {
            if (tok_u64(js, v, &l->offset) < 0) return -1;
            l->has_offset = true;
        } else if (is_key(js, key, "epoch")) {
            if (tok_epoch(js, v, l->epoch) < 0) return -1;
        } else if (is_key(js, key, "recovered")) {
            if (tok_bool(js, v, &l->recovered) < 0) return -1;
        } else if (is_key(js, key, "more")) {
            if (tok_bool(js, v, &l->more) < 0) return -1;
        } else if (is_key(js, key, "pubs")) {
            i = parse_pubs(sc, js, i + 1, n, l);
            if (i < 0) return -1;
            continue;
        }
        i = skip(t, i + 1, n);
    }
    return i;
}

/* Whether brackets (outside strings) nest at most MAX_DEPTH deep. */
static bool depth_ok(const char *s, size_t n)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '{' || ch == '[') {
            if (++depth > MAX_DEPTH) return false;
        } else if (ch == '}' || ch == ']') {
            depth--;
        }
    }
    return true;
}

static int tokenize(bench_scanner *sc, const char *line, size_t len)
{
    if (!depth_ok(line, len)) return -1;
    for (;;) {
        jsmn_parser p;
        jsmn_init(&p);
        int r = jsmn_parse(&p, line, len, sc->toks, sc->ntoks);
        if (r != JSMN_ERROR_NOMEM) return r;
        if (sc->ntoks >= MAX_TOKENS) return -1;
        jsmntok_t *nt = pl_realloc(sc->toks, 2 * sc->ntoks * sizeof(*nt));
        if (!nt) return -1;
        sc->toks = nt;
        sc->ntoks *= 2;
    }
}

static bench_kind push_kind(const char *s, size_t n)
{
    if (n == 3 && memcmp(s, "pub", 3) == 0) return BENCH_PUB;
    if (n == 3 && memcmp(s, "gap", 3) == 0) return BENCH_GAP;
    if (n == 4 && memcmp(s, "ping", 4) == 0) return BENCH_PING;
    if (n == 10 && memcmp(s, "disconnect", 10) == 0) return BENCH_DISCONNECT;
    return BENCH_PUSH_OTHER;
}

/* ------------------------------------------------------ fast path for pubs */

/* Nearly every line a bench client sees is a pub push, and jsmn's
 * tokenizer was most of the client's CPU. This walker reads exactly the
 * pub shape (an object whose "push" is "pub") in one pass; on anything else
 * or anything unusual it returns false and the line takes the jsmn path.
 * It is stricter than jsmn wherever they differ, so a line it accepts reads
 * the same both ways (a differential test checks this). */
typedef struct cur {
    const char *p, *end;
} cur;

static void ws(cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
        c->p++;
}

static bool eat(cur *c, char ch)
{
    ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* Bytes that end the plain run of a string: the quote, a backslash and the
 * control bytes (refused, as jsmn refuses them). One table lookup a byte in
 * one pass beats memchr here: most strings of a pub line are keys and ids
 * of 1 to 26 bytes, where the call and setup of each memchr cost more than
 * the scan (the client was 75% scanning with three passes a string). */
static const uint8_t str_stop[256] = {
    [0x00] = 1, [0x01] = 1, [0x02] = 1, [0x03] = 1, [0x04] = 1, [0x05] = 1, [0x06] = 1,
    [0x07] = 1, [0x08] = 1, [0x09] = 1, [0x0a] = 1, [0x0b] = 1, [0x0c] = 1, [0x0d] = 1,
    [0x0e] = 1, [0x0f] = 1, [0x10] = 1, [0x11] = 1, [0x12] = 1, [0x13] = 1, [0x14] = 1,
    [0x15] = 1, [0x16] = 1, [0x17] = 1, [0x18] = 1, [0x19] = 1, [0x1a] = 1, [0x1b] = 1,
    [0x1c] = 1, [0x1d] = 1, [0x1e] = 1, [0x1f] = 1, ['"'] = 1,  ['\\'] = 1,
};

/* Index of the first str_stop byte among the 8 at p, or 8. Finding the end
 * of a string 8 bytes at a time, without a branch per byte, is what keeps
 * the client ahead of the server. */
static unsigned first_stop(const char *p)
{
    return swar_first(swar_json_stops(swar_load(p)));
}

/* A string at c->p; sets the raw span between the quotes. Escapes are
 * checked as jsmn checks them, control bytes refused. */
static bool str(cur *c, const char **s, size_t *n)
{
    ws(c);
    if (c->p >= c->end || *c->p != '"') return false;
    const char *start = ++c->p, *p = start, *end = c->end;
    for (;;) {
        unsigned k = 8;
        while (end - p >= 8 && (k = first_stop(p)) == 8)
            p += 8;
        if (k < 8)
            p += k;
        else
            while (p < end && !str_stop[(unsigned char)*p])
                p++;
        if (p >= end || (unsigned char)*p < 0x20) return false;
        if (*p == '"') {
            *s = start;
            *n = (size_t)(p - start);
            c->p = p + 1;
            return true;
        }
        if (end - p < 2) return false;
        char e = p[1];
        if (e == 'u') {
            if (end - p < 6) return false;
            for (int i = 2; i < 6; i++)
                if (!isxdigit((unsigned char)p[i])) return false;
            p += 6;
        } else {
            if (e == '\0' || !strchr("\"/\\bfnrt", e)) return false;
            p += 2;
        }
    }
}

static bool is_delim(char ch)
{
    return ch == ',' || ch == '}' || ch == ']' || ch == ' ' || ch == '\t' || ch == '\r' ||
           ch == '\n';
}

/* A primitive (number, true, false, null): its raw span. */
static bool prim(cur *c, const char **s, size_t *n)
{
    ws(c);
    const char *start = c->p;
    if (c->p >= c->end) return false;
    char first = *c->p;
    if (!(first >= '0' && first <= '9') && first != '-' && first != 't' && first != 'f' &&
        first != 'n')
        return false;
    while (c->p < c->end && !is_delim(*c->p)) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"' || ch == '{' || ch == '[' || ch == ':' || ch < 0x20 || ch >= 0x7f)
            return false;
        c->p++;
    }
    *s = start;
    *n = (size_t)(c->p - start);
    return *n > 0;
}

/* Skips one well-formed value; recursion is bounded at 64 levels (deeper
 * lines take the general path). */
static bool skip_depth(cur *c, int depth)
{
    const char *s;
    size_t n;
    ws(c);
    if (c->p >= c->end || depth > 64) return false;
    if (*c->p == '"') return str(c, &s, &n);
    if (*c->p != '{' && *c->p != '[') return prim(c, &s, &n);
    bool obj = *c->p == '{';
    char close = obj ? '}' : ']';
    c->p++;
    if (eat(c, close)) return true;
    for (;;) {
        if (obj && (!str(c, &s, &n) || !eat(c, ':'))) return false;
        if (!skip_depth(c, depth + 1)) return false;
        if (eat(c, close)) return true;
        if (!eat(c, ',')) return false;
    }
}

static bool skip_value(cur *c)
{
    return skip_depth(c, 0);
}

static bool key_is(const char *k, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(k, want, n) == 0;
}

/* data: reads "t" and "s" when they are plain integers. */
static bool fast_data(cur *c, bench_pub *p)
{
    ws(c);
    if (c->p >= c->end || *c->p != '{') return skip_value(c);
    c->p++;
    if (eat(c, '}')) return true;
    for (;;) {
        const char *k, *v;
        size_t kn, vn;
        if (!str(c, &k, &kn) || !eat(c, ':')) return false;
        bool want_t = key_is(k, kn, "t"), want_s = key_is(k, kn, "s");
        ws(c);
        if ((want_t || want_s) && c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (!prim(c, &v, &vn)) return false;
            uint64_t x = 0;
            if (bench_parse_u64(v, vn, &x) < 0) x = 0;
            *(want_t ? &p->t : &p->s) = x;
        } else {
            if (!skip_value(c)) return false;
            /* As the general path: a later non-integer value clears it. */
            if (want_t) p->t = 0;
            if (want_s) p->s = 0;
        }
        if (eat(c, '}')) return true;
        if (!eat(c, ',')) return false;
    }
}

/* ------------------------------------------- the server's pub, no escapes */

/* A pub exactly as the server writes it:
 *   {"push":"pub","channel":S,"offset":N[,"epoch":S],"id":S,"ts":N,"data":V
 *    [,"info":{"user":S[,"client":S]}][,"class":S][,"attempt":N]}
 * with plain strings (no escape, no control byte) and plain unsigned
 * numbers outside data. Keys are matched as literals at fixed length, so
 * only values are scanned, string ends 16 bytes at a time, numbers 8 digits
 * a step: this is what lets one client core read the 4 M pubs a second a
 * server writes. Anything else (an escape, a sign, an exponent, another
 * order, whitespace) returns false and takes the general walk. Each string
 * and number this accepts is a token jsmn accepts with the same span, so
 * the line reads the same on every path. */

#define QLIT(c, s) qlit((c), (s), sizeof(s) - 1)

/* lit (n bytes, a constant) at c->p. Word compares the compiler folds into
 * immediates; memcmp was a call per key. */
static inline __attribute__((always_inline)) bool qlit(cur *c, const char *lit, size_t n)
{
    if ((size_t)(c->end - c->p) < n) return false;
    uint64_t a, b;
    if (n < 8) {
        for (size_t i = 0; i < n; i++)
            if (c->p[i] != lit[i]) return false;
    } else {
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            memcpy(&a, c->p + i, 8);
            memcpy(&b, lit + i, 8);
            if (a != b) return false;
        }
        if (i < n) {
            memcpy(&a, c->p + n - 8, 8);
            memcpy(&b, lit + n - 8, 8);
            if (a != b) return false;
        }
    }
    c->p += n;
    return true;
}

/* Bytes from p before the first quote, backslash or control byte. */
static inline size_t plain_run(const char *p, const char *end)
{
    const char *s = p;
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
    const __m128i ctl = _mm_set1_epi8(0x1f);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash));
        hit = _mm_or_si128(hit, _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v));
        unsigned m = (unsigned)_mm_movemask_epi8(hit);
        if (m) return (size_t)(p - s) + (unsigned)__builtin_ctz(m);
        p += 16;
    }
#endif
    while (end - p >= 8) {
        unsigned k = first_stop(p);
        if (k < 8) return (size_t)(p - s) + k;
        p += 8;
    }
    while (p < end && !str_stop[(unsigned char)*p])
        p++;
    return (size_t)(p - s);
}

/* A string without escapes or control bytes at c->p. */
static inline bool qstr(cur *c, const char **s, size_t *n)
{
    if (c->p >= c->end || *c->p != '"') return false;
    const char *start = c->p + 1;
    size_t run = plain_run(start, c->end);
    if (start + run >= c->end || start[run] != '"') return false;
    *s = start;
    *n = run;
    c->p = start + run + 1;
    return true;
}

/* Whether the 8 bytes in w (little-endian load) are all ASCII digits. */
static inline bool eight_digits(uint64_t w)
{
    return ((w & 0xf0f0f0f0f0f0f0f0ULL) |
            (((w + 0x0606060606060606ULL) & 0xf0f0f0f0f0f0f0f0ULL) >> 4)) == 0x3333333333333333ULL;
}

/* The value of 8 ASCII digits loaded little-endian (first digit lowest):
 * pairs, then quads, then the whole, by multiply and shift. */
static inline uint64_t eight_value(uint64_t w)
{
    w -= 0x3030303030303030ULL;
    w = (w * 10 + (w >> 8)) & 0x00ff00ff00ff00ffULL;
    w = (w * 100 + (w >> 16)) & 0x0000ffff0000ffffULL;
    return (w * 10000 + (w >> 32)) & 0xffffffffULL;
}

/* An unsigned decimal of 1 to 19 digits (no overflow possible); 8 digits
 * a step while they last (send times have 16). */
static inline bool qnum(cur *c, uint64_t *out)
{
    const char *p = c->p, *stop = c->end - p > 19 ? p + 19 : c->end;
    uint64_t v = 0, w;
    while (stop - p >= 8) {
        memcpy(&w, p, 8);
        w = le64toh(w);
        if (!eight_digits(w)) break;
        v = v * 100000000ULL + eight_value(w);
        p += 8;
    }
    while (p < stop && (unsigned)(*p - '0') < 10)
        v = v * 10 + (unsigned)(*p++ - '0');
    if (p == c->p || (p < c->end && (unsigned)(*p - '0') < 10)) return false;
    *out = v;
    c->p = p;
    return true;
}

static bool quick_pub(const char *line, size_t len, bench_line *out)
{
    cur c = {line, line + len};
    const char *v;
    size_t vn;
    uint64_t x;
    if (!QLIT(&c, "{\"push\":\"pub\",\"channel\":") ||
        !qstr(&c, &out->channel, &out->channel_len) || !QLIT(&c, ",\"offset\":") ||
        !qnum(&c, &out->pub.offset))
        return false;
    if (QLIT(&c, ",\"epoch\":")) {
        if (!qstr(&c, &v, &vn) || vn >= BENCH_EPOCH_MAX) return false;
        memcpy(out->epoch, v, vn);
        out->epoch[vn] = '\0';
    }
    if (!QLIT(&c, ",\"id\":") || !qstr(&c, &v, &vn) || !QLIT(&c, ",\"ts\":") || !qnum(&c, &x) ||
        !QLIT(&c, ",\"data\":"))
        return false;
    /* The bench's own payload, else any value through the general walk. */
    const char *data = c.p;
    if (!QLIT(&c, "{\"t\":") || !qnum(&c, &out->pub.t) || !QLIT(&c, ",\"s\":") ||
        !qnum(&c, &out->pub.s) || !QLIT(&c, ",\"p\":") || !qstr(&c, &v, &vn) || !QLIT(&c, "}")) {
        c.p = data;
        out->pub.t = out->pub.s = 0;
        if (!fast_data(&c, &out->pub)) return false;
    }
    if (QLIT(&c, ",\"info\":{\"user\":")) {
        if (!qstr(&c, &v, &vn)) return false;
        if (QLIT(&c, ",\"client\":") && !qstr(&c, &v, &vn)) return false;
        if (!QLIT(&c, "}")) return false;
    }
    if (QLIT(&c, ",\"class\":") && !qstr(&c, &v, &vn)) return false;
    if (QLIT(&c, ",\"attempt\":") && !qnum(&c, &x)) return false;
    if (!QLIT(&c, "}") || c.p != c.end) return false;
    out->kind = BENCH_PUB;
    return true;
}

static bool fast_pub(const char *line, size_t len, bench_line *out)
{
    cur c = {line, line + len};
    bool is_pub = false;
    if (!eat(&c, '{')) return false;
    for (;;) {
        const char *k, *v;
        size_t kn, vn;
        if (!str(&c, &k, &kn) || !eat(&c, ':')) return false;
        if (key_is(k, kn, "push")) {
            if (!str(&c, &v, &vn) || !key_is(v, vn, "pub")) return false;
            is_pub = true;
        } else if (key_is(k, kn, "offset")) {
            if (!prim(&c, &v, &vn) || bench_parse_u64(v, vn, &out->pub.offset) < 0) return false;
        } else if (key_is(k, kn, "channel")) {
            if (!str(&c, &out->channel, &out->channel_len)) return false;
        } else if (key_is(k, kn, "epoch")) {
            if (!str(&c, &v, &vn) || vn >= BENCH_EPOCH_MAX) return false;
            memcpy(out->epoch, v, vn);
            out->epoch[vn] = '\0';
        } else if (key_is(k, kn, "data")) {
            if (!fast_data(&c, &out->pub)) return false;
        } else if (key_is(k, kn, "result") || key_is(k, kn, "error") || key_is(k, kn, "from") ||
                   key_is(k, kn, "to") || key_is(k, kn, "code") ||
                   (key_is(k, kn, "id") && (ws(&c), c.p < c.end && *c.p != '"'))) {
            return false; /* a reply: the general path */
        } else if (!skip_value(&c)) {
            return false;
        }
        if (eat(&c, '}')) break;
        if (!eat(&c, ',')) return false;
    }
    ws(&c);
    if (!is_pub || c.p != c.end) return false;
    out->kind = BENCH_PUB;
    return true;
}

void bench_scanner_set_fast(bench_scanner *sc, bool on)
{
    sc->no_fast = !on;
}

/* ---------------------------------------------------------------- entry */

/* Empties out field by field: epoch is 64 bytes of which only the first
 * needs clearing, and a memset of the whole line was a fifth of reading a
 * pub. */
static void clear_line(bench_line *out)
{
    out->kind = BENCH_BAD;
    out->id = 0;
    out->channel = NULL;
    out->channel_len = 0;
    out->epoch[0] = '\0';
    out->pub = (bench_pub){0};
    out->offset = 0;
    out->has_offset = out->recovered = out->more = false;
    out->from = out->to = 0;
    out->code = 0;
    out->pubs = NULL;
    out->npubs = 0;
}

void bench_scan(bench_scanner *sc, const char *line, size_t len, bench_line *out)
{
    if (!sc->no_fast) {
        clear_line(out);
        if (quick_pub(line, len, out)) return;
        memset(out, 0, sizeof(*out));
        if (fast_pub(line, len, out)) return;
    }
    memset(out, 0, sizeof(*out));
    int n = tokenize(sc, line, len);
    if (n < 1 || sc->toks[0].type != JSMN_OBJECT) return;
    const jsmntok_t *t = sc->toks;
    /* Only one top-level value per line. */
    if (skip(t, 0, n) != n) return;
    const char *push = NULL;
    size_t push_len = 0;
    bool has_result = false, has_error = false;
    int pairs = t[0].size;
    int i = 1;
    for (int k = 0; k < pairs; k++) {
        if (i + 1 >= n) return;
        const jsmntok_t *key = &t[i];
        const jsmntok_t *v = &t[i + 1];
        if (key->type != JSMN_STRING) return;
        if (is_key(line, key, "id") && v->type != JSMN_STRING) {
            /* A command id; a string "id" is a pub's id and is skipped. */
            if (tok_u64(line, v, &out->id) < 0) return;
            i += 2;
        } else if (is_key(line, key, "result")) {
            has_result = true;
            i = parse_result(sc, line, i + 1, n, out);
        } else if (is_key(line, key, "error")) {
            has_error = true;
            bench_pub dummy = {0};
            const char *ignored = NULL;
            size_t ignored_len = 0;
            i = parse_obj(line, t, i + 1, n, &dummy, out, &ignored, &ignored_len);
        } else {
            i = parse_field(line, t, i, n, &out->pub, out, &push, &push_len);
        }
        if (i < 0) return;
    }
    if (has_error)
        out->kind = BENCH_ERROR;
    else if (has_result)
        out->kind = out->id ? BENCH_RESULT : BENCH_BAD;
    else if (push)
        out->kind = push_kind(push, push_len);
}

int bench_scan_data(bench_scanner *sc, const char *json, size_t len, bench_pub *out)
{
    memset(out, 0, sizeof(*out));
    /* NATS messages carry the payload bare: the same one-pass walk first. */
    cur c = {json, json + len};
    ws(&c);
    if (!sc->no_fast && c.p < c.end && *c.p == '{' && fast_data(&c, out)) {
        ws(&c);
        if (c.p == c.end) return 0;
    }
    memset(out, 0, sizeof(*out));
    int n = tokenize(sc, json, len);
    if (n < 1 || sc->toks[0].type != JSMN_OBJECT || skip(sc->toks, 0, n) != n) return -1;
    return parse_data(json, sc->toks, 0, n, out) < 0 ? -1 : 0;
}
