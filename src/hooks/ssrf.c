/* The SSRF guard: special-purpose IPv4 and IPv6 ranges (IANA registries,
 * RFC 6890) in first-match tables, the operator's allowlist, and the
 * inet_aton-style IPv4 host parser. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hooks/ssrf.h"
#include "util/mem.h"
#include "util/status.h"

typedef struct range {
    uint8_t net[16];
    unsigned bits;
    ssrf_verdict v;
} range;

/* First match wins: 255.255.255.255 before 240/4. */
static const range v4_ranges[] = {
    {{0, 0, 0, 0}, 8, SSRF_UNSPECIFIED},
    {{10, 0, 0, 0}, 8, SSRF_PRIVATE},
    {{100, 64, 0, 0}, 10, SSRF_SHARED},
    {{127, 0, 0, 0}, 8, SSRF_LOOPBACK},
    {{169, 254, 0, 0}, 16, SSRF_LINK_LOCAL},
    {{172, 16, 0, 0}, 12, SSRF_PRIVATE},
    {{192, 0, 0, 0}, 24, SSRF_IETF},
    {{192, 0, 2, 0}, 24, SSRF_DOCUMENTATION},
    {{192, 88, 99, 0}, 24, SSRF_RESERVED}, /* deprecated 6to4 relay anycast */
    {{192, 168, 0, 0}, 16, SSRF_PRIVATE},
    {{198, 18, 0, 0}, 15, SSRF_BENCHMARKING},
    {{198, 51, 100, 0}, 24, SSRF_DOCUMENTATION},
    {{203, 0, 113, 0}, 24, SSRF_DOCUMENTATION},
    {{224, 0, 0, 0}, 4, SSRF_MULTICAST},
    {{255, 255, 255, 255}, 32, SSRF_BROADCAST},
    {{240, 0, 0, 0}, 4, SSRF_RESERVED},
};

/* Ranges that embed an IPv4 address (mapped, compatible, NAT64, 6to4) are
 * handled in check_v6 before this table. */
static const range v6_ranges[] = {
    {{0}, 128, SSRF_UNSPECIFIED},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, SSRF_LOOPBACK},
    {{0, 0x64, 0xff, 0x9b, 0, 1}, 48, SSRF_PRIVATE}, /* local-use NAT64, RFC 8215 */
    {{0x01}, 64, SSRF_RESERVED},                     /* 100::/64 discard-only */
    {{0x20, 0x01, 0, 0}, 32, SSRF_TEREDO},
    {{0x20, 0x01, 0, 0x02, 0, 0}, 48, SSRF_BENCHMARKING},
    {{0x20, 0x01, 0, 0x10}, 28, SSRF_RESERVED}, /* ORCHID */
    {{0x20, 0x01, 0, 0x20}, 28, SSRF_RESERVED}, /* ORCHIDv2 */
    {{0x20, 0x01, 0x0d, 0xb8}, 32, SSRF_DOCUMENTATION},
    {{0xfc}, 7, SSRF_PRIVATE},
    {{0xfe, 0x80}, 10, SSRF_LINK_LOCAL},
    {{0xfe, 0xc0}, 10, SSRF_PRIVATE}, /* deprecated site-local */
    {{0xff}, 8, SSRF_MULTICAST},
};

static const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
static const uint8_t nat64_prefix[12] = {0, 0x64, 0xff, 0x9b};

struct ssrf_allowlist {
    range *nets; /* v is AF_INET or AF_INET6 here, not a verdict */
    size_t n;
};

const char *ssrf_why(ssrf_verdict v)
{
    switch (v) {
    case SSRF_OK:
        return "";
    case SSRF_UNSPECIFIED:
        return "unspecified address (this network)";
    case SSRF_LOOPBACK:
        return "loopback address";
    case SSRF_PRIVATE:
        return "private network address";
    case SSRF_LINK_LOCAL:
        return "link-local address (includes cloud metadata)";
    case SSRF_SHARED:
        return "shared address space (carrier-grade NAT)";
    case SSRF_MULTICAST:
        return "multicast address";
    case SSRF_BROADCAST:
        return "broadcast address";
    case SSRF_RESERVED:
        return "reserved address";
    case SSRF_BENCHMARKING:
        return "benchmarking address";
    case SSRF_DOCUMENTATION:
        return "documentation address";
    case SSRF_IETF:
        return "IETF protocol assignment";
    case SSRF_TEREDO:
        return "Teredo tunnel address";
    case SSRF_FAMILY:
        return "not an IPv4 or IPv6 address";
    }
    return "refused";
}

static int prefix_match(const uint8_t *a, const uint8_t *net, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, net, whole)) return 0;
    if (!rest) return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (net[whole] & mask);
}

static ssrf_verdict first_match(const uint8_t *a, const range *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (prefix_match(a, t[i].net, t[i].bits)) return t[i].v;
    return SSRF_OK;
}

static int allowed(const ssrf_allowlist *al, int family, const uint8_t *a)
{
    for (size_t i = 0; al && i < al->n; i++)
        if ((int)al->nets[i].v == family && prefix_match(a, al->nets[i].net, al->nets[i].bits))
            return 1;
    return 0;
}

static ssrf_verdict check_v4(const uint8_t *a)
{
    return first_match(a, v4_ranges, sizeof(v4_ranges) / sizeof(v4_ranges[0]));
}

static ssrf_verdict check_v6(const uint8_t *a)
{
    static const uint8_t zero[12] = {0};
    ssrf_verdict v = first_match(a, v6_ranges, sizeof(v6_ranges) / sizeof(v6_ranges[0]));
    if (v != SSRF_OK) return v;
    if (!memcmp(a, nat64_prefix, 12)) return check_v4(a + 12);
    if (a[0] == 0x20 && a[1] == 0x02) return check_v4(a + 2); /* 6to4: 2002:AABB:CCDD::/48 */
    if (!memcmp(a, zero, 12)) {
        /* Deprecated IPv4-compatible (::a.b.c.d): name the embedded class
         * when it has one, refused either way. */
        v = check_v4(a + 12);
        return v != SSRF_OK ? v : SSRF_RESERVED;
    }
    /* Global unicast is 2000::/3; the rest is unassigned or special. */
    return (a[0] & 0xe0) == 0x20 ? SSRF_OK : SSRF_RESERVED;
}

ssrf_verdict ssrf_check(const struct sockaddr *sa, const ssrf_allowlist *allow)
{
    if (!sa) return SSRF_FAMILY;
    if (sa->sa_family == AF_INET) {
        const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        return allowed(allow, AF_INET, a) ? SSRF_OK : check_v4(a);
    }
    if (sa->sa_family != AF_INET6) return SSRF_FAMILY;
    const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    if (allowed(allow, AF_INET6, a)) return SSRF_OK;
    if (!memcmp(a, mapped_prefix, 12)) /* the IPv4 host itself, on a dual-stack socket */
        return allowed(allow, AF_INET, a + 12) ? SSRF_OK : check_v4(a + 12);
    return check_v6(a);
}

/* ---- the allowlist ------------------------------------------------------ */

/* Parses "ADDR[/BITS]" into r; NULL, or why not. */
static const char *parse_cidr(const char *s, range *r)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (!alen || alen >= sizeof(addr)) return "bad address";
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    memset(r, 0, sizeof(*r));
    unsigned max;
    if (inet_pton(AF_INET, addr, r->net) == 1) {
        r->v = (ssrf_verdict)AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, addr, r->net) == 1) {
        r->v = (ssrf_verdict)AF_INET6;
        max = 128;
    } else {
        return "bad address (dotted quad or IPv6)";
    }
    r->bits = max;
    if (slash) {
        const char *d = slash + 1;
        unsigned bits = 0;
        size_t nd = strspn(d, "0123456789");
        if (!nd || d[nd] || nd > 3 || (nd > 1 && d[0] == '0')) return "bad prefix length";
        for (size_t i = 0; i < nd; i++)
            bits = bits * 10 + (unsigned)(d[i] - '0');
        if (bits > max) return max == 32 ? "prefix length over 32" : "prefix length over 128";
        r->bits = bits;
    }
    for (unsigned b = r->bits; b < max; b++)
        if (r->net[b / 8] & (0x80 >> (b % 8))) return "host bits set past the prefix length";
    return NULL;
}

int ssrf_allowlist_new(const char *const *cidrs, size_t n, ssrf_allowlist **out, char *err,
                       size_t errlen)
{
    *out = NULL;
    ssrf_allowlist *a = pl_calloc(1, sizeof(*a));
    if (!a || (n && !(a->nets = pl_calloc(n, sizeof(range))))) {
        pl_free(a);
        if (errlen) snprintf(err, errlen, "out of memory");
        return PL_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const char *why = cidrs[i] ? parse_cidr(cidrs[i], &a->nets[i]) : "missing";
        if (why) {
            if (errlen)
                snprintf(err, errlen, "entry %zu ('%.48s'): %s", i, cidrs[i] ? cidrs[i] : "", why);
            ssrf_allowlist_free(a);
            return PL_EINVAL;
        }
    }
    a->n = n;
    *out = a;
    return PL_OK;
}

void ssrf_allowlist_free(ssrf_allowlist *a)
{
    if (!a) return;
    pl_free(a->nets);
    pl_free(a);
}

/* ---- IPv4 spellings ----------------------------------------------------- */

/* One part of an IPv4 literal: 1 with *out, 0 if not a number, -1 if a
 * number that overflows 32 bits. An empty hex part ("0x") is 0, as in
 * inet_aton and the WHATWG parser. */
static int parse_part(const char *s, size_t n, uint64_t *out)
{
    unsigned base = 10;
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
        n -= 2;
    } else if (n >= 2 && s[0] == '0') {
        base = 8;
        s++;
        n--;
    } else if (!n) {
        return 0;
    }
    uint64_t v = 0;
    int big = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 99;
        if (d >= base) return 0;
        if (v > UINT32_MAX)
            big = 1; /* keep scanning: a later bad digit makes it a name */
        else
            v = v * base + d;
    }
    if (big || v > UINT32_MAX) return -1;
    *out = v;
    return 1;
}

int ssrf_parse_host_ipv4(const char *host, struct in_addr *out)
{
    size_t len = host ? strlen(host) : 0;
    if (len && host[len - 1] == '.') len--; /* "127.0.0.1." is the same host */
    if (!len) return 0;
    uint64_t parts[4];
    size_t np = 0;
    int bad = 0, last = 0;
    for (size_t i = 0; i <= len;) {
        size_t j = i;
        while (j < len && host[j] != '.')
            j++;
        uint64_t v = 0;
        last = parse_part(host + i, j - i, &v);
        if (last <= 0 || np == 4)
            bad = 1;
        else
            parts[np++] = v;
        i = j + 1;
    }
    /* As in the WHATWG URL parser, a host whose last label is a number is
     * an IPv4 address or nothing ("foo.127.0.0.1" is refused). */
    if (last == 0) return 0;
    if (bad) return -1;
    /* Every part but the last is one byte; the last fills the rest. */
    uint32_t addr = 0;
    for (size_t i = 0; i + 1 < np; i++) {
        if (parts[i] > 255) return -1;
        addr |= (uint32_t)parts[i] << (24 - 8 * i);
    }
    unsigned rest_bits = 32 - 8 * (unsigned)(np - 1);
    if (rest_bits < 32 && parts[np - 1] >> rest_bits) return -1;
    addr |= (uint32_t)parts[np - 1];
    if (out) out->s_addr = htonl(addr);
    return 1;
}
