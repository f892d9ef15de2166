/* Origins and origin patterns; see origin.h. Both are read by one parser
 * into spans, the pattern flavour accepting the two wildcards, and matching
 * compares the spans. Being strict about the origin's form is what keeps a
 * hostile header ("https://app.example.com.evil.example", "https://a@b",
 * "https://app.example.com/") from matching by accident. */
#include "util/origin.h"

#include <string.h>
#include <strings.h>

typedef struct origin_parts {
    const char *scheme, *host;
    size_t scheme_len, host_len;
    int port;      /* 0: none or the scheme's default; -1: "*" */
    int host_wild; /* pattern "*.rest": host is "rest" */
} origin_parts;

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "://". */
static const char *parse_scheme(const char *p, const char *end, origin_parts *o)
{
    const char *s = p;
    if (p == end || !is_alpha(*p)) return NULL;
    while (p < end && (is_alpha(*p) || is_digit(*p) || *p == '+' || *p == '-' || *p == '.'))
        p++;
    if (end - p < 3 || memcmp(p, "://", 3)) return NULL;
    o->scheme = s;
    o->scheme_len = (size_t)(p - s);
    return p + 3;
}

/* Dot-separated labels of letters, digits and '-', none empty or over 63. */
static int labels_ok(const char *h, size_t n)
{
    size_t run = 0;
    if (n == 0 || n > 253) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (c == '.') {
            if (run == 0) return 0;
            run = 0;
        } else if (is_alpha(c) || is_digit(c) || c == '-') {
            if (++run > 63) return 0;
        } else {
            return 0;
        }
    }
    return run > 0;
}

static const char *parse_host(const char *p, const char *end, origin_parts *o, int pattern)
{
    const char *s = p;
    if (p < end && *p == '[') { /* IPv6 literal */
        while (++p < end && (is_hex(*p) || *p == ':' || *p == '.'))
            ;
        if (p == end || *p != ']' || p - s < 3) return NULL;
        o->host = s;
        o->host_len = (size_t)(++p - s);
        return p;
    }
    if (pattern && end - p >= 2 && p[0] == '*' && p[1] == '.') {
        o->host_wild = 1;
        s = p += 2;
    }
    while (p < end && *p != ':')
        p++;
    if (!labels_ok(s, (size_t)(p - s))) return NULL;
    o->host = s;
    o->host_len = (size_t)(p - s);
    return p;
}

static int default_port(const origin_parts *o)
{
    static const struct {
        const char *scheme;
        int port;
    } known[] = {{"http", 80}, {"ws", 80}, {"https", 443}, {"wss", 443}};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (o->scheme_len == strlen(known[i].scheme) &&
            !strncasecmp(o->scheme, known[i].scheme, o->scheme_len))
            return known[i].port;
    return 0;
}

/* ":" port, where port is 1..65535 without leading zeros, or "*" in a
 * pattern; nothing may follow. */
static int parse_port(const char *p, const char *end, origin_parts *o, int pattern)
{
    o->port = 0;
    if (p == end) return 0;
    if (*p++ != ':' || p == end) return -1;
    if (pattern && end - p == 1 && *p == '*') {
        o->port = -1;
        return 0;
    }
    if (end - p > 5 || *p == '0') return -1;
    long v = 0;
    for (; p < end; p++) {
        if (!is_digit(*p)) return -1;
        v = v * 10 + (*p - '0');
    }
    if (v > 65535) return -1;
    o->port = v == default_port(o) ? 0 : (int)v;
    return 0;
}

static int parse(const char *s, size_t len, origin_parts *o, int pattern)
{
    memset(o, 0, sizeof(*o));
    if (!s || len == 0 || len > ORIGIN_MAX) return -1;
    const char *end = s + len, *p = parse_scheme(s, end, o);
    if (p) p = parse_host(p, end, o, pattern);
    return p ? parse_port(p, end, o, pattern) : -1;
}

static int is_any(const char *pat, size_t plen)
{
    return plen == 1 && pat[0] == '*';
}

const char *origin_pattern_check(const char *pat, size_t len)
{
    origin_parts o;
    if (is_any(pat, len)) return NULL;
    if (len > ORIGIN_MAX) return "too long";
    if (len == 4 && !memcmp(pat, "null", 4))
        return "the \"null\" origin cannot be listed (only \"*\" allows it)";
    if (memchr(pat, '/', len) && len > 0 && pat[len - 1] == '/')
        return "must not end with '/' (an origin has no path)";
    if (parse(pat, len, &o, 1) < 0)
        return "is not an origin like \"https://app.example.com\", \"http://localhost:*\" or "
               "\"https://*.example.com\"";
    return NULL;
}

static int host_matches(const origin_parts *p, const origin_parts *o)
{
    if (!p->host_wild)
        return p->host_len == o->host_len && !strncasecmp(p->host, o->host, o->host_len);
    /* "*.example.com": at least one label, then ".example.com". */
    if (o->host[0] == '[' || o->host_len < p->host_len + 2) return 0;
    const char *tail = o->host + o->host_len - p->host_len;
    return tail[-1] == '.' && !strncasecmp(tail, p->host, p->host_len);
}

int origin_match(const char *pat, size_t plen, const char *origin, size_t olen)
{
    origin_parts p, o;
    if (is_any(pat, plen))
        return (olen == 4 && !memcmp(origin, "null", 4)) || parse(origin, olen, &o, 0) == 0;
    if (parse(pat, plen, &p, 1) < 0 || parse(origin, olen, &o, 0) < 0) return 0;
    if (p.scheme_len != o.scheme_len || strncasecmp(p.scheme, o.scheme, o.scheme_len)) return 0;
    if (p.port != -1 && p.port != o.port) return 0;
    return host_matches(&p, &o);
}

int origin_allowed(char *const *pats, size_t n, const char *origin, size_t olen)
{
    for (size_t i = 0; i < n; i++)
        if (origin_match(pats[i], strlen(pats[i]), origin, olen)) return 1;
    return 0;
}
