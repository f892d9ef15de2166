/* Hash-chained audit log; the file format is documented in audit.h.
 * Verification is one pure pass over the bytes (audit_verify_mem) that both
 * `audit verify` and audit_open use, so a log is only ever extended from a
 * state the verifier accepts. */
#include "obs/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/mem.h"
#include "util/sbuf.h"
#include "util/status.h"

#define HASH_SUFFIX ",\"hash\":\""
#define SUFFIX_LEN (sizeof(HASH_SUFFIX) - 1 + 64 + 2) /* ,"hash":"<64 hex>"} */
#define N_MEMBERS 10

struct audit_log {
    pthread_mutex_t mu;
    int fd;
    int broken;       /* a failed write could not be undone: refuse appends */
    off_t size;       /* file length after the last good record */
    uint64_t seq;     /* seq of the last record, 0 when empty */
    uint8_t last[32]; /* SHA-256 of the last line; zeros when empty */
};

/* ---- shared helpers ---------------------------------------------------- */

static void to_hex(const uint8_t *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The record hash: SHA-256 of the line's bytes before ,"hash":. */
static void record_hash(const char *line, size_t prefix_len, uint8_t out[32])
{
    SHA256((const unsigned char *)line, prefix_len, out);
}

/* ---- verification ------------------------------------------------------ */

typedef struct chain {
    uint64_t seq;
    uint8_t last[32];
    off_t good_len; /* bytes covered by good records */
} chain;

static int report(audit_report *r, uint64_t line, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int report(audit_report *r, uint64_t line, uint64_t seq, const char *fmt, ...)
{
    r->bad_line = line;
    r->bad_seq = seq;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof(r->why), fmt, ap);
    va_end(ap);
    return -1;
}

static int is_hex64(const char *s)
{
    if (strlen(s) != 64) return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

/* Checks that obj has exactly the record's members with the right types.
 * Returns NULL or the name of the first offending member. */
static const char *check_shape(json_t *obj)
{
    static const char *strings[] = {"actor", "action", "tenant", "target", "correlation_id"};
    if (json_object_size(obj) != N_MEMBERS) return "member count";
    json_t *seq = json_object_get(obj, "seq"), *ts = json_object_get(obj, "ts");
    if (!json_is_integer(seq) || json_integer_value(seq) < 1) return "seq";
    if (!json_is_integer(ts)) return "ts";
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
        if (!json_is_string(json_object_get(obj, strings[i]))) return strings[i];
    if (!json_is_object(json_object_get(obj, "details"))) return "details";
    json_t *prev = json_object_get(obj, "prev"), *hash = json_object_get(obj, "hash");
    if (!json_is_string(prev) || !is_hex64(json_string_value(prev))) return "prev";
    if (!json_is_string(hash) || !is_hex64(json_string_value(hash))) return "hash";
    return NULL;
}

/* Checks one line (without its newline) against the chain so far and
 * advances the chain. Returns 0 or -1 with r filled. */
static int check_line(chain *c, const char *line, size_t len, uint64_t lineno, audit_report *r)
{
    uint64_t want = c->seq + 1;
    if (len == 0) return report(r, lineno, want, "empty line");
    if (len > AUDIT_MAX_LINE)
        return report(r, lineno, want, "line longer than %u bytes", AUDIT_MAX_LINE);
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj || !json_is_object(obj)) {
        json_decref(obj);
        return report(r, lineno, want, "garbled or truncated line (not a JSON object: %s)",
                      obj ? "other value" : jerr.text);
    }
    int rc = -1;
    const char *bad = check_shape(obj);
    if (bad) {
        report(r, lineno, want, "malformed record (member \"%s\")", bad);
        goto done;
    }
    uint64_t seq = (uint64_t)json_integer_value(json_object_get(obj, "seq"));
    const char *hash = json_string_value(json_object_get(obj, "hash"));
    const char *prev = json_string_value(json_object_get(obj, "prev"));
    /* Duplicate members are rejected above, so this tail is the hash member. */
    if (len < SUFFIX_LEN || memcmp(line + len - SUFFIX_LEN, HASH_SUFFIX, sizeof(HASH_SUFFIX) - 1) ||
        memcmp(line + len - 66, hash, 64) || memcmp(line + len - 2, "\"}", 2)) {
        report(r, lineno, seq, "malformed record (hash is not the last member)");
        goto done;
    }
    uint8_t digest[32];
    char hex[65];
    record_hash(line, len - SUFFIX_LEN, digest);
    to_hex(digest, 32, hex);
    if (strcmp(hex, hash)) {
        report(r, lineno, seq, "hash mismatch: the record was altered");
        goto done;
    }
    if (seq > want) {
        report(r, lineno, seq,
               "seq %" PRIu64 " where %" PRIu64 " was expected: record deleted or reordered", seq,
               want);
        goto done;
    }
    if (seq < want) {
        report(r, lineno, seq,
               "seq %" PRIu64 " where %" PRIu64
               " was expected: record inserted, duplicated or reordered",
               seq, want);
        goto done;
    }
    to_hex(c->last, 32, hex);
    if (strcmp(hex, prev)) {
        report(r, lineno, seq,
               "prev does not match the previous line: records were removed, inserted or altered "
               "before it");
        goto done;
    }
    SHA256((const unsigned char *)line, len, c->last);
    c->seq = seq;
    rc = 0;
done:
    json_decref(obj);
    return rc;
}

static int verify_into(const char *data, size_t len, chain *c, audit_report *r)
{
    memset(c, 0, sizeof(*c));
    memset(r, 0, sizeof(*r));
    size_t off = 0;
    for (uint64_t lineno = 1; off < len; lineno++) {
        const char *nl = memchr(data + off, '\n', len - off);
        if (!nl) {
            r->records = c->seq;
            return report(r, lineno, c->seq + 1, "truncated line (no newline at end of file)");
        }
        size_t n = (size_t)(nl - (data + off));
        if (check_line(c, data + off, n, lineno, r)) {
            r->records = c->seq;
            return -1;
        }
        off += n + 1;
        c->good_len = (off_t)off;
    }
    r->records = c->seq;
    return 0;
}

int audit_verify_mem(const char *data, size_t len, audit_report *r)
{
    chain c;
    audit_report local;
    return verify_into(data, len, &c, r ? r : &local);
}

/* Verifies the open file fd. Returns 0 or -1 with r filled. */
static int verify_fd(int fd, chain *c, audit_report *r)
{
    struct stat st;
    if (fstat(fd, &st)) {
        memset(r, 0, sizeof(*r));
        return report(r, 0, 0, "stat: %s", strerror(errno));
    }
    if (st.st_size == 0) return verify_into("", 0, c, r);
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        memset(r, 0, sizeof(*r));
        return report(r, 0, 0, "mmap: %s", strerror(errno));
    }
    int rc = verify_into(map, (size_t)st.st_size, c, r);
    munmap(map, (size_t)st.st_size);
    return rc;
}

int audit_verify(const char *path, audit_report *r)
{
    audit_report local;
    if (!r) r = &local;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        memset(r, 0, sizeof(*r));
        return report(r, 0, 0, "cannot open: %s", strerror(errno));
    }
    chain c;
    int rc = verify_fd(fd, &c, r);
    close(fd);
    return rc;
}

int audit_verify_main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: parley audit verify FILE\n");
        return 2;
    }
    audit_report r;
    if (audit_verify(argv[1], &r) == 0) {
        printf("ok (%" PRIu64 " records)\n", r.records);
        return 0;
    }
    if (r.bad_line == 0)
        fprintf(stderr, "%s: %s\n", argv[1], r.why);
    else
        fprintf(stderr, "%s: record %" PRIu64 " (line %" PRIu64 "): %s\n", argv[1], r.bad_seq,
                r.bad_line, r.why);
    return 1;
}

/* ---- appending --------------------------------------------------------- */

/* Appends s as a JSON string, bad UTF-8 bytes replaced by U+FFFD: the
 * verifier's JSON parser rejects invalid UTF-8, and a record it cannot read
 * would break the chain. */
static int put_str(sbuf *b, const char *s)
{
    if (!s) s = "";
    size_t n = strlen(s);
    if (n > AUDIT_MAX_FIELD) return PL_EINVAL;
    sbuf_json_str_lossy(b, s, n);
    return 0;
}

/* Appends ev->details as compact JSON (one line, whatever the input's
 * whitespace). Returns 0, PL_EINVAL or PL_ENOMEM. */
static int put_details(sbuf *b, const audit_event *ev)
{
    if (!ev->details) {
        sbuf_puts(b, "{}");
        return 0;
    }
    if (ev->details_len > AUDIT_MAX_DETAILS) return PL_EINVAL;
    json_error_t jerr;
    json_t *obj = json_loadb(ev->details, ev->details_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj || !json_is_object(obj)) {
        json_decref(obj);
        return PL_EINVAL;
    }
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (!text) return PL_ENOMEM;
    sbuf_puts(b, text);
    free(text); /* jansson's allocator */
    return 0;
}

/* Builds the full line (with newline) for the next record into b. */
static int build_line(const audit_log *log, const audit_event *ev, sbuf *b)
{
    const char *names[] = {"actor", "action", "tenant", "target", "correlation_id"};
    const char *values[] = {ev->actor, ev->action, ev->tenant, ev->target, ev->correlation_id};
    char hex[65];
    sbuf_puts(b, "{\"seq\":");
    sbuf_u64(b, log->seq + 1);
    sbuf_puts(b, ",\"ts\":");
    sbuf_i64(b, ev->ts_ms ? ev->ts_ms : clock_wall_ms());
    for (size_t i = 0; i < 5; i++) {
        sbuf_printf(b, ",\"%s\":", names[i]);
        int rc = put_str(b, values[i]);
        if (rc) return rc;
    }
    sbuf_puts(b, ",\"details\":");
    int rc = put_details(b, ev);
    if (rc) return rc;
    to_hex(log->last, 32, hex);
    sbuf_printf(b, ",\"prev\":\"%s\"", hex);
    if (b->oom) return PL_ENOMEM;
    uint8_t digest[32];
    record_hash(b->data, b->len, digest);
    to_hex(digest, 32, hex);
    sbuf_printf(b, HASH_SUFFIX "%s\"}\n", hex);
    if (b->oom) return PL_ENOMEM;
    return b->len - 1 > AUDIT_MAX_LINE ? PL_EINVAL : 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int audit_append(audit_log *log, const audit_event *ev, uint64_t *seq_out)
{
    sbuf line;
    sbuf_init(&line);
    pthread_mutex_lock(&log->mu);
    int rc = PL_EIO;
    if (log->broken) goto done;
    rc = build_line(log, ev, &line);
    if (rc) goto done;
    rc = PL_EIO;
    if (write_all(log->fd, line.data, line.len) || fdatasync(log->fd)) {
        /* Cut a torn or unsynced line off, or the next record would chain
         * onto bytes the verifier rejects. */
        if (ftruncate(log->fd, log->size) || fdatasync(log->fd)) log->broken = 1;
        goto done;
    }
    log->size += (off_t)line.len;
    log->seq++;
    SHA256((const unsigned char *)line.data, line.len - 1, log->last);
    if (seq_out) *seq_out = log->seq;
    rc = 0;
done:
    pthread_mutex_unlock(&log->mu);
    sbuf_release(&line);
    return rc;
}

uint64_t audit_count(audit_log *log)
{
    pthread_mutex_lock(&log->mu);
    uint64_t n = log->seq;
    pthread_mutex_unlock(&log->mu);
    return n;
}

/* ---- reading what the log wrote ----------------------------------------- */

/* Maps the first bytes of the file that hold the records appended so far:
 * *len 0 (and *map NULL) for an empty log. A file cut short from outside is
 * mapped as far as it goes, never past its end. 0, or -1 with errno. */
static int map_written(audit_log *log, const char **map, size_t *len)
{
    pthread_mutex_lock(&log->mu);
    off_t size = log->size;
    pthread_mutex_unlock(&log->mu);
    struct stat st;
    *map = NULL;
    *len = 0;
    if (fstat(log->fd, &st)) return -1;
    if (st.st_size < size) size = st.st_size;
    if (size <= 0) return 0;
    void *m = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, log->fd, 0);
    if (m == MAP_FAILED) return -1;
    *map = m;
    *len = (size_t)size;
    return 0;
}

int audit_verify_log(audit_log *log, audit_report *r)
{
    audit_report local;
    if (!r) r = &local;
    const char *map;
    size_t len;
    if (map_written(log, &map, &len)) {
        memset(r, 0, sizeof(*r));
        return report(r, 0, 0, "cannot read: %s", strerror(errno));
    }
    chain c;
    int rc = verify_into(map ? map : "", len, &c, r);
    if (map) munmap((void *)map, len);
    return rc;
}

/* The seq a line starts with ({"seq":N,...), or 0 when it does not. */
static uint64_t line_seq(const char *line, size_t n)
{
    static const char head[] = "{\"seq\":";
    size_t k = sizeof(head) - 1;
    if (n <= k || memcmp(line, head, k)) return 0;
    uint64_t v = 0;
    for (; k < n && line[k] >= '0' && line[k] <= '9' && v < UINT64_MAX / 10; k++)
        v = v * 10 + (uint64_t)(line[k] - '0');
    return v;
}

/* Appends one line as a record: the stored object, or {"corrupt":...}. */
static void put_entry(sbuf *out, const char *line, size_t n)
{
    json_t *obj = n ? json_loadb(line, n, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (json_is_object(obj)) {
        sbuf_append(out, line, n);
    } else {
        sbuf_puts(out, "{\"corrupt\":");
        sbuf_json_str_lossy(out, line, n);
        sbuf_putc(out, '}');
    }
    json_decref(obj);
}

int audit_tail(audit_log *log, uint64_t before, uint32_t limit, sbuf *out, uint64_t *next)
{
    const char *map;
    size_t len;
    *next = 0;
    if (map_written(log, &map, &len)) return PL_EIO;
    size_t end = len && map[len - 1] == '\n' ? len - 1 : len; /* the last line's end */
    uint32_t n = 0;
    uint64_t at = 0; /* the seq of the line, or one less than the newer line's */
    while (map && end > 0) {
        size_t start = end;
        while (start > 0 && map[start - 1] != '\n')
            start--;
        uint64_t seq = line_seq(map + start, end - start);
        at = seq ? seq : at ? at - 1 : 0; /* a corrupt line keeps its place */
        /* Paging skips the newer records; once the page began, every line
         * is shown, whatever its seq (a reordered log shows as it is). */
        if (!before || (at && at < before) || n) {
            if (n == limit) {
                *next = at ? at + 1 : 0; /* this line begins the next page */
                break;
            }
            if (n) sbuf_putc(out, ',');
            put_entry(out, map + start, end - start);
            n++;
        }
        if (start == 0) break;
        end = start - 1;
    }
    if (map) munmap((void *)map, len);
    return out->oom ? PL_ENOMEM : PL_OK;
}

/* Makes a newly created file's directory entry durable. */
static void sync_parent(const char *path)
{
    char *copy = pl_strdup(path);
    if (!copy) return;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    pl_free(copy);
}

audit_log *audit_open(const char *path, audit_report *r)
{
    audit_report local;
    if (!r) r = &local;
    memset(r, 0, sizeof(*r));
    audit_log *log = NULL;
    chain c = {0};
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        report(r, 0, 0, "cannot open: %s", strerror(errno));
        goto fail;
    }
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        report(r, 0, 0, "locked by another process (%s)", strerror(errno));
        goto fail;
    }
    if (verify_fd(fd, &c, r)) goto fail;
    log = pl_calloc(1, sizeof(*log));
    if (!log) {
        report(r, 0, 0, "out of memory");
        goto fail;
    }
    pthread_mutex_init(&log->mu, NULL);
    log->fd = fd;
    log->size = c.good_len;
    log->seq = c.seq;
    memcpy(log->last, c.last, sizeof(log->last));
    if (c.seq == 0) sync_parent(path);
    return log;
fail:
    if (fd >= 0) close(fd);
    return NULL;
}

void audit_close(audit_log *log)
{
    if (!log) return;
    close(log->fd); /* releases the flock */
    pthread_mutex_destroy(&log->mu);
    pl_free(log);
}
