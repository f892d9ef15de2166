/* `parley verify` (see verify.h): reads a saved request, verifies it with
 * hooks/sign or hooks/inbound_sig, and on a mismatch re-computes variants of
 * the secrets and of the body; a cause is named only when a variant matches,
 * so the diagnosis is never a guess. */
#include "cli/verify.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "hooks/inbound_sig.h"
#include "hooks/sign.h"
#include "util/clock.h"
#include "util/mem.h"

#define MAX_SECRETS 16
#define MAX_HEADERS_FILE (1 << 20)
#define MAX_BODY_FILE (64 << 20)
#define MAX_FIELDS 256
#define MAX_BODIES 24
#define FIX_LEN 256

enum scheme { SCHEME_DETECT, SCHEME_STANDARD, SCHEME_HMAC, SCHEME_STRIPE };

struct field {
    const char *name;
    const char *value;
};

/* The body as received (what == NULL) or a variant of it. */
struct body {
    const char *what;
    int json; /* a re-serialization, not an edit */
    char *data;
    size_t len;
};

/* A key to try: a secret as given (fix[0] == 0) or a variant of it. */
struct cand {
    size_t secret;
    char fix[FIX_LEN];
    sign_key *key;          /* standard-webhooks */
    inbound_sig_secret raw; /* hmac-sha256, Stripe */
    char *raw_owned;
};

struct verify {
    enum scheme scheme;
    const char *secrets[MAX_SECRETS];
    size_t n_secrets;
    const char *header, *prefix;
    int64_t tolerance, now;
    char *hdr_text;
    struct field fields[MAX_FIELDS];
    size_t n_fields;
    struct body bodies[MAX_BODIES];
    size_t n_bodies;
    struct cand *cands;
    size_t n_cands;
    size_t n_variants;         /* candidates that are not a secret as given */
    const char *sig, *id, *ts; /* the signature, id and timestamp headers */
    int64_t t;                 /* the signed time; has_t says whether there is one */
    int has_t;
};

/* ---- input ------------------------------------------------------------ */

static char *read_all(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "parley: verify: cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = pl_malloc(cap + 1);
    while (buf) {
        if (n == cap) {
            char *nb = cap >= max ? NULL : pl_realloc(buf, cap * 2 + 1);
            if (!nb) {
                fprintf(stderr, "parley: verify: %s is larger than %zu bytes\n", path, max);
                pl_free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    *len = n;
    return buf;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* "Name: value" lines up to a blank line; a first line such as
 * "POST /hook HTTP/1.1" is skipped so that a raw request dump works. */
static int parse_headers(struct verify *v, const char *path)
{
    size_t len, lineno = 0;
    if (!(v->hdr_text = read_all(path, MAX_HEADERS_FILE, &len))) return 2;
    for (char *line = v->hdr_text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        lineno++;
        char *colon = strchr(line, ':');
        char *t = trim(line);
        if (!*t) {
            if (v->n_fields) break;
            continue;
        }
        if (lineno == 1 && strstr(t, " HTTP/")) continue;
        if (!colon || colon == line) {
            fprintf(stderr, "parley: verify: %s:%zu: not a 'Name: value' header line\n", path,
                    lineno);
            return 2;
        }
        if (v->n_fields == MAX_FIELDS) {
            fprintf(stderr, "parley: verify: %s: more than %d headers\n", path, MAX_FIELDS);
            return 2;
        }
        *colon = '\0';
        v->fields[v->n_fields++] = (struct field){trim(line), trim(colon + 1)};
    }
    return 0;
}

static const char *header(const struct verify *v, const char *name)
{
    for (size_t i = 0; i < v->n_fields; i++)
        if (!strcasecmp(v->fields[i].name, name)) return v->fields[i].value;
    return NULL;
}

/* ---- body variants ------------------------------------------------------ */

static void add_body(struct verify *v, const char *what, int json, char *data, size_t len)
{
    for (size_t i = 0; i < v->n_bodies; i++) {
        if (v->bodies[i].len == len && !memcmp(v->bodies[i].data, data, len)) {
            pl_free(data);
            return;
        }
    }
    if (v->n_bodies == MAX_BODIES) {
        pl_free(data);
        return;
    }
    v->bodies[v->n_bodies++] = (struct body){what, json, data, len};
}

static char *copy(const char *s, size_t n)
{
    char *d = pl_malloc(n + 1);
    if (!d) abort();
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Common ways a receiver changes a JSON body before verifying it: parsed and
 * written again by a JSON library, in the forms of the usual ones. */
static void json_variants(struct verify *v, const char *raw, size_t len)
{
    static const struct {
        size_t flags;
        const char *what;
    } forms[] = {
        {JSON_COMPACT, "as compact JSON (no spaces, as JSON.stringify writes it)"},
        {JSON_COMPACT | JSON_SORT_KEYS, "as compact JSON with keys sorted"},
        {0, "as JSON with a space after ':' and ',' (as Python's json.dumps writes it)"},
        {JSON_SORT_KEYS, "as JSON with spaces and keys sorted"},
        {JSON_INDENT(2), "as JSON indented by 2 spaces"},
        {JSON_INDENT(4), "as JSON indented by 4 spaces"},
        {JSON_INDENT(2) | JSON_SORT_KEYS, "as JSON indented by 2 spaces, keys sorted"},
        {JSON_INDENT(4) | JSON_SORT_KEYS, "as JSON indented by 4 spaces, keys sorted"},
        {JSON_COMPACT | JSON_ENSURE_ASCII, "as compact JSON, non-ASCII as \\u escapes"},
        {JSON_ENSURE_ASCII, "as JSON with spaces, non-ASCII as \\u escapes"},
    };
    json_error_t err;
    json_t *doc = json_loadb(raw, len, JSON_DECODE_ANY, &err);
    if (!doc) return;
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        char *s = json_dumps(doc, forms[i].flags | JSON_ENCODE_ANY);
        if (!s) continue;
        add_body(v, forms[i].what, 1, copy(s, strlen(s)), strlen(s));
        free(s);
    }
    json_decref(doc);
}

static void body_variants(struct verify *v, char *raw, size_t len)
{
    v->bodies[v->n_bodies++] = (struct body){NULL, 0, raw, len};
    if (len && raw[len - 1] == '\n') {
        size_t cut = len >= 2 && raw[len - 2] == '\r' ? 2 : 1;
        add_body(v, "with the trailing newline removed", 0, copy(raw, len - cut), len - cut);
    } else {
        char *d = copy(raw, len + 1);
        d[len] = '\n';
        add_body(v, "with a trailing newline added", 0, d, len + 1);
    }
    if (memmem(raw, len, "\r\n", 2)) {
        char *d = copy(raw, len);
        size_t o = 0;
        for (size_t i = 0; i < len; i++)
            if (!(raw[i] == '\r' && i + 1 < len && raw[i + 1] == '\n')) d[o++] = raw[i];
        add_body(v, "with CRLF line ends turned into LF", 0, d, o);
    }
    json_variants(v, raw, len);
}

/* ---- secret candidates --------------------------------------------------- */

static struct cand *new_cand(struct verify *v, size_t secret, const char *fix)
{
    struct cand *nc = pl_realloc(v->cands, (v->n_cands + 1) * sizeof(*nc));
    if (!nc) abort();
    v->cands = nc;
    struct cand *c = &v->cands[v->n_cands++];
    memset(c, 0, sizeof(*c));
    c->secret = secret;
    snprintf(c->fix, sizeof(c->fix), "%s", fix);
    if (*fix) v->n_variants++;
    return c;
}

static void cand_raw(struct verify *v, size_t secret, const char *fix, const char *s, size_t n)
{
    struct cand *c = new_cand(v, secret, fix);
    c->raw_owned = copy(s, n);
    c->raw = (inbound_sig_secret){c->raw_owned, n};
}

/* A key of n bytes: a v1 key for standard-webhooks, raw bytes otherwise. */
static void cand_bytes(struct verify *v, size_t secret, const char *fix, const void *b, size_t n)
{
    if (v->scheme != SCHEME_STANDARD) {
        cand_raw(v, secret, fix, (const char *)b, n);
        return;
    }
    sign_key *k = sign_key_hmac(b, n);
    if (k) new_cand(v, secret, fix)->key = k;
}

/* Decodes s as base64 (after turning the URL-safe alphabet into the standard
 * one when url is set) into a candidate. */
static void cand_b64(struct verify *v, size_t secret, const char *fix, const char *s, size_t n,
                     int url)
{
    char *t = copy(s, n);
    size_t len;
    for (size_t i = 0; url && i < n; i++)
        t[i] = t[i] == '-' ? '+' : t[i] == '_' ? '/' : t[i];
    unsigned char *b = sign_base64_decode(t, n, &len);
    if (b) cand_bytes(v, secret, fix, b, len);
    pl_free(b);
    pl_free(t);
}

static const char *fix_of(char *buf, const char *before, const char *what)
{
    snprintf(buf, FIX_LEN, "%s%s%s", before, *before ? "; " : "", what);
    return buf;
}

/* Variants of a Standard Webhooks secret: a pasted "v1," dropped, spaces
 * trimmed, the whsec_ prefix added, the URL-safe alphabet, the string used
 * as raw bytes (a signer that skipped the base64 decoding). */
static void standard_variants(struct verify *v, size_t i)
{
    const char *s = v->secrets[i];
    size_t n = strlen(s);
    char before[FIX_LEN] = "", fix[FIX_LEN];
    if (!strncmp(s, "v1,", 3) || !strncmp(s, "v1a,", 4)) {
        size_t cut = s[2] == ',' ? 3 : 4;
        snprintf(before, sizeof(before),
                 "it starts with \"%.*s\" pasted from a signature: without it", (int)cut, s);
        s += cut;
        n -= cut;
    }
    size_t untrimmed = n;
    while (n && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    if (n != untrimmed && !*before)
        snprintf(before, sizeof(before), "surrounding whitespace removed");
    sign_key *k = NULL;
    enum sign_key_err e = sign_key_parse(s, n, &k);
    if (e == SIGN_KEY_OK && *before)
        new_cand(v, i, before)->key = k;
    else
        sign_key_free(k);
    int pfx = n >= 6 && !strncmp(s, "whsec_", 6);
    if (e == SIGN_KEY_NO_PREFIX)
        cand_b64(v, i,
                 fix_of(fix, before, "the whsec_ prefix is missing: decoded as base64 without it"),
                 s, n, 0);
    if (e == SIGN_KEY_BAD_BASE64 && pfx)
        cand_b64(
            v, i,
            fix_of(fix, before, "its base64 uses the URL-safe alphabet (- and _): decoded with it"),
            s + 6, n - 6, 1);
    if (pfx && n > 6)
        cand_bytes(
            v, i,
            fix_of(fix, before,
                   "the signer used the text after whsec_ as the key, without base64-decoding it"),
            s + 6, n - 6);
    if (n)
        cand_bytes(v, i,
                   fix_of(fix, before,
                          "the signer used the whole secret string as the key, without "
                          "base64-decoding it"),
                   s, n);
}

/* Variants of an hmac-sha256 or Stripe secret (raw bytes): trimmed, and for
 * Stripe with the whsec_ prefix the key includes. */
static void raw_variants(struct verify *v, size_t i)
{
    const char *s = v->secrets[i];
    size_t n = strlen(s), start = 0;
    while (start < n &&
           (s[start] == ' ' || s[start] == '\t' || s[start] == '\r' || s[start] == '\n'))
        start++;
    while (n > start &&
           (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        n--;
    if (start || n != strlen(s))
        cand_raw(v, i, "surrounding whitespace removed", s + start, n - start);
    if (v->scheme == SCHEME_STRIPE && strncmp(s + start, "whsec_", 6)) {
        char *t = pl_malloc(n - start + 7);
        if (!t) abort();
        memcpy(t, "whsec_", 6);
        memcpy(t + 6, s + start, n - start);
        cand_raw(v, i,
                 "the whsec_ prefix is missing: Stripe signs with the whole secret, prefix "
                 "included",
                 t, n - start + 6);
        pl_free(t);
    }
    if (v->scheme == SCHEME_HMAC && !strncmp(s + start, "whsec_", 6)) {
        char fix[FIX_LEN];
        cand_b64(v, i, fix_of(fix, "", "the key is the base64-decoded part after whsec_"),
                 s + start + 6, n - start - 6, 0);
    }
}

static void build_cands(struct verify *v)
{
    for (size_t i = 0; i < v->n_secrets; i++) {
        if (v->scheme == SCHEME_STANDARD) {
            sign_key *k = NULL;
            if (sign_key_parse(v->secrets[i], strlen(v->secrets[i]), &k) == SIGN_KEY_OK)
                new_cand(v, i, "")->key = k;
        } else {
            cand_raw(v, i, "", v->secrets[i], strlen(v->secrets[i]));
        }
    }
    for (size_t i = 0; i < v->n_secrets; i++) {
        if (v->scheme == SCHEME_STANDARD)
            standard_variants(v, i);
        else
            raw_variants(v, i);
    }
}

/* ---- checking ----------------------------------------------------------- */

/* Does candidate c verify body b (ignoring time)? 1 with *entry and *of set,
 * 0, or -1 when out of memory. */
static int try_one(const struct verify *v, const struct cand *c, const struct body *b,
                   size_t *entry, size_t *of)
{
    enum sign_result rc;
    *entry = 0;
    *of = 1;
    if (v->scheme == SCHEME_STANDARD) {
        sign_request r = {v->id,  strlen(v->id),  v->ts,   strlen(v->ts),
                          v->sig, strlen(v->sig), b->data, b->len};
        sign_match m = {0, 0, 0};
        const sign_key *k = c->key;
        rc = sign_verify_ignoring_time(&r, &k, 1, &m);
        *entry = m.entry;
        *of = m.n_entries;
    } else if (v->scheme == SCHEME_STRIPE) {
        inbound_sig_stripe h;
        inbound_sig_stripe_parse(v->sig, strlen(v->sig), &h);
        *of = h.n_v1;
        rc = inbound_sig_stripe_verify_ignoring_time(v->sig, strlen(v->sig), b->data, b->len,
                                                     &c->raw, 1, entry, NULL);
    } else {
        rc = inbound_sig_hmac_verify(v->sig, strlen(v->sig), v->prefix, b->data, b->len, &c->raw, 1,
                                     NULL);
    }
    return rc == SIGN_OK ? 1 : rc == SIGN_NOMEM ? -1 : 0;
}

/* The clock note: "" when the signed time is within tolerance. */
static void clock_note(const struct verify *v, char *out, size_t cap)
{
    int64_t d = v->now - v->t;
    out[0] = '\0';
    if (!v->has_t || (d <= v->tolerance && -d <= v->tolerance)) return;
    snprintf(out, cap,
             "clock skew: the timestamp %lld is %lld s %s now (%lld), outside the tolerance of "
             "%lld s",
             (long long)v->t, (long long)(d > 0 ? d : -d), d > 0 ? "before" : "after",
             (long long)v->now, (long long)v->tolerance);
}

static int report_match(const struct verify *v, const struct cand *c, const struct body *b,
                        size_t entry, size_t of)
{
    char clk[256];
    clock_note(v, clk, sizeof(clk));
    if (!c->fix[0] && !b->what && !clk[0]) {
        printf("ok: signature %zu of %zu matches secret %zu\n", entry + 1, of, c->secret + 1);
        return 0;
    }
    printf("mismatch:");
    if (!c->fix[0] && !b->what) {
        printf(" %s; the signature matches otherwise (signature %zu of %zu, secret %zu).\n"
               "  Check the clocks of sender and receiver, or pass --now UNIX to verify an old "
               "request.\n",
               clk, entry + 1, of, c->secret + 1);
        return 1;
    }
    printf("\n");
    if (c->fix[0]) printf("  secret %zu: %s.\n", c->secret + 1, c->fix);
    if (b->what)
        printf("  the body was %s: the signature matches the body %s; verify the raw bytes as "
               "received, before any parsing.\n",
               b->json ? "re-serialized" : "changed", b->what);
    printf("  With %s, signature %zu of %zu matches secret %zu.\n",
           c->fix[0] && b->what ? "both" : "that", entry + 1, of, c->secret + 1);
    if (clk[0]) printf("  Also %s.\n", clk);
    return 1;
}

/* Tries every candidate on every body, the secrets as given on the body as
 * received first; the first match is the diagnosis. */
static int search(const struct verify *v)
{
    for (size_t c = 0; c < v->n_cands; c++) {
        for (size_t b = 0; b < v->n_bodies; b++) {
            size_t entry, of;
            int m = try_one(v, &v->cands[c], &v->bodies[b], &entry, &of);
            if (m < 0) {
                fprintf(stderr, "parley: verify: out of memory\n");
                return 2;
            }
            if (m) return report_match(v, &v->cands[c], &v->bodies[b], entry, of);
        }
    }
    return -1;
}

static int report_no_match(const struct verify *v)
{
    char clk[256];
    printf("mismatch: wrong secret: no signature matches any secret as given.\n");
    for (size_t i = 0; i < v->n_secrets && v->scheme == SCHEME_STANDARD; i++) {
        sign_key *k = NULL;
        enum sign_key_err e = sign_key_parse(v->secrets[i], strlen(v->secrets[i]), &k);
        sign_key_free(k);
        if (e != SIGN_KEY_OK)
            printf("  secret %zu is not a valid key: %s.\n", i + 1, sign_key_errstr(e));
    }
    printf("  None of %zu variant(s) of the secrets and %zu variant(s) of the body matches "
           "either: the secret is not the one the sender signed with, or the signed bytes "
           "differ in a way not tried.\n",
           v->n_variants, v->n_bodies - 1);
    clock_note(v, clk, sizeof(clk));
    if (clk[0]) printf("  Also %s.\n", clk);
    return 1;
}

/* ---- schemes: the headers each one needs ------------------------------- */

/* 0 when the request has what the scheme needs, else 1 after saying what
 * is missing or malformed (there is nothing to re-compute then). */
static int standard_headers(struct verify *v)
{
    static const char *names[] = {"webhook-id", "webhook-timestamp", "webhook-signature"};
    const char **dst[] = {&v->id, &v->ts, &v->sig};
    int missing = 0;
    for (size_t i = 0; i < 3; i++) {
        *dst[i] = header(v, names[i]);
        if (!*dst[i] || !**dst[i]) {
            printf("mismatch: missing header %s\n", names[i]);
            missing = 1;
        }
    }
    if (missing) return 1;
    if (sign_parse_timestamp(v->ts, strlen(v->ts), &v->t)) {
        printf("mismatch: malformed timestamp: webhook-timestamp is \"%.64s\", not decimal unix "
               "seconds\n",
               v->ts);
        return 1;
    }
    v->has_t = 1;
    sign_entry e[SIGN_MAX_ENTRIES];
    if (sign_header_parse(v->sig, strlen(v->sig), e, SIGN_MAX_ENTRIES) < 0) {
        printf("mismatch: malformed webhook-signature header: it holds up to %d space-separated "
               "VERSION,BASE64 entries (v1: base64 of 32 bytes, v1a: of 64), got \"%.120s%s\"\n",
               SIGN_MAX_ENTRIES, v->sig, strlen(v->sig) > 120 ? "..." : "");
        return 1;
    }
    return 0;
}

static int stripe_headers(struct verify *v)
{
    inbound_sig_stripe h;
    v->sig = header(v, "stripe-signature");
    enum sign_result rc = inbound_sig_stripe_parse(v->sig, v->sig ? strlen(v->sig) : 0, &h);
    if (!v->sig || rc == SIGN_MISSING_HEADER) {
        printf("mismatch: missing header Stripe-Signature\n");
        return 1;
    }
    if (rc != SIGN_OK) {
        printf("mismatch: %s in Stripe-Signature: it is t=UNIX,v1=HEX[,v1=HEX...] (64 hex digits "
               "each), got \"%.120s%s\"\n",
               sign_result_str(rc), v->sig, strlen(v->sig) > 120 ? "..." : "");
        return 1;
    }
    v->t = h.t;
    v->has_t = 1;
    return 0;
}

static int is_hex64(const char *s)
{
    unsigned char mac[INBOUND_SIG_MAC_LEN];
    return inbound_sig_hex_mac(s, strlen(s), mac) == 0;
}

static int hmac_headers(struct verify *v)
{
    unsigned char mac[INBOUND_SIG_MAC_LEN];
    v->sig = header(v, v->header);
    if (!v->sig || !*v->sig) {
        printf("mismatch: missing header %s\n", v->header);
        return 1;
    }
    size_t n = strlen(v->sig);
    if (inbound_sig_hmac_parse(v->sig, n, v->prefix, mac) == 0) return 0;
    if (n > 64 && is_hex64(v->sig + n - 64))
        printf("mismatch: %s starts with \"%.*s\", not the prefix \"%s\": pass --prefix '%.*s'\n",
               v->header, (int)(n - 64), v->sig, v->prefix, (int)(n - 64), v->sig);
    else
        printf("mismatch: malformed %s: want \"%s\" and 64 hex digits, got \"%.120s%s\"\n",
               v->header, v->prefix, v->sig, n > 120 ? "..." : "");
    return 1;
}

/* ---- options ------------------------------------------------------------ */

static int usage(const char *msg)
{
    fprintf(stderr, "parley: verify: %s (see parley help verify)\n", msg);
    return 2;
}

static int parse_scheme(const char *s, enum scheme *out)
{
    if (!strcmp(s, "standard-webhooks"))
        *out = SCHEME_STANDARD;
    else if (!strcmp(s, "hmac-sha256"))
        *out = SCHEME_HMAC;
    else if (!strcmp(s, "stripe"))
        *out = SCHEME_STRIPE;
    else
        return -1;
    return 0;
}

static int parse_now(const char *s, int64_t *now)
{
    return sign_parse_timestamp(s, strlen(s), now);
}

struct opts {
    const char *headers, *body, *tolerance, *now;
};

static int parse_opts(struct verify *v, struct opts *o, int argc, char **argv)
{
    static const struct option opts[] = {{"headers", required_argument, 0, 'H'},
                                         {"body", required_argument, 0, 'b'},
                                         {"secret", required_argument, 0, 's'},
                                         {"scheme", required_argument, 0, 'S'},
                                         {"header", required_argument, 0, 'n'},
                                         {"prefix", required_argument, 0, 'p'},
                                         {"tolerance", required_argument, 0, 't'},
                                         {"now", required_argument, 0, 'N'},
                                         {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        if (c == 'H')
            o->headers = optarg;
        else if (c == 'b')
            o->body = optarg;
        else if (c == 's' && v->n_secrets == MAX_SECRETS)
            return usage("at most 16 --secret");
        else if (c == 's')
            v->secrets[v->n_secrets++] = optarg;
        else if (c == 'S' && parse_scheme(optarg, &v->scheme))
            return usage("--scheme is standard-webhooks, hmac-sha256 or stripe");
        else if (c == 'n')
            v->header = optarg;
        else if (c == 'p')
            v->prefix = optarg;
        else if (c == 't')
            o->tolerance = optarg;
        else if (c == 'N')
            o->now = optarg;
        else if (c != 'S')
            return 2;
    }
    if (optind < argc) return usage("unexpected argument");
    if (!o->headers || !o->body) return usage("needs --headers FILE and --body FILE");
    if (!v->n_secrets) return usage("needs --secret S (once per secret to try)");
    int64_t tol = clock_parse_duration(o->tolerance ? o->tolerance : "5m");
    if (tol < 0) return usage("--tolerance wants a duration such as 300s or 5m");
    v->tolerance = tol / 1000;
    if (o->now && parse_now(o->now, &v->now)) return usage("--now wants unix seconds");
    if (!o->now) v->now = clock_wall_ms() / 1000;
    if ((v->header || v->prefix) && v->scheme != SCHEME_HMAC && v->scheme != SCHEME_DETECT)
        return usage("--header and --prefix are for --scheme hmac-sha256");
    return 0;
}

/* The scheme from the headers when not given: --header means hmac-sha256. */
static int detect(struct verify *v)
{
    if (v->scheme == SCHEME_DETECT) {
        if (v->header || v->prefix || header(v, "x-hub-signature-256"))
            v->scheme = SCHEME_HMAC;
        else if (header(v, "webhook-signature"))
            v->scheme = SCHEME_STANDARD;
        else if (header(v, "stripe-signature"))
            v->scheme = SCHEME_STRIPE;
        else
            return usage("no webhook-signature, Stripe-Signature or X-Hub-Signature-256 header "
                         "to tell the scheme from: say --scheme");
    }
    if (v->scheme == SCHEME_HMAC && !v->header) v->header = "X-Hub-Signature-256";
    if (v->scheme == SCHEME_HMAC && !v->prefix)
        v->prefix = !strcasecmp(v->header, "X-Hub-Signature-256") ? "sha256=" : "";
    return 0;
}

static void release(struct verify *v)
{
    for (size_t i = 0; i < v->n_cands; i++) {
        sign_key_free(v->cands[i].key);
        pl_free(v->cands[i].raw_owned);
    }
    pl_free(v->cands);
    for (size_t i = 0; i < v->n_bodies; i++)
        pl_free(v->bodies[i].data);
    pl_free(v->hdr_text);
}

static int run(struct verify *v, const struct opts *o)
{
    size_t len;
    int rc = parse_headers(v, o->headers);
    if (rc || (rc = detect(v))) return rc;
    char *body = read_all(o->body, MAX_BODY_FILE, &len);
    if (!body) return 2;
    body_variants(v, body, len);
    rc = v->scheme == SCHEME_STANDARD ? standard_headers(v)
         : v->scheme == SCHEME_STRIPE ? stripe_headers(v)
                                      : hmac_headers(v);
    if (rc) return rc;
    build_cands(v);
    rc = search(v);
    return rc >= 0 ? rc : report_no_match(v);
}

int verify_main(int argc, char **argv)
{
    struct verify v;
    struct opts o = {0};
    memset(&v, 0, sizeof(v));
    int rc = parse_opts(&v, &o, argc, argv);
    if (!rc) rc = run(&v, &o);
    release(&v);
    return rc;
}
