/* The SSRF guard for outbound webhooks: which resolved addresses Parley may
 * connect to (public unicast only, unless an operator allowlists a network),
 * and recognition of the odd IPv4 spellings that resolvers accept, so that a
 * URL such as http://0x7f.1/ is refused before any lookup. Pure: no I/O. */
#ifndef PL_SSRF_H
#define PL_SSRF_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

/* Why an address is refused; SSRF_OK when it may be connected to. */
typedef enum ssrf_verdict {
    SSRF_OK = 0,
    SSRF_UNSPECIFIED,   /* 0.0.0.0/8 ("this network"), :: */
    SSRF_LOOPBACK,      /* 127/8, ::1 */
    SSRF_PRIVATE,       /* RFC 1918, fc00::/7 unique-local, fec0::/10 site-local, 64:ff9b:1::/48 */
    SSRF_LINK_LOCAL,    /* 169.254/16 (cloud metadata), fe80::/10 */
    SSRF_SHARED,        /* 100.64/10, carrier-grade NAT */
    SSRF_MULTICAST,     /* 224/4, ff00::/8 */
    SSRF_BROADCAST,     /* 255.255.255.255 */
    SSRF_RESERVED,      /* 240/4, 192.88.99/24, 100::/64, ::/96, outside 2000::/3 */
    SSRF_BENCHMARKING,  /* 198.18/15, 2001:2::/48 */
    SSRF_DOCUMENTATION, /* 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32 */
    SSRF_IETF,          /* 192.0.0/24 protocol assignments */
    SSRF_TEREDO,        /* 2001::/32: the IPv4 ends are obfuscated, never a webhook target */
    SSRF_FAMILY,        /* neither AF_INET nor AF_INET6 (or a NULL address) */
} ssrf_verdict;

/* A short English reason ("loopback address", ...); "" for SSRF_OK. Static. */
const char *ssrf_why(ssrf_verdict v);

/* Networks an operator admits although the rules above refuse them (the
 * future top-level config key webhook_allowed_networks). Opaque, immutable
 * once built: any thread may read it. */
typedef struct ssrf_allowlist ssrf_allowlist;

/* Builds an allowlist from n CIDR strings ("127.0.0.0/8", "fd00::/8"; a bare
 * address is a /32 or /128). A CIDR with bits set past its prefix
 * ("10.1.2.3/16") is an error rather than silently widened or narrowed: the
 * operator meant one of two things and we cannot tell which. On error
 * returns PL_EINVAL (or PL_ENOMEM) and writes "entry I ('TEXT'): reason"
 * into err (errlen bytes). *out is owned by the caller: ssrf_allowlist_free. */
int ssrf_allowlist_new(const char *const *cidrs, size_t n, ssrf_allowlist **out, char *err,
                       size_t errlen);
void ssrf_allowlist_free(ssrf_allowlist *a);

/* The verdict for connecting to sa (AF_INET or AF_INET6; the port is
 * ignored). allow may be NULL. An allowlisted address is SSRF_OK; an
 * IPv4-mapped (::ffff:a.b.c.d) address is the IPv4 host itself, so the
 * IPv4 rules and IPv4 allowlist entries apply to it. NAT64 (64:ff9b::/96)
 * and 6to4 (2002::/16) addresses reach the embedded IPv4 host through a
 * gateway: refused when the embedded address would be, admitted only by an
 * IPv6 allowlist entry. */
ssrf_verdict ssrf_check(const struct sockaddr *sa, const ssrf_allowlist *allow);

/* Whether host (a URL's host, NUL-terminated, without brackets) is an IPv4
 * literal in any spelling inet_aton or a WHATWG URL parser accepts: one to
 * four dot-separated parts, each decimal, octal (leading 0) or hex (0x),
 * the last filling the remaining bytes (2130706433, 0177.0.0.1, 0x7f.1,
 * 127.0.1), and an optional trailing dot. Returns 1 with *out (network
 * order) set, 0 when host is a name, -1 when its last label is a number
 * but the whole is no valid address (a part overflows, more than four
 * parts, "foo.127.0.0.1"): such a host must be refused too, as resolvers
 * differ on it. out may be NULL. */
int ssrf_parse_host_ipv4(const char *host, struct in_addr *out);

#endif
