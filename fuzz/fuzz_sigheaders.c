/* libFuzzer target for hooks/sign and hooks/inbound_sig: the whole input is
 * given to every parser (signature header, Stripe header, hmac prefix, key
 * string, timestamp); split on newlines it is also a request (id, timestamp,
 * signature header, body) verified against HMAC and Ed25519 keys; a key it
 * parses as signs it and must verify its own signature. Seeds:
 * fuzz/corpus/sigheaders/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hooks/inbound_sig.h"
#include "hooks/sign.h"
#include "util/mem.h"

#define NOW 1614265330

/* Built once per process; a fuzz harness is the one place this is fine. */
static sign_key *keys[2];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *k[] = {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                              "whpk_nHd6gFsWNYGFbiFUXEXNZVxKdj7uyeB3ZpanSHfQxNU="};
    for (int i = 0; i < 2; i++)
        if (sign_key_parse(k[i], strlen(k[i]), &keys[i]) != SIGN_KEY_OK) abort();
    return 0;
}

/* A key parsed from the input signs the input and must verify it. */
static void round_trip(const char *s, size_t n)
{
    sign_key *k = NULL;
    char *hdr = NULL;
    if (sign_key_parse(s, n, &k) != SIGN_KEY_OK) {
        if (k) abort();
        return;
    }
    const sign_key *ks[] = {k};
    if (sign_header(ks, 1, "msg_1", 5, NOW, s, n, &hdr) == 0) {
        sign_request r = {"msg_1", 5, "1614265330", 10, hdr, strlen(hdr), s, n};
        if (sign_verify(&r, ks, 1, NOW, 0, NULL) != SIGN_OK) abort();
    }
    pl_free(hdr);
    sign_key_free(k);
}

static void as_request(const char *s, size_t n)
{
    const char *part[4] = {"", "", "", ""};
    size_t len[4] = {0, 0, 0, 0}, i = 0, start = 0;
    for (size_t j = 0; j <= n && i < 4; j++) {
        if (j == n || (s[j] == '\n' && i < 3)) {
            part[i] = s + start;
            len[i++] = j - start;
            start = j + 1;
        }
    }
    sign_request r = {part[0], len[0], part[1], len[1], part[2], len[2], part[3], len[3]};
    sign_match m;
    enum sign_result rc = sign_verify(&r, (const sign_key *const *)keys, 2, NOW, 300, &m);
    if (rc == SIGN_OK && (m.key > 1 || m.entry >= m.n_entries)) abort();
    (void)sign_verify_ignoring_time(&r, (const sign_key *const *)keys, 2, NULL);
    inbound_sig_secret sec = {"secret", 6};
    size_t e = 0, k = 0;
    (void)inbound_sig_stripe_verify(part[2], len[2], part[3], len[3], &sec, 1, NOW, 300, &e, &k);
    (void)inbound_sig_hmac_verify(part[2], len[2], "sha256=", part[3], len[3], &sec, 1, &k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    sign_entry e[SIGN_MAX_ENTRIES];
    int n = sign_header_parse(s, size, e, SIGN_MAX_ENTRIES);
    for (int i = 0; i < n; i++)
        if (e[i].sig < s || e[i].sig + e[i].sig_len > s + size) abort();
    inbound_sig_stripe st;
    if (inbound_sig_stripe_parse(s, size, &st) == SIGN_OK && (st.n_v1 == 0 || st.t < 0)) abort();
    unsigned char mac[INBOUND_SIG_MAC_LEN];
    (void)inbound_sig_hmac_parse(s, size, "sha256=", mac);
    int64_t ts;
    (void)sign_parse_timestamp(s, size, &ts);
    size_t blen;
    pl_free(sign_base64_decode(s, size, &blen));
    round_trip(s, size);
    as_request(s, size);
    return 0;
}
