/* Unit tests for the SSRF guard: a table of addresses with the verdict each
 * must get (every refused class, the IPv4 forms hidden in IPv6 addresses,
 * public addresses), a table of odd IPv4 host spellings, and the allowlist
 * (admitted networks, their neighbours, parse errors). */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hooks/ssrf.h"
#include "util/status.h"

/* An address literal into a sockaddr (IPv6 when it holds a ':'). */
static void to_sockaddr(const char *s, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(s, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, s, &a->sin6_addr) != 1) fail_msg("bad test address %s", s);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        if (inet_pton(AF_INET, s, &a->sin_addr) != 1) fail_msg("bad test address %s", s);
    }
}

static ssrf_verdict check(const char *s, const ssrf_allowlist *al)
{
    struct sockaddr_storage ss;
    to_sockaddr(s, &ss);
    return ssrf_check((const struct sockaddr *)&ss, al);
}

typedef struct addr_row {
    const char *addr;
    ssrf_verdict want;
} addr_row;

static const addr_row addr_rows[] = {
    /* IPv4 classes, at their edges */
    {"127.0.0.1", SSRF_LOOPBACK},
    {"127.255.255.254", SSRF_LOOPBACK},
    {"0.0.0.0", SSRF_UNSPECIFIED},
    {"0.1.2.3", SSRF_UNSPECIFIED},
    {"10.0.0.1", SSRF_PRIVATE},
    {"10.255.255.255", SSRF_PRIVATE},
    {"172.16.0.1", SSRF_PRIVATE},
    {"172.31.255.255", SSRF_PRIVATE},
    {"172.15.255.255", SSRF_OK},
    {"172.32.0.0", SSRF_OK},
    {"192.168.1.1", SSRF_PRIVATE},
    {"169.254.169.254", SSRF_LINK_LOCAL},
    {"169.254.0.1", SSRF_LINK_LOCAL},
    {"100.64.0.1", SSRF_SHARED},
    {"100.127.255.255", SSRF_SHARED},
    {"100.128.0.0", SSRF_OK},
    {"224.0.0.1", SSRF_MULTICAST},
    {"239.255.255.250", SSRF_MULTICAST},
    {"240.0.0.1", SSRF_RESERVED},
    {"255.255.255.254", SSRF_RESERVED},
    {"255.255.255.255", SSRF_BROADCAST},
    {"198.18.0.1", SSRF_BENCHMARKING},
    {"198.19.255.255", SSRF_BENCHMARKING},
    {"198.20.0.0", SSRF_OK},
    {"192.0.2.1", SSRF_DOCUMENTATION},
    {"198.51.100.7", SSRF_DOCUMENTATION},
    {"203.0.113.9", SSRF_DOCUMENTATION},
    {"192.0.0.8", SSRF_IETF},
    {"192.88.99.1", SSRF_RESERVED},
    /* public IPv4 */
    {"8.8.8.8", SSRF_OK},
    {"1.1.1.1", SSRF_OK},
    {"93.184.216.34", SSRF_OK},
    /* IPv6 classes */
    {"::1", SSRF_LOOPBACK},
    {"::", SSRF_UNSPECIFIED},
    {"fe80::1", SSRF_LINK_LOCAL},
    {"febf:ffff::1", SSRF_LINK_LOCAL},
    {"fec0::1", SSRF_PRIVATE},
    {"fc00::1", SSRF_PRIVATE},
    {"fd12:3456:789a::1", SSRF_PRIVATE},
    {"ff02::1", SSRF_MULTICAST},
    {"ff05::1:3", SSRF_MULTICAST},
    {"2001:db8::1", SSRF_DOCUMENTATION},
    {"2001:0:4136:e378:8000:63bf:3fff:fdd2", SSRF_TEREDO},
    {"2001:2::1", SSRF_BENCHMARKING},
    {"2001:10::1", SSRF_RESERVED},
    {"100::1", SSRF_RESERVED},
    {"4000::1", SSRF_RESERVED},
    {"64:ff9b:1::a00:1", SSRF_PRIVATE},
    /* IPv4-mapped: the IPv4 rules apply */
    {"::ffff:127.0.0.1", SSRF_LOOPBACK},
    {"::ffff:169.254.169.254", SSRF_LINK_LOCAL},
    {"::ffff:10.0.0.1", SSRF_PRIVATE},
    {"::ffff:7f00:1", SSRF_LOOPBACK},
    {"::ffff:8.8.8.8", SSRF_OK},
    /* IPv4-compatible (deprecated): named by the embedded class, else reserved */
    {"::127.0.0.1", SSRF_LOOPBACK},
    {"::169.254.169.254", SSRF_LINK_LOCAL},
    {"::8.8.8.8", SSRF_RESERVED},
    /* NAT64 */
    {"64:ff9b::127.0.0.1", SSRF_LOOPBACK},
    {"64:ff9b::a9fe:a9fe", SSRF_LINK_LOCAL},
    {"64:ff9b::192.168.0.1", SSRF_PRIVATE},
    {"64:ff9b::8.8.8.8", SSRF_OK},
    /* 6to4: 2002:AABB:CCDD:: embeds AA.BB.CC.DD */
    {"2002:7f00:1::", SSRF_LOOPBACK},
    {"2002:a9fe:a9fe::1", SSRF_LINK_LOCAL},
    {"2002:0a00:0001::1", SSRF_PRIVATE},
    {"2002:808:808::1", SSRF_OK},
    /* public IPv6 */
    {"2606:4700::1111", SSRF_OK},
    {"2a00:1450:4001:80b::200e", SSRF_OK},
    {"2001:4860:4860::8888", SSRF_OK},
};

static void address_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(addr_rows) / sizeof(addr_rows[0]); i++) {
        ssrf_verdict v = check(addr_rows[i].addr, NULL);
        if (v != addr_rows[i].want)
            fail_msg("%s: got '%s', want '%s'", addr_rows[i].addr, ssrf_why(v),
                     ssrf_why(addr_rows[i].want));
    }
}

typedef struct host_row {
    const char *host;
    int rc;             /* ssrf_parse_host_ipv4 */
    const char *dotted; /* its value when rc is 1 */
    ssrf_verdict want;  /* the value's verdict when rc is 1 */
} host_row;

static const host_row host_rows[] = {
    {"127.0.0.1", 1, "127.0.0.1", SSRF_LOOPBACK},
    {"2130706433", 1, "127.0.0.1", SSRF_LOOPBACK},
    {"0177.0.0.1", 1, "127.0.0.1", SSRF_LOOPBACK},
    {"0x7f.0.0.1", 1, "127.0.0.1", SSRF_LOOPBACK},
    {"0x7F000001", 1, "127.0.0.1", SSRF_LOOPBACK},
    {"017700000001", 1, "127.0.0.1", SSRF_LOOPBACK},
    {"127.1", 1, "127.0.0.1", SSRF_LOOPBACK},
    {"127.0.1", 1, "127.0.0.1", SSRF_LOOPBACK},
    {"0x7f.1", 1, "127.0.0.1", SSRF_LOOPBACK},
    {"0177.0x0.00.0x1", 1, "127.0.0.1", SSRF_LOOPBACK},
    {"127.0.0.1.", 1, "127.0.0.1", SSRF_LOOPBACK},
    {"0", 1, "0.0.0.0", SSRF_UNSPECIFIED},
    {"0x", 1, "0.0.0.0", SSRF_UNSPECIFIED},
    {"169.254.169.254", 1, "169.254.169.254", SSRF_LINK_LOCAL},
    {"2852039166", 1, "169.254.169.254", SSRF_LINK_LOCAL},
    {"0xa9fea9fe", 1, "169.254.169.254", SSRF_LINK_LOCAL},
    {"0251.0376.0251.0376", 1, "169.254.169.254", SSRF_LINK_LOCAL},
    {"0xa9.0xfe.0xa9.0xfe", 1, "169.254.169.254", SSRF_LINK_LOCAL},
    {"169.16689662", 1, "169.254.169.254", SSRF_LINK_LOCAL},
    {"169.254.43518", 1, "169.254.169.254", SSRF_LINK_LOCAL},
    {"8.8.8.8", 1, "8.8.8.8", SSRF_OK},
    {"134744072", 1, "8.8.8.8", SSRF_OK},
    /* names */
    {"example.com", 0, NULL, SSRF_OK},
    {"localhost", 0, NULL, SSRF_OK},
    {"127.0.0.1.nip.io", 0, NULL, SSRF_OK},
    {"0x7g.0.0.1.example", 0, NULL, SSRF_OK},
    {"", 0, NULL, SSRF_OK},
    /* numeric-looking but no address: refused by the caller */
    {"256.0.0.1", -1, NULL, SSRF_OK},
    {"4294967296", -1, NULL, SSRF_OK},
    {"1.2.3.4.5", -1, NULL, SSRF_OK},
    {"127.0.0.256", -1, NULL, SSRF_OK},
    {"1.2.65536", -1, NULL, SSRF_OK},
    {"089.0.0.1", -1, NULL, SSRF_OK}, /* '8' is no octal digit, last label numeric */
    {"foo.127.0.0.1", -1, NULL, SSRF_OK},
    {"0xffffffffff", -1, NULL, SSRF_OK},
};

static void host_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(host_rows) / sizeof(host_rows[0]); i++) {
        const host_row *r = &host_rows[i];
        struct in_addr a = {0};
        int rc = ssrf_parse_host_ipv4(r->host, &a);
        if (rc != r->rc) fail_msg("'%s': rc %d, want %d", r->host, rc, r->rc);
        if (rc != 1) continue;
        char got[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &a, got, sizeof(got));
        if (strcmp(got, r->dotted)) fail_msg("'%s': %s, want %s", r->host, got, r->dotted);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr = a};
        ssrf_verdict v = ssrf_check((const struct sockaddr *)&sin, NULL);
        if (v != r->want)
            fail_msg("'%s': '%s', want '%s'", r->host, ssrf_why(v), ssrf_why(r->want));
    }
}

/* Where glibc answers, the parser agrees with inet_aton on the value. */
static void agrees_with_inet_aton(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(host_rows) / sizeof(host_rows[0]); i++) {
        const char *h = host_rows[i].host;
        struct in_addr mine, libc;
        size_t n = strlen(h);
        if (!n || h[n - 1] == '.' || ssrf_parse_host_ipv4(h, &mine) != 1) continue;
        if (!strcmp(h, "0x")) continue; /* glibc refuses the empty hex number */
        assert_int_equal(inet_aton(h, &libc), 1);
        assert_int_equal(mine.s_addr, libc.s_addr);
    }
}

static void allowlist_admits(void **state)
{
    (void)state;
    const char *nets[] = {"127.0.0.0/8", "fd00:1234::/32", "10.1.0.0/16", "192.168.7.7"};
    ssrf_allowlist *al = NULL;
    char err[128] = "";
    assert_int_equal(ssrf_allowlist_new(nets, 4, &al, err, sizeof(err)), PL_OK);
    assert_int_equal(check("127.0.0.1", al), SSRF_OK);
    assert_int_equal(check("127.200.1.1", al), SSRF_OK);
    assert_int_equal(check("::ffff:127.0.0.1", al), SSRF_OK); /* the same IPv4 host */
    assert_int_equal(check("fd00:1234:5::1", al), SSRF_OK);
    assert_int_equal(check("10.1.255.255", al), SSRF_OK);
    assert_int_equal(check("192.168.7.7", al), SSRF_OK);
    /* neighbours stay refused */
    assert_int_equal(check("128.0.0.1", al), SSRF_OK); /* public anyway */
    assert_int_equal(check("fd00:1235::1", al), SSRF_PRIVATE);
    assert_int_equal(check("fd00:1233:ffff::1", al), SSRF_PRIVATE);
    assert_int_equal(check("10.2.0.1", al), SSRF_PRIVATE);
    assert_int_equal(check("10.0.255.255", al), SSRF_PRIVATE);
    assert_int_equal(check("192.168.7.8", al), SSRF_PRIVATE);
    assert_int_equal(check("::1", al), SSRF_LOOPBACK);
    assert_int_equal(check("169.254.169.254", al), SSRF_LINK_LOCAL);
    /* a gateway's address is not the IPv4 host: IPv4 entries do not admit it */
    assert_int_equal(check("64:ff9b::127.0.0.1", al), SSRF_LOOPBACK);
    assert_int_equal(check("2002:7f00:1::", al), SSRF_LOOPBACK);
    ssrf_allowlist_free(al);

    const char *v6[] = {"64:ff9b::7f00:0/120", "::/0"};
    assert_int_equal(ssrf_allowlist_new(v6, 1, &al, err, sizeof(err)), PL_OK);
    assert_int_equal(check("64:ff9b::127.0.0.1", al), SSRF_OK);
    assert_int_equal(check("64:ff9b::127.0.1.1", al), SSRF_LOOPBACK);
    ssrf_allowlist_free(al);
    assert_int_equal(ssrf_allowlist_new(v6 + 1, 1, &al, err, sizeof(err)), PL_OK);
    assert_int_equal(check("::1", al), SSRF_OK); /* an operator may open everything */
    assert_int_equal(check("10.0.0.1", al), SSRF_PRIVATE);
    ssrf_allowlist_free(al);
    assert_int_equal(ssrf_allowlist_new(NULL, 0, &al, err, sizeof(err)), PL_OK);
    assert_int_equal(check("127.0.0.1", al), SSRF_LOOPBACK);
    ssrf_allowlist_free(al);
    ssrf_allowlist_free(NULL);
}

static void allowlist_errors(void **state)
{
    (void)state;
    static const struct {
        const char *cidr, *want;
    } bad[] = {
        {"10.1.2.3/16", "entry 1 ('10.1.2.3/16'): host bits set past the prefix length"},
        {"10.0.0.0/33", "entry 1 ('10.0.0.0/33'): prefix length over 32"},
        {"fd00::/129", "entry 1 ('fd00::/129'): prefix length over 128"},
        {"fd00::1/8", "entry 1 ('fd00::1/8'): host bits set past the prefix length"},
        {"10.0.0.0/", "entry 1 ('10.0.0.0/'): bad prefix length"},
        {"10.0.0.0/-8", "entry 1 ('10.0.0.0/-8'): bad prefix length"},
        {"10.0.0.0/08", "entry 1 ('10.0.0.0/08'): bad prefix length"},
        {"10.0.0.0/8x", "entry 1 ('10.0.0.0/8x'): bad prefix length"},
        {"10.0.0/8", "entry 1 ('10.0.0/8'): bad address (dotted quad or IPv6)"},
        {"0x0a.0.0.0/8", "entry 1 ('0x0a.0.0.0/8'): bad address (dotted quad or IPv6)"},
        {"/8", "entry 1 ('/8'): bad address"},
        {"", "entry 1 (''): bad address"},
        {"example.com/24", "entry 1 ('example.com/24'): bad address (dotted quad or IPv6)"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *list[] = {"127.0.0.0/8", bad[i].cidr};
        ssrf_allowlist *al = (ssrf_allowlist *)1;
        char err[128] = "";
        assert_int_equal(ssrf_allowlist_new(list, 2, &al, err, sizeof(err)), PL_EINVAL);
        assert_null(al);
        assert_string_equal(err, bad[i].want);
    }
}

static void reasons_and_families(void **state)
{
    (void)state;
    assert_string_equal(ssrf_why(SSRF_OK), "");
    for (int v = SSRF_UNSPECIFIED; v <= SSRF_FAMILY; v++)
        assert_true(strlen(ssrf_why((ssrf_verdict)v)) > 8);
    struct sockaddr sa = {.sa_family = AF_UNIX};
    assert_int_equal(ssrf_check(&sa, NULL), SSRF_FAMILY);
    assert_int_equal(ssrf_check(NULL, NULL), SSRF_FAMILY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(address_table),         cmocka_unit_test(host_table),
        cmocka_unit_test(agrees_with_inet_aton), cmocka_unit_test(allowlist_admits),
        cmocka_unit_test(allowlist_errors),      cmocka_unit_test(reasons_and_families),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
